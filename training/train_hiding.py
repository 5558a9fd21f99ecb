#!/usr/bin/env python3
"""Train the residual-hiding encoder/decoder (Lee et al. 2021) with the real codec in the loop.

The decoder starts from a restorer's weights (--decoder-init, default the shipped
restorer-blind), the encoder from the identity, so step 0 is "codec + restorer".
Example (the shipped JPEG q50 model, strategy 2; see README for the exact commands):
  python training/train_hiding.py --data ../shared/data/train/wikipedia49 ../shared/data/train/bsd100 \\
      --eval-data ../shared/data/eval/set14 --codec jpeg --quality 50 --strategy 2 \\
      --run-dir runs/hiding-jpeg-q50-s2 --out tfcomp/weights/hiding-jpeg-q50-s2.weights.h5
"""

import os
import sys


def main(argv=None):
    from tfcomp.training_args import run_options, training_parser
    p = training_parser(__doc__, out_help="where to write the final weights (.weights.h5)",
                        steps=4000, lr="1e-4", patch_note=", a multiple of 16")
    p.add_argument("--codec", choices=("jpeg", "bpg"), default="jpeg", help="codec in the loop")
    q = p.add_mutually_exclusive_group()
    q.add_argument("--quality", type=int, default=50,
                   help="JPEG quality or BPG QP used in training (default 50)")
    q.add_argument("--quality-range", type=int, nargs=2, metavar=("LO", "HI"),
                   help="a random quality in LO..HI per patch (validation uses --quality)")
    p.add_argument("--strategy", type=int, choices=(1, 2), default=2,
                   help="1: gradient through the JPEG simulation; 2: identity gradient (default)")
    p.add_argument("--fidelity", type=float, default=0.1,
                   help="weight of MSE(I_H_enc, I_H): keeps the sent image close to the original")
    p.add_argument("--rate-weight", type=float, default=0.0,
                   help="weight of the JPEG rate proxy of the sent image (0: off)")
    p.add_argument("--width", type=int, default=48, help="encoder channels (default 48)")
    p.add_argument("--depth", type=int, default=5, help="encoder 3x3 convolutions (default 5)")
    p.add_argument("--decoder-init", default="tfcomp/weights/restorer-blind.weights.h5",
                   help="restorer weights to start the decoder from ('' = random init)")
    args = p.parse_args(argv)
    if args.decoder_init and not os.path.isfile(args.decoder_init):
        p.error(f"--decoder-init: no such file {args.decoder_init}")

    from tfcomp.training import make_strategy, train_hiding
    strategy = make_strategy(args.cpu_devices)  # first, before any other TF op
    train_hiding(**run_options(args), out=args.out, codec=args.codec, quality=args.quality,
                 quality_range=args.quality_range, strategy_kind=args.strategy,
                 fidelity=args.fidelity, rate_weight=args.rate_weight, width=args.width,
                 depth=args.depth, decoder_init=args.decoder_init or None, strategy=strategy)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
