#!/usr/bin/env python3
"""Evaluate JPD-SE: plain BPG vs jpdse-bpg (side information counted) on the held-out frames.

Writes results/jpdse/{bpg,<model>}.json (interfaces.md codec layout), an RD plot, the BD
numbers against BPG and a side-by-side figure, and prints the README table. Example:
  python training/eval_jpdse.py --data ../shared/data/cityscapes_sample \\
      --models jpdse-bpg-p2 jpdse-bpg-p3
A candidate generator (a training run's --generator-out) in place of a shipped one:
  python training/eval_jpdse.py --data ../shared/data/cityscapes_sample --models jpdse-bpg-p3 \\
      --weights jpdse-bpg-p3=runs/jpdse-p3c/generator.weights.h5 --out runs/jpdse-p3c/eval
"""

import argparse
import os
import sys


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="Cityscapes-layout folder (held-out city evaluated)")
    p.add_argument("--models", nargs="+", default=["jpdse-bpg-p2", "jpdse-bpg-p3"],
                   help="jpdse-bpg models to compare with plain BPG")
    p.add_argument("--qps", type=int, nargs="+", default=[33, 36, 39, 42], help="BPG QPs")
    p.add_argument("--size", type=int, nargs=2, default=(1024, 512), metavar=("W", "H"),
                   help="working resolution (default 1024 512, the shipped models')")
    p.add_argument("--cache-dir", default="runs/jpdse-cache", help="BPG cache of tfcomp.jpdse.data")
    p.add_argument("--weights", action="append", default=[], metavar="MODEL=FILE",
                   help="evaluate FILE (.weights.h5 of MODEL's architecture, e.g. a training "
                        "run's --generator-out) instead of MODEL's shipped weights; repeatable; "
                        "needs --out, so that results/jpdse keeps the shipped models' numbers")
    p.add_argument("--out", help="output folder (default results/jpdse)")
    p.add_argument("--figure-qp", type=int, default=39, help="QP of the side-by-side figure")
    args = p.parse_args(argv)
    from tfcomp.errors import InputError
    from tfcomp.evaluate import check_weights_file
    weights = {}
    for item in args.weights:
        model, sep, path = item.partition("=")
        if not sep or not model or not path:
            p.error(f"--weights {item}: expected MODEL=FILE")
        if model not in args.models:
            p.error(f"--weights {item}: {model} is not in --models ({' '.join(args.models)})")
        if model in weights:
            p.error(f"--weights: {model} is given twice")
        try:  # here, before the frames are prepared; evaluate_jpdse checks it again
            check_weights_file(path, f"--weights {item}")
        except InputError as e:
            p.error(str(e))
        weights[model] = path
    if weights and not args.out:
        p.error("--weights needs --out (results/jpdse holds the shipped models' numbers)")
    args.out = args.out or "results/jpdse"

    from tfcomp.errors import TfcompError
    from tfcomp.evaluate import evaluate_jpdse
    from tfcomp.imageio import write_json
    from tfcomp.jpdse.data import prepare_frames
    from tfcomp.plot import bd_rate_table, plot_codecs
    from tfcomp.report import codec_markdown
    from tfcomp.jpdse.semantic import cityscapes_frames, split_frames
    try:
        _, heldout = split_frames(cityscapes_frames(args.data))
        records = prepare_frames(heldout, args.qps, tuple(args.size), args.cache_dir)
        results, outputs = evaluate_jpdse(records, args.qps, args.models,
                                          data=f"{args.data} (held-out city)", weights=weights)
    except TfcompError as e:
        print(f"eval_jpdse: error: {e}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    for r in results:
        write_json(os.path.join(args.out, f"{r['codec']}.json"), r)
    plot_codecs(results, os.path.join(args.out, "rd.png"), "JPD-SE on BPG (side information counted)")
    bd = bd_rate_table(results, 0)
    from tfcomp.bdrate import bd_psnr
    base = results[0]["points"]
    for row, r in zip(bd, results[1:]):
        try:
            d = bd_psnr([q["bpp"] for q in base], [q["psnr"] for q in base],
                        [q["bpp"] for q in r["points"]], [q["psnr"] for q in r["points"]])
            row["bd_psnr"], row["overlap_bpp"] = d["bd_psnr"], d["overlap"]
            # What the side information alone costs: BPG's own quality at this model's rates.
            row["side_info_cost_db"] = bd_psnr(
                [q["bpp"] for q in base], [q["psnr"] for q in base],
                [q["bpp"] for q in r["points"]], [q["psnr"] for q in base])["bd_psnr"]
        except TfcompError as e:
            row["bd_psnr"], row["overlap_bpp"], row["side_info_cost_db"] = None, str(e), None
        print(f"BD-PSNR of {r['codec']} against bpg: {row['bd_psnr']} dB over bpp "
              f"{row['overlap_bpp']} (the side information alone costs "
              f"{row['side_info_cost_db']} dB)")
    write_json(os.path.join(args.out, "bd.json"), bd)
    # Side by side: original | BPG | each model, crops of one held-out frame at --figure-qp
    # where BPG errs most.
    if args.figure_qp in args.qps:
        rec = records[0]
        from tfcomp.plot import plot_crops, worst_crop
        h, w = rec["rgb"].shape[:2]
        panels = [("original", rec["rgb"])]
        for r in results:
            point = next(i for i in r["points"] if i["quality"] == args.figure_qp)
            img = next(i for i in point["images"] if i["name"] == rec["name"])
            panels.append((f"{r['codec']}: {img['bpp']:.3f} bpp, {img['psnr']:.2f} dB",
                           outputs[(r["codec"], rec["name"], args.figure_qp)]))
        box = worst_crop(rec["rgb"], outputs[("bpg", rec["name"], args.figure_qp)],
                         min(256, rec["rgb"].shape[0]))
        plot_crops(panels, os.path.join(args.out, f"crops_qp{args.figure_qp}.png"), box,
                   title=f"{rec['name']} ({w}x{h}), BPG QP {args.figure_qp}; bpp counts the "
                         "side information")
    print(codec_markdown(results))
    print(f"wrote {args.out}/ (JSON per method, rd.png, bd.json, crops_qp{args.figure_qp}.png)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
