#!/usr/bin/env python3
"""Evaluate residual-hiding models against the plain codec and the codec + restorer.

Writes RESULTS/<model>-<data>.json per model and prints the README table (`tfcomp report`
prints it again from the JSONs). Example (the README's table):
  python training/eval_hiding.py --models hiding-jpeg-q50-s2 hiding-jpeg-q50-s1 \\
      --data ../shared/data/eval/mcmaster --quality 50
"""

import argparse
import os
import sys


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", required=True, help="hiding model names (tfcomp codecs)")
    p.add_argument("--data", required=True, help="folder of evaluation images")
    p.add_argument("--quality", type=int, nargs="+", default=[None],
                   help="codec quality or qualities (default: each model's own)")
    p.add_argument("--weights", help="a weights file of the model's architecture instead of the "
                   "shipped one (one model only; e.g. a training run's candidate on the "
                   "validation set)")
    p.add_argument("--restorer", default="restorer-blind", help="post-filter baseline model")
    p.add_argument("--out", default="results/hiding", help="folder for the JSON results")
    p.add_argument("--keep", metavar="DIR", help="keep the files and decoded PNGs here")
    p.add_argument("--figure", metavar="NAME", help="also write OUT/<model>[-q<q>]-NAME.png: crops "
                   "of image NAME (file name without extension) side by side")
    args = p.parse_args(argv)
    if args.weights and len(args.models) != 1:
        p.error("--weights goes with exactly one model")
    if args.weights and not os.path.isfile(args.weights):
        p.error(f"--weights: no such file {args.weights}")

    from tfcomp.errors import TfcompError
    from tfcomp.evaluate import evaluate_hiding
    from tfcomp.imageio import write_json
    from tfcomp.report import hiding_markdown
    results = []
    try:
        for model in args.models:
            for quality in args.quality:
                os.makedirs(args.out, exist_ok=True)
                figure = None
                if args.figure:
                    q = "" if quality is None else f"-q{quality}"
                    figure = (args.figure, os.path.join(args.out, f"{model}{q}-{args.figure}.png"))
                r = evaluate_hiding(model, args.data, quality, args.restorer, out_dir=args.keep,
                                    figure=figure, weights=args.weights)
                tag = os.path.basename(os.path.normpath(args.data))
                write_json(os.path.join(args.out, f"{model}-q{r['quality']}-{tag}.json"), r)
                results.append(r)
    except TfcompError as e:
        print(f"eval_hiding: error: {e}", file=sys.stderr)
        return 2
    print(hiding_markdown(results))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
