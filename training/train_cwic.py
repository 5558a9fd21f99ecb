#!/usr/bin/env python3
"""Train the content-weighted codec (CWIC) networks with keras fit, then fit its context tables.

Stage 1 (networks, resumable):  --stage nets    -> RUN_DIR/final.weights.h5
Stage 2 (entropy tables):       --stage tables  -> counts over the training images' kept bits
Both by default. Example (a shipped rate, see README for the exact commands):
  python training/train_cwic.py --data ../shared/data/train --eval-data ../shared/data/eval/set14 \
      --target 0.33 --run-dir runs/cwic-2 --out tfcomp/weights/cwic-2
"""

import os
import sys


def main(argv=None):
    from tfcomp.training_args import run_options, training_parser
    p = training_parser(__doc__, out_help="output prefix: writes OUT.weights.h5 and OUT.ctx.npz",
                        steps=10000, lr="1e-4", patch_note=", a multiple of 8")
    p.add_argument("--stage", choices=("nets", "tables", "all"), default="all",
                   help="train the networks, fit the context tables, or both (default)")
    p.add_argument("--config", default="narrow", help="network size: narrow (CPU), paper, paper128, tiny")
    p.add_argument("--target", type=float, default=0.33,
                   help="target kept-bit fraction r: the rate loss acts while above it")
    p.add_argument("--gamma", type=float, default=1e-3, help="rate-loss weight")
    p.add_argument("--distortion", choices=("mse", "ms-ssim"), default="mse",
                   help="training distortion: mse (the paper's, default) or ms-ssim (1 - 4-scale "
                        "MS-SSIM, patches >= 88)")
    p.add_argument("--mse-weight", type=float, default=0.0,
                   help="with --distortion ms-ssim: add this times the MSE (keeps colours)")
    p.add_argument("--no-binarizer", action="store_true", help="ablation: continuous codes")
    p.add_argument("--no-importance", action="store_true", help="ablation: keep all n channels")
    p.add_argument("--table-images", type=int, default=0,
                   help="fit the tables on at most this many training images (0 = all)")
    args = p.parse_args(argv)
    if not args.out:
        p.error("--out is required")

    from tfcomp.training import make_strategy, train_cwic
    weights = args.out + ".weights.h5"
    if args.stage in ("nets", "all"):
        strategy = make_strategy(args.cpu_devices)
        train_cwic(**run_options(args), out=weights, config=args.config, target=args.target,
                   gamma=args.gamma, use_binarizer=not args.no_binarizer,
                   use_importance=not args.no_importance, distortion=args.distortion,
                   mse_weight=args.mse_weight,
                   strategy=strategy)
    if args.stage in ("tables", "all"):
        from tfcomp.cwic.training import fit_tables
        fit_tables(weights, args.config, args.data, args.out + ".ctx.npz",
                   max_images=args.table_images or None)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
