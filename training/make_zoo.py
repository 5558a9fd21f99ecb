#!/usr/bin/env python3
"""Regenerate tfcomp/weights/zoo.json (what `tfcomp models` prints) from the model registry
and the evaluation JSONs under results/ (logic: tfcomp.zoo). Run after shipping a model and
rerunning its evaluation script.

  python training/make_zoo.py [--results results] [--out tfcomp/weights/zoo.json]
"""

import argparse
import os
import sys


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results", help="evaluation JSONs (default %(default)s)")
    p.add_argument("--out", default=None, help="zoo file (default tfcomp/weights/zoo.json)")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tfcomp.zoo import ZOO_FILE, write_zoo
    out = args.out or ZOO_FILE
    entries = write_zoo(out, args.results)
    print(f"wrote {out}: {len(entries)} models, "
          f"{sum(1 for e in entries if e['eval'])} with measured numbers")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
