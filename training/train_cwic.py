#!/usr/bin/env python3
"""Train the content-weighted codec (CWIC) networks with keras fit, then fit its context tables.

Stage 1 (networks, resumable):  --stage nets    -> RUN_DIR/final.weights.h5
Stage 2 (entropy tables):       --stage tables  -> counts over the training images' kept bits
Both by default. Example (a shipped rate, see README for the exact commands):
  python training/train_cwic.py --data ../shared/data/train --eval-data ../shared/data/eval/set14 \
      --target 0.33 --run-dir runs/cwic-2 --out tfcomp/weights/cwic-2
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Reading a checkpoint while training writes it must not crash the run (HDF5 file locks).
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="training image folders or globs")
    p.add_argument("--eval-data", help="validation folder (centre crops)")
    p.add_argument("--run-dir", required=True, help="checkpoints, backup (resume), TensorBoard logs")
    p.add_argument("--out", required=True,
                   help="output prefix: writes OUT.weights.h5 and OUT.ctx.npz")
    p.add_argument("--stage", choices=("nets", "tables", "all"), default="all",
                   help="train the networks, fit the context tables, or both (default)")
    p.add_argument("--config", default="narrow", help="network size: narrow (CPU), paper, paper128, tiny")
    p.add_argument("--target", type=float, default=0.33,
                   help="target kept-bit fraction r: the rate loss acts while above it")
    p.add_argument("--gamma", type=float, default=1e-3, help="rate-loss weight")
    p.add_argument("--no-binarizer", action="store_true", help="ablation: continuous codes")
    p.add_argument("--no-importance", action="store_true", help="ablation: keep all n channels")
    p.add_argument("--steps", type=int, default=10000, help="total optimizer steps")
    p.add_argument("--steps-per-epoch", type=int, default=250, help="steps between checkpoints")
    p.add_argument("--batch", type=int, default=8, help="global batch size")
    p.add_argument("--patch", type=int, default=128, help="patch size (multiple of 8)")
    p.add_argument("--lr", default="1e-4", help="learning-rate schedule 'v0,v1@step1,...'")
    p.add_argument("--init-weights", help="start from these weights (e.g. another rate's)")
    p.add_argument("--seed", type=int, default=0, help="shuffle/augmentation seed")
    p.add_argument("--cpu-devices", type=int, default=1, help="split the CPU into N replicas")
    p.add_argument("--table-images", type=int, default=0,
                   help="fit the tables on at most this many training images (0 = all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)

    from tfcomp.training import make_strategy, train_cwic
    weights = args.out + ".weights.h5"
    if args.stage in ("nets", "all"):
        strategy = make_strategy(args.cpu_devices)
        train_cwic(data=args.data, run_dir=args.run_dir, out=weights, eval_data=args.eval_data,
                   config=args.config, target=args.target, gamma=args.gamma,
                   use_binarizer=not args.no_binarizer, use_importance=not args.no_importance,
                   steps=args.steps, steps_per_epoch=args.steps_per_epoch,
                   batch_size=args.batch, patch_size=args.patch, lr_schedule=args.lr,
                   init_weights=args.init_weights, seed=args.seed,
                   verbose=0 if args.quiet else 1, strategy=strategy)
    if args.stage in ("tables", "all"):
        from tfcomp.cwic_training import fit_tables
        fit_tables(weights, args.config, args.data, args.out + ".ctx.npz",
                   max_images=args.table_images or None)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
