#!/usr/bin/env python3
"""Print what a quality-gated restorer's gate g says per JPEG quality (mean, min, max over the
images, per channel): the output is x + g * (network(x) - x), so g near 1 means "restore fully"
and g near 0 "leave the image alone".

  python training/gate_stats.py --data ../shared/data/eval/mcmaster
  python training/gate_stats.py --weights runs/gate3/final.weights.h5 --quality 10 50 90
  python training/gate_stats.py --quality 10 40 70 90 95 98 \
      --json results/restorers/restorer-blind-gate-mcmaster.json   # the README's numbers

Logic: tfcomp.evaluate.gate_statistics.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="restorer-blind", help="registry restorer with a gate "
                   "(default %(default)s)")
    p.add_argument("--weights", help="weights file instead of the shipped ones")
    p.add_argument("--data", default="../shared/data/eval/mcmaster",
                   help="image folder or glob (default %(default)s)")
    p.add_argument("--quality", type=int, nargs="+", default=[10, 20, 30, 40, 50, 60, 70, 80, 90],
                   help="JPEG qualities (default 10..90 in steps of 10)")
    p.add_argument("--json", help="also write the statistics here (with the model, weights "
                                  "and data they were measured on)")
    args = p.parse_args(argv)
    from tfcomp.errors import TfcompError
    from tfcomp.evaluate import gate_statistics
    from tfcomp.models import load_model
    try:
        if any(not 1 <= q <= 100 for q in args.quality):
            raise TfcompError("--quality values must be in 1..100")
        model = load_model(args.model, weights=args.weights)
        stats = gate_statistics(model, args.data, args.quality)
        if args.json:
            from tfcomp.imageio import write_json
            write_json(args.json, {"model": args.model, "weights": args.weights or "shipped",
                                   "data": args.data, "jpeg": "Pillow 4:2:0 (registry jpeg)",
                                   "gate": {str(q): s for q, s in stats.items()}})
    except (TfcompError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("  q  gate mean (per channel)   min                  max")
    for q, s in stats.items():
        row = ["/".join(f"{v:.2f}" for v in s[k]) for k in ("mean", "min", "max")]
        print(f"{q:3d}  {row[0]:<24} {row[1]:<20} {row[2]}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
