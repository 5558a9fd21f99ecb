#!/usr/bin/env python3
"""Reconstructions of every installed cwic rate model beside JPEG at about the same bpp.

  python training/cwic_figure.py --image ../shared/data/eval/mcmaster/05.png \\
      -o results/codecs/cwic_crops.png
Panels: the original, then per rate model JPEG (the lowest quality whose file has at least the
.cwic file's bits, so JPEG never gets fewer) and cwic, cropped where JPEG errs most at the
middle rate. Files are written for real (kept with --keep DIR) and bpp counted from them.
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", required=True, help="the image to show")
    p.add_argument("-o", "--output", required=True, help="figure path (.png)")
    p.add_argument("--crop", type=int, default=160, help="crop side in pixels (default 160)")
    p.add_argument("--keep", metavar="DIR", help="keep the written .cwic/.jpg files here")
    args = p.parse_args(argv)
    from tfcomp import metrics
    from tfcomp.codecs import get_codec
    from tfcomp.errors import InputError
    from tfcomp.evaluate import file_round_trip, quality_at_bpp
    from tfcomp.imageio import read_image
    from tfcomp.plot import plot_crops, worst_crop
    try:
        image = read_image(args.image, "rgb")
        cwic, jpeg = get_codec("cwic"), get_codec("jpeg")
        rates = cwic.installed_rates
        if not rates:
            raise InputError("no cwic rate model is installed")
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    name = os.path.splitext(os.path.basename(args.image))[0]
    folder = args.keep or tempfile.mkdtemp(prefix="cwic_figure_")
    os.makedirs(folder, exist_ok=True)

    def caption(label, decoded, bpp):
        return (f"{label}: {bpp:.3f} bpp\n{metrics.psnr(image, decoded):.2f} dB, "
                f"MS-SSIM {metrics.ms_ssim(image, decoded):.4f}")

    panels, jpeg_outputs = [("original", image)], []
    for rate in rates:
        path = os.path.join(folder, f"{name}_r{rate}.cwic")
        decoded, bpp = file_round_trip(cwic, image, rate, path)
        q, jdec, jbpp, _ = quality_at_bpp(jpeg, image, bpp, jpeg.quality_min, folder, name)
        panels += [(caption(f"JPEG q{q}", jdec, jbpp), jdec),
                   (caption(f"cwic-{rate}", decoded, bpp), decoded)]
        jpeg_outputs.append(jdec)
    box = worst_crop(image, jpeg_outputs[len(jpeg_outputs) // 2], args.crop)
    h, w = image.shape[:2]
    plot_crops(panels, args.output, box, title=f"{name} ({w}x{h}): cwic beside JPEG with at least "
               "as many bytes; bpp from the files")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
