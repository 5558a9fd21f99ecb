"""Near-duplicate images between a training set and an evaluation set (no TensorFlow).

A photo that is in both sets (re-saved, converted to gray, cropped by a pixel, as BSD68's
481x321 gray images are in train/bsd100's 480x320 colour ones) makes the evaluation
measure memory instead of generalisation. Each image becomes a 48x32 gray thumbnail (turned
to landscape first); two images are near-duplicates when their thumbnails differ by less
than DUPLICATE_THRESHOLD grey levels on average. On the shared data the 68 BSD68/bsd100
pairs differ by at most 2.2 levels and every other pair of training and evaluation images
by 14.5 or more.

    python -m tfcomp.overlap --train ../shared/data/train/* --eval ../shared/data/eval/*
"""

import argparse
import os
import sys

import numpy as np
from PIL import Image

from .errors import InputError
from .imageio import list_images, read_image

__all__ = ["DUPLICATE_THRESHOLD", "thumbnail", "near_duplicates", "exclude_near_duplicates"]

DUPLICATE_THRESHOLD = 6.0
THUMBNAIL = (48, 32)


def thumbnail(path):
    """float32 [32, 48]: the image in gray, turned to landscape, resized (bilinear)."""
    gray = read_image(path, mode="gray")  # HxW
    if gray.shape[0] > gray.shape[1]:
        gray = np.rot90(gray)
    small = Image.fromarray(np.ascontiguousarray(gray)).resize(THUMBNAIL, Image.BILINEAR)
    return np.asarray(small, np.float32)


def near_duplicates(files, references, threshold=DUPLICATE_THRESHOLD):
    """[(file, reference, distance)] for each of `files` whose nearest image in `references`
    (paths) is within `threshold` mean grey levels; files in order."""
    files, references = list(files), list(references)
    if not files or not references:
        return []
    a, b = (np.stack([thumbnail(p) for p in paths]) for paths in (files, references))
    found = []
    for i, x in enumerate(a):
        d = np.abs(b - x).mean(axis=(1, 2))
        j = int(np.argmin(d))
        if d[j] < threshold:
            found.append((files[i], references[j], float(d[j])))
    return found


def exclude_near_duplicates(source, exclude, threshold=DUPLICATE_THRESHOLD):
    """(kept paths, dropped [(file, reference, distance)]): the images of `source` (folders,
    globs or files, as list_images takes) without the near-duplicates of any image in
    `exclude`. InputError when nothing is left."""
    files = list_images(source)
    dropped = near_duplicates(files, list_images(exclude), threshold)
    gone = {f for f, _, _ in dropped}
    kept = [f for f in files if f not in gone]
    if not kept:
        raise InputError(f"every training image is a near-duplicate of an image in {exclude}")
    return kept, dropped


def _short(path):
    parent, name = os.path.split(path)
    return os.path.join(os.path.basename(parent), name)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tfcomp.overlap", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", nargs="+", required=True, help="training folders (or globs)")
    p.add_argument("--eval", nargs="+", required=True, help="evaluation folders (or globs)")
    p.add_argument("--threshold", type=float, default=DUPLICATE_THRESHOLD,
                   help="mean grey-level distance of near-duplicates (default %(default)s)")
    p.add_argument("--list", action="store_true", help="also print every pair")
    args = p.parse_args(argv)
    try:
        train = {t: list_images(t) for t in args.train}
        evals = {e: list_images(e) for e in args.eval}
        print(f"{'evaluation set':<28} {'training set':<28} {'images':>6} {'duplicates':>10}")
        pairs = []
        for e, efiles in evals.items():
            for t, tfiles in train.items():
                found = near_duplicates(efiles, tfiles, args.threshold)
                pairs += found
                print(f"{os.path.basename(e.rstrip('/')):<28} {os.path.basename(t.rstrip('/')):<28} "
                      f"{len(efiles):>6} {len(found):>10}")
        if args.list:
            for e, t, d in pairs:
                print(f"  {_short(e)}  ~  {_short(t)}  ({d:.2f})")
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
