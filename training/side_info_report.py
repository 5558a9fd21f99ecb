#!/usr/bin/env python3
"""Measure JPD-SE's semantic side information against BPG's own bits (README table).

For each working size: the lossless coders of tfcomp.jpdse.semantic (mean bytes and bpp per
frame over all frames) and, on the held-out frames, the chosen side information next to
BPG's bpp at the given QPs and the coarse side information (label map at 1/2, 1/4, 1/8
resolution, no instance edges: side-information method 2).
  python training/side_info_report.py --data ../shared/data/cityscapes_sample \\
      --sizes 512x256 1024x512 2048x1024
"""

import argparse
import os
import sys


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="Cityscapes-layout folder")
    p.add_argument("--sizes", nargs="+", default=["512x256"], help="working sizes WxH")
    p.add_argument("--qps", type=int, nargs="+", default=[33, 39, 42], help="BPG QPs to compare")
    p.add_argument("--json", help="also write the numbers here")
    args = p.parse_args(argv)

    import numpy as np
    from tfcomp.codecs import bpg
    from tfcomp.evaluate import progress
    from tfcomp.report import markdown_table
    from tfcomp.jpdse.semantic import (cityscapes_frames, encode_side_info, load_frame,
                                 side_info_report, split_frames)
    frames = cityscapes_frames(args.data)
    _, heldout = split_frames(frames)
    out = {}
    for text in args.sizes:
        w, h = (int(v) for v in text.lower().split("x"))
        report = side_info_report(frames, (w, h))
        print(f"\n{len(frames)} frames at {w}x{h}: lossless coders\n")
        print(markdown_table(["coder", "bytes/frame", "bpp"],
                             [(k, f"{v['bytes_per_frame']:.0f}", f"{v['bpp']:.4f}")
                              for k, v in report.items()]))
        scales = (2, 4, 8)
        rows = {"side": [], **{f"side_1/{s}": [] for s in scales}, **{q: [] for q in args.qps}}
        for frame in progress(heldout, len(heldout), f"BPG {w}x{h}"):
            rgb, labels, instances = load_frame(frame, (w, h))
            rows["side"].append(8 * len(encode_side_info(labels, instances)) / (w * h))
            for s in scales:
                rows[f"side_1/{s}"].append(8 * len(encode_side_info(labels, scale=s)) / (w * h))
            for q in args.qps:
                rows[q].append(8 * len(bpg.encode(rgb, q)) / (w * h))
        means = {str(k): float(np.mean(v)) for k, v in rows.items()}
        print(f"\n{len(heldout)} held-out frames at {w}x{h} (bpp): side info {means['side']:.4f}, "
              + ", ".join(f"labels at 1/{s} {means[f'side_1/{s}']:.4f}" for s in scales) + ", "
              + ", ".join(f"BPG QP{q} {means[str(q)]:.4f}" for q in args.qps))
        out[text] = {"coders": {k: {"bytes_per_frame": v["bytes_per_frame"], "bpp": v["bpp"]}
                                for k, v in report.items()}, "heldout_bpp": means}
    if args.json:
        from tfcomp.imageio import write_json
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
