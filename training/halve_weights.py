#!/usr/bin/env python3
"""Store a Keras weights file's float32 arrays as float16 (half the bytes; loads as float32).

  python training/halve_weights.py runs/cwic-2/out.weights.h5 tfcomp/weights/cwic-2.weights.h5
The shipped cwic weights are made this way (see README). Logic: tfcomp.training.halve_weights_file.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="weights file (.weights.h5) to read")
    p.add_argument("dst", help="where to write the float16 copy (may equal src)")
    args = p.parse_args(argv)
    if not os.path.isfile(args.src):
        print(f"error: no such weights file: {args.src}", file=sys.stderr)
        return 2
    from tfcomp.training import halve_weights_file
    try:
        halve_weights_file(args.src, args.dst)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    size = f"{os.path.getsize(args.dst) / 1e6:.1f} MB"
    print(f"wrote {args.dst} ({size})")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
