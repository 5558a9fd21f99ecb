#!/usr/bin/env python3
"""What a richer (or poorer) bit context costs and buys, for an installed cwic rate model.

  python training/cwic_context_report.py --model cwic-2 \\
      --train-data ../shared/data/train/bsd100 --data ../shared/data/eval/mcmaster \\
      --json results/codecs/cwic_contexts.json
Tables of each context family (group only / the shipped channel-causal one / + same-channel
up and left bits) are counted on --train-data, then the --data images' kept bits are
range-coded, decoded back (checked) and timed. Logic: tfcomp.cwic.contexts.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cwic-2", help="installed cwic model (default cwic-2)")
    p.add_argument("--train-data", required=True, help="images the tables are counted on")
    p.add_argument("--max-train", type=int, default=40,
                   help="count on at most this many training images (default 40)")
    p.add_argument("--data", required=True, help="test images (folder or glob)")
    p.add_argument("--json", help="also write the rows as JSON")
    args = p.parse_args(argv)
    from tfcomp import models
    from tfcomp.cli import format_table
    from tfcomp.cwic.codec import analyse
    from tfcomp.cwic.contexts import compare_families
    from tfcomp.errors import InputError
    from tfcomp.evaluate import load_images, progress
    from tfcomp.imageio import list_images, read_image
    try:
        spec = models.get_spec(args.model)
        if spec.codec != "cwic" or not spec.weights_present:
            raise InputError(f"{args.model} is not an installed cwic rate model")
        model = models.load_model(args.model)
        train_paths = list_images(args.train_data)[:args.max_train]
        test = load_images(args.data)
    except (InputError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    train = [analyse(model, read_image(path, "rgb"))
             for path in progress(train_paths, len(train_paths), "encoding training images")]
    coded = [(*analyse(model, image), image.shape[0] * image.shape[1])
             for _, image in progress(test, len(test), "encoding test images")]
    rows = compare_families(train, coded, model.n, model.levels)
    print(format_table(["context", "contexts", "raw bpp", "coded bpp", "saving", "decode steps",
                        "encode s", "decode s"],
                       [(r["family"], r["contexts"], r["raw_bpp"], r["coded_bpp"], r["saving"],
                         r["steps"], r["encode_s"], r["decode_s"]) for r in rows]))
    if args.json:  # written atomically, like every tfcomp output
        from tfcomp.imageio import write_json
        write_json(args.json, {"model": args.model, "train_images": len(train),
                               "test_images": len(coded), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
