#!/usr/bin/env python3
"""Turn an RGB restorer's weights into the 1-channel (gray / Y) restorer that computes the same
on gray images (the RGB model on the gray image replicated to RGB, averaged over channels):
a start for `tfcomp train restorer --gray --init-weights ...`.

  python training/to_gray.py tfcomp/weights/restorer-q10.weights.h5 gray-start.weights.h5
A quality-gated file (restorer-blind) loses its gate (--drop-gate). Logic: tfcomp.restorer.model.to_gray.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="an RGB restorer's .weights.h5 (default widths)")
    p.add_argument("dst", help="where to write the gray restorer's weights")
    p.add_argument("--drop-gate", action="store_true",
                   help="src is quality-gated: keep only its network")
    args = p.parse_args(argv)
    if not os.path.isfile(args.src):
        print(f"error: no such weights file: {args.src}", file=sys.stderr)
        return 2
    from tfcomp.restorer.model import build_restorer, load_core_weights, to_gray
    try:
        rgb = load_core_weights(build_restorer(channels=3), args.src, drop_gate=args.drop_gate)
        gray = to_gray(rgb)
        gray.save_weights(args.dst)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst} ({gray.count_params():,} parameters, 1 channel)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
