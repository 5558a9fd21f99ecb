#!/usr/bin/env python3
"""What the context model saves: kept bits and importance map stored raw vs range-coded.

  python training/cwic_coding_report.py --data ../shared/data/eval/mcmaster [--json OUT]
Runs every installed cwic rate model over the images (logic: tfcomp.cwic.training).
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder or glob of images")
    p.add_argument("--json", help="also write the rows as JSON")
    args = p.parse_args(argv)
    from tfcomp import models
    from tfcomp.cli import format_table
    from tfcomp.cwic.training import coding_report
    from tfcomp.evaluate import load_images
    items = load_images(args.data)
    rows = []
    for name in models.model_names("learned"):
        spec = models.get_spec(name)
        if spec.codec != "cwic" or not spec.weights_present:
            continue
        r = coding_report(models.load_model(name), models.load_extra(name), items)
        rows.append({"model": name, **r})
    print(format_table(["model", "raw bits bpp", "coded bits bpp", "raw map bpp", "coded map bpp",
                        "saving"], [(r["model"], r["raw_bits_bpp"], r["coded_bits_bpp"],
                                     r["raw_map_bpp"], r["coded_map_bpp"], r["saving"])
                                    for r in rows]))
    if args.json:  # written atomically, like every tfcomp output
        from tfcomp.imageio import write_json
        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
