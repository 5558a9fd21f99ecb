#!/usr/bin/env python3
"""Train the JPEG artifact-removal CNN with keras fit (MirroredStrategy / MultiWorker via TF_CONFIG).

Example (the shipped quality-blind model, see README for the exact commands):
  python training/train_restorer.py --data ../shared/data/train --eval-data ../shared/data/eval/mcmaster \
      --quality-range 10 90 --run-dir runs/restorer-blind --out tfcomp/weights/restorer-blind.weights.h5
"""

import os
import sys


def main(argv=None):
    from tfcomp.training_args import run_options, training_parser
    p = training_parser(__doc__, out_help="where to write the final weights (.weights.h5)",
                        steps=5000, lr="5e-4,2.5e-4@2000,1e-4@4000",
                        eval_help="validation folder (centre crops, JPEG at the training qualities)")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--quality", type=int, help="train at one JPEG quality (seed: 10)")
    q.add_argument("--quality-range", type=int, nargs=2, metavar=("LO", "HI"),
                   help="quality-blind: a random JPEG quality in LO..HI per patch "
                        "(drawn as --quality-sampling says)")
    p.add_argument("--quality-sampling", choices=("uniform", "log"), default="uniform",
                   help="with --quality-range: draw q uniformly, or log-uniformly (more low "
                        "qualities, where there is most to restore); default %(default)s")
    p.add_argument("--gray", action="store_true", help="1-channel (Y / gray) variant")
    p.add_argument("--widths", type=int, nargs=4, default=None, metavar="W",
                   help="channel widths (default 128 64 32 16: the original 313,066-parameter net)")
    p.add_argument("--random-init", action="store_true",
                   help="plain random init instead of starting from the identity map")
    p.add_argument("--loss-power", type=float, default=0.0,
                   help="weight each patch's MSE by MSE(jpeg, clean)**-P (0: plain MSE; 0.5..1 "
                        "balances low and high qualities for a quality-blind model)")
    p.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32",
                   help="mixed_bfloat16: bfloat16 compute, float32 weights; ~2.4x faster on "
                        "CPUs with AMX/AVX512-BF16 (see README benchmarks), slower without")
    p.add_argument("--keep-epochs", action="store_true",
                   help="also keep every epoch's weights (RUN_DIR/checkpoints/"
                        "epoch-NNN.weights.h5) for checkpoint averaging "
                        "(training/average_weights.py)")
    p.add_argument("--quality-gate", action="store_true",
                   help="add the blind quality gate: the output is x + g * (net(x) - x) with "
                        "g in [0, 1] estimated from the image's 8x8 block-DCT statistics "
                        "(--init-weights may then be an ungated restorer's file)")
    p.add_argument("--gate-only", action="store_true",
                   help="with --quality-gate: train only the gate, the network stays frozen")
    args = p.parse_args(argv)
    if args.gate_only and not args.quality_gate:
        p.error("--gate-only needs --quality-gate")

    from tfcomp.training import make_strategy, train_restorer
    strategy = make_strategy(args.cpu_devices)  # first, before any other TF op
    train_restorer(**run_options(args), out=args.out, channels=1 if args.gray else 3,
                   widths=args.widths, quality=args.quality, quality_range=args.quality_range,
                   quality_sampling=args.quality_sampling,
                   identity=not args.random_init, loss_power=args.loss_power,
                   precision=args.precision, keep_epochs=args.keep_epochs,
                   quality_gate=args.quality_gate, gate_only=args.gate_only, strategy=strategy)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
