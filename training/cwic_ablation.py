#!/usr/bin/env python3
"""CWIC ablation: plain autoencoder, + binarizer, + importance map, + context coding.

  python training/cwic_ablation.py --data ../shared/data/eval/mcmaster \\
      --plain runs/cwic-abl-plain/out.weights.h5 --binarizer runs/cwic-abl-bin/out.weights.h5 \\
      --full cwic-2 --json results/codecs/cwic_ablation.json
--plain / --binarizer: weights trained with train_cwic.py --no-binarizer --no-importance /
--no-importance (see README for the commands); --full: an installed cwic rate model (its
context tables give the last row). Logic: tfcomp.cwic.training.ablation_rows.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder or glob of images")
    p.add_argument("--plain", required=True, help="weights of the plain autoencoder")
    p.add_argument("--binarizer", required=True, help="weights of autoencoder + binarizer")
    p.add_argument("--full", default="cwic-2", help="installed cwic model (default cwic-2)")
    p.add_argument("--config", default="narrow", help="network size of --plain/--binarizer")
    p.add_argument("--json", help="also write the rows as JSON")
    args = p.parse_args(argv)
    from tfcomp import models
    from tfcomp.cli import format_table
    from tfcomp.cwic.training import ablation_rows
    from tfcomp.errors import InputError
    from tfcomp.evaluate import load_images
    from tfcomp.cwic.model import build_cwic
    try:
        for path in (args.plain, args.binarizer):
            if not os.path.isfile(path):
                raise InputError(f"no such weights file: {path}")
        plain = build_cwic(args.config, use_binarizer=False, use_importance=False)
        plain.load_weights(args.plain)
        binary = build_cwic(args.config, use_importance=False)
        binary.load_weights(args.binarizer)
        full, tables = models.load_model(args.full), models.load_extra(args.full)
        items = load_images(args.data)
    except (InputError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = ablation_rows([("plain autoencoder", plain, None), ("+ binarizer", binary, None),
                          ("+ importance map", full, tables)], items)
    print(format_table(["variant", "bpp", "PSNR", "MS-SSIM"],
                       [(r["variant"], r["bpp"], r["psnr"], r["ms_ssim"]) for r in rows]))
    if args.json:  # written atomically, like every tfcomp output
        from tfcomp.imageio import write_json
        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
