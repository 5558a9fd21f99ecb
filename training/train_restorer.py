#!/usr/bin/env python3
"""Train the JPEG artifact-removal CNN with keras fit (MirroredStrategy / MultiWorker via TF_CONFIG).

Example (the shipped quality-blind model, see README for the exact commands):
  python training/train_restorer.py --data ../shared/data/train --eval-data ../shared/data/eval/mcmaster \
      --quality-range 10 90 --run-dir runs/restorer-blind --out tfcomp/weights/restorer-blind.weights.h5
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
    p.add_argument("--eval-data", help="validation folder (centre crops, JPEG at the training qualities)")
    p.add_argument("--run-dir", required=True, help="checkpoints, backup (resume), TensorBoard logs")
    p.add_argument("--out", help="where to write the final weights (.weights.h5)")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--quality", type=int, help="train at one JPEG quality (seed: 10)")
    q.add_argument("--quality-range", type=int, nargs=2, metavar=("LO", "HI"),
                   help="quality-blind: a uniformly random JPEG quality in LO..HI per patch")
    p.add_argument("--gray", action="store_true", help="1-channel (Y / gray) variant")
    p.add_argument("--widths", type=int, nargs=4, default=None, metavar="W",
                   help="channel widths (default 128 64 32 16: the original 313,066-parameter net)")
    p.add_argument("--steps", type=int, default=5000, help="total optimizer steps (default 5000)")
    p.add_argument("--steps-per-epoch", type=int, default=250, help="steps between checkpoints/validation")
    p.add_argument("--batch", type=int, default=8, help="global batch size (default 8, the seed's)")
    p.add_argument("--patch", type=int, default=128, help="patch size (default 128)")
    p.add_argument("--lr", default="5e-4,2.5e-4@2000,1e-4@4000",
                   help="learning-rate schedule 'v0,v1@step1,v2@step2' (default %(default)s)")
    p.add_argument("--init-weights", help="start from these weights (fine-tuning)")
    p.add_argument("--random-init", action="store_true",
                   help="plain random init instead of starting from the identity map")
    p.add_argument("--seed", type=int, default=0, help="shuffle/augmentation seed")
    p.add_argument("--cpu-devices", type=int, default=1,
                   help="without GPUs, split the CPU into N logical devices (MirroredStrategy replicas)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)

    from tfcomp.training import make_strategy, train_restorer
    strategy = make_strategy(args.cpu_devices)  # first, before any other TF op
    train_restorer(data=args.data, run_dir=args.run_dir, out=args.out, eval_data=args.eval_data,
                   channels=1 if args.gray else 3, widths=args.widths, quality=args.quality,
                   quality_range=args.quality_range, steps=args.steps,
                   steps_per_epoch=args.steps_per_epoch, batch_size=args.batch,
                   patch_size=args.patch, lr_schedule=args.lr, init_weights=args.init_weights,
                   seed=args.seed, identity=not args.random_init,
                   verbose=0 if args.quiet else 1, strategy=strategy)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
