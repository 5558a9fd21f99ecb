#!/usr/bin/env python3
"""Train JPD-SE (Duan et al. 2022): semantic-aware enhancement of BPG-decoded frames, by phase.

Phase 1: semantic image synthesis (decoded input zeroed; GAN + feature matching + VGG).
Phase 2: all losses on BPG-decoded inputs (adds the L1 distortion).
Phase 3: distortion (L1) only.
Each phase is its own run (resumable); start a phase from the previous one's weights.
--data is a Cityscapes-layout folder; the city "lindau" is held out (tfcomp.jpdse.semantic).
Example (see README for the exact commands of the shipped models):
  python training/train_jpdse.py --data ../shared/data/cityscapes_sample --phase 1 \\
      --run-dir runs/jpdse-p1 --out runs/jpdse-p1/final.weights.h5
  python training/train_jpdse.py --data ../shared/data/cityscapes_sample --phase 2 \\
      --init-weights runs/jpdse-p1/final.weights.h5 --run-dir runs/jpdse-p2 \\
      --out runs/jpdse-p2/final.weights.h5 --generator-out tfcomp/weights/jpdse-bpg-p2.weights.h5
"""

import os
import sys


def main(argv=None):
    from tfcomp.jpdse.semantic import LABEL_SCALES
    from tfcomp.training_args import run_options, training_parser
    p = training_parser(__doc__, out_help="where to write the weights (generator + discriminator)",
                        steps=2000, lr="2e-4", patch_note=" (unused: whole frames at --size)",
                        eval_help="unused (the held-out city of --data is the validation set)")
    p.set_defaults(batch=1, steps_per_epoch=100)
    p.add_argument("--generator-out", help="also write the generator's weights alone here "
                                           "(the file the jpdse-bpg codec ships)")
    p.add_argument("--phase", type=int, choices=(1, 2, 3), required=True, help="training phase")
    p.add_argument("--config", default="narrow",
                   choices=("narrow", "narrow_residual", "narrow_local", "full", "tiny"),
                   help="network size: narrow (this CPU), narrow_residual (narrow + the decoded "
                        "image added to its output), narrow_local (narrow_residual + a "
                        "full-resolution branch), full (pix2pixHD), tiny (tests)")
    p.add_argument("--size", type=int, nargs=2, default=(1024, 512), metavar=("W", "H"),
                   help="working resolution (default 1024 512, the shipped models')")
    p.add_argument("--crop", type=int, nargs=2, metavar=("W", "H"),
                   help="train on random W x H windows of the frames at --size (default: "
                        "whole frames); validation always uses whole frames")
    p.add_argument("--qps", type=int, nargs="+", default=[33, 36, 39, 42],
                   help="BPG QPs of the training inputs (default: the paper's 33 36 39 42)")
    p.add_argument("--eval-qp", type=int, default=36, help="QP of the validation inputs")
    p.add_argument("--label-scale", type=int, default=1, choices=LABEL_SCALES,
                   help="train on the semantics decoded from side information with the label "
                        "map at 1/N resolution (1 = lossless labels + instance edges)")
    p.add_argument("--cache-dir", default="runs/jpdse-cache",
                   help="where BPG-decoded frames are cached (default %(default)s)")
    p.add_argument("--vgg-weights", help="local VGG19 (no top) ImageNet weights .h5; "
                                         "without it the perceptual term is off")
    p.add_argument("--lambda-gan", type=float, default=1.0)
    p.add_argument("--lambda-fm", type=float, default=10.0)
    p.add_argument("--lambda-vgg", type=float, default=10.0)
    p.add_argument("--lambda-dist", type=float, default=10.0)
    args = p.parse_args(argv)
    if args.vgg_weights and not os.path.isfile(args.vgg_weights):
        p.error(f"--vgg-weights: no such file {args.vgg_weights}")

    from tfcomp.jpdse.model import size_multiple
    m = size_multiple(args.config)
    for what, (w, h) in (("--size", args.size), ("--crop", args.crop or args.size)):
        if w <= 0 or h <= 0 or w % m or h % m:
            p.error(f"{what} {w} {h}: both sides must be positive multiples of {m}")
    if args.crop and (args.crop[0] > args.size[0] or args.crop[1] > args.size[1]):
        p.error(f"--crop {args.crop[0]} {args.crop[1]} is larger than --size")

    from tfcomp.training import make_strategy, train_jpdse
    strategy = make_strategy(args.cpu_devices)  # first, before any other TF op
    opts = run_options(args)
    for unused in ("eval_data", "patch_size"):
        opts.pop(unused)
    if len(args.data) != 1:
        p.error("--data takes one Cityscapes-layout folder")
    opts["data"] = args.data[0]
    train_jpdse(**opts, out=args.out, phase=args.phase, config=args.config,
                size=tuple(args.size), qps=tuple(args.qps), eval_qp=args.eval_qp,
                cache_dir=args.cache_dir, vgg_weights=args.vgg_weights,
                loss_weights=dict(lambda_gan=args.lambda_gan, lambda_fm=args.lambda_fm,
                                  lambda_vgg=args.lambda_vgg, lambda_dist=args.lambda_dist),
                strategy=strategy, generator_out=args.generator_out,
                label_scale=args.label_scale, crop=tuple(args.crop) if args.crop else None)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
