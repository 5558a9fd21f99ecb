#!/usr/bin/env python3
"""Average several weights files of one model (checkpoint averaging), e.g. the last epochs' checkpoints:

  python training/average_weights.py runs/restorer-blind4/checkpoints/epoch-00{6,7,8}.weights.h5 \\
      --out blind.weights.h5
The shipped restorer-blind is made this way (see README). Logic: tfcomp.training.average_weights_files.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", nargs="+", help="weights files (.weights.h5) of the same model")
    p.add_argument("--out", required=True, help="where to write the average (.weights.h5)")
    args = p.parse_args(argv)
    missing = [s for s in args.src if not os.path.isfile(s)]
    if missing:
        print(f"error: no such weights file: {missing[0]}", file=sys.stderr)
        return 2
    from tfcomp.training import average_weights_files
    try:
        average_weights_files(args.src, args.out)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: the mean of {len(args.src)} weights files")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
