#!/usr/bin/env python3
"""How the BPG bits proxy (tfcomp.hiding.bpg_rate) tracks real BPG files: for a hiding-bpg
model's sent images, the proxy's difference against the original beside the real extra
bytes (bpp) of the sent file over the plain one, per image crop, and their ratio."""

import argparse
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="hiding-bpg-qp30-s2", help="installed hiding-bpg model")
    p.add_argument("--data", default="../shared/data/eval/mcmaster", help="image folder")
    p.add_argument("--images", type=int, default=8, help="first N images (default 8)")
    p.add_argument("--crop", type=int, default=256, help="top-left crop side (default 256)")
    args = p.parse_args(argv)
    files = sorted(glob.glob(os.path.join(args.data, "*.png")))[:args.images]
    if not files:
        p.error(f"no .png images in {args.data}")
    import numpy as np
    import tensorflow as tf
    from tfcomp import models
    from tfcomp.errors import TfcompError
    from tfcomp.hiding.bpg_rate import bpg_rate_proxy
    from tfcomp.hiding.model import real_codec, st_quantize
    from tfcomp.imageio import read_image
    try:
        model = models.load_model(args.model)
    except TfcompError as e:
        p.error(str(e))
    crops = [read_image(f)[:args.crop, :args.crop] for f in files]
    if any(c.shape != crops[0].shape or c.ndim != 3 for c in crops):
        p.error(f"every image must be RGB and at least {args.crop} pixels a side")
    x = tf.constant(np.stack(crops), tf.float32) / 255.0
    qp = model.quality
    plain, plain_bytes = real_codec(x, qp, "bpg")
    sent = st_quantize(model.hide(x, plain))
    _, sent_bytes = real_codec(sent, qp, "bpg")
    pixels = x.shape[1] * x.shape[2]
    extra_proxy = (bpg_rate_proxy(sent, qp) - bpg_rate_proxy(x, qp)).numpy()
    extra_real = 8.0 * (sent_bytes.numpy() - plain_bytes.numpy()) / pixels
    print(f"{args.model}, QP {qp}, {len(files)} crops of {args.crop}x{args.crop} from {args.data}")
    print("| image | plain bpp | sent bpp | real extra bpp | proxy extra | ratio |")
    print("|---|---|---|---|---|---|")
    for f, pb, sb, er, ep in zip(files, plain_bytes.numpy(), sent_bytes.numpy(), extra_real,
                                 extra_proxy):
        print(f"| {os.path.basename(f)} | {8 * pb / pixels:.3f} | {8 * sb / pixels:.3f} | "
              f"{er:.3f} | {ep:.4f} | {er / ep:.2f} |")
    rank = lambda a: np.argsort(np.argsort(a))  # noqa: E731
    rho = np.corrcoef(rank(extra_real), rank(extra_proxy))[0, 1]
    print(f"mean ratio {np.mean(extra_real) / np.mean(extra_proxy):.2f} real bpp per proxy unit; "
          f"Spearman rank correlation {rho:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
