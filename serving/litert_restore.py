#!/usr/bin/env python3
"""Restore an image with a tfcomp TFLite export on LiteRT (ai-edge-litert), without TensorFlow.

    python serving/litert_restore.py photo.jpg -o restored.png --model exported/restorer-blind-float32.tflite
    python serving/litert_restore.py photo.jpg -o restored.png --model exported/restorer-blind-tile256-int8.tflite

Dynamic-shape models run the whole image at once; fixed-size (tile) models run overlapping
tiles placed inside the image with --margin pixels of context (>= the network's receptive
radius, 8 for the restorers), so the result equals a whole-image pass except along the
borders of images smaller than one tile (edge-padded). Needs ai-edge-litert, numpy, Pillow.
"""

import argparse
import os
import sys
import tempfile

import numpy as np


def _windows(length, tile, margin):
    """[(window start, core start, core end)] covering 0..length with windows of `tile`."""
    if length <= tile:
        return [(0, 0, length)]
    step = tile - 2 * margin
    out, core = [], 0
    while core < length:
        end = min(core + step, length)
        start = min(max(core - margin, 0), length - tile)
        out.append((start, core, end))
        core = end
    return out


class Restorer:
    """A tfcomp TFLite restorer on LiteRT: float32 [1, H, W, C] in [0, 1] -> same."""

    def __init__(self, path, threads=None):
        from ai_edge_litert.interpreter import Interpreter
        self.interp = Interpreter(model_path=path, num_threads=threads)
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]
        sig = [int(d) for d in self.inp["shape_signature"]]
        self.channels = sig[3]
        self.tile = None if -1 in sig else (sig[1], sig[2])
        self._shape = None

    def run(self, x):
        if x.shape != self._shape:
            if self.tile is None:
                self.interp.resize_tensor_input(self.inp["index"], x.shape, strict=True)
            self.interp.allocate_tensors()
            self._shape = x.shape
        self.interp.set_tensor(self.inp["index"], np.ascontiguousarray(x, np.float32))
        self.interp.invoke()
        return self.interp.get_tensor(self.out["index"])

    def restore(self, image, margin=16):
        """uint8 [H, W, C] -> uint8 [H, W, C]."""
        x = image.astype(np.float32)[None] / 255.0
        if self.tile is None:
            y = self.run(x)[0]
        else:
            th, tw = self.tile
            if 2 * margin >= min(th, tw):
                raise ValueError(f"margin {margin} too large for {th}x{tw} tiles")
            h, w = image.shape[:2]
            pad = ((0, 0), (0, max(0, th - h)), (0, max(0, tw - w)), (0, 0))
            xp = np.pad(x, pad, mode="edge")
            y = np.empty(xp.shape[1:], np.float32)
            for wy, cy0, cy1 in _windows(xp.shape[1], th, margin):
                for wx, cx0, cx1 in _windows(xp.shape[2], tw, margin):
                    r = self.run(xp[:, wy:wy + th, wx:wx + tw])[0]
                    y[cy0:cy1, cx0:cx1] = r[cy0 - wy:cy1 - wy, cx0 - wx:cx1 - wx]
            y = y[:h, :w]
        return np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="image file (any format Pillow reads)")
    p.add_argument("-o", "--output", required=True, help="PNG to write")
    p.add_argument("--model", required=True, help="a .tflite file from `tfcomp export`")
    p.add_argument("--margin", type=int, default=16, help="tile overlap context (default 16)")
    p.add_argument("--threads", type=int, help="interpreter threads")
    args = p.parse_args(argv)
    from PIL import Image
    try:
        restorer = Restorer(args.model, args.threads)
        with Image.open(args.input) as im:
            im = im.convert("RGB" if restorer.channels == 3 else "L")
            image = np.asarray(im).reshape(im.height, im.width, restorer.channels)
        out = restorer.restore(image, args.margin)
        folder = os.path.dirname(os.path.abspath(args.output))
        fd, tmp = tempfile.mkstemp(prefix=".restored.", suffix=".png", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                Image.fromarray(out[:, :, 0] if out.shape[2] == 1 else out).save(f, format="PNG")
            umask = os.umask(0o022)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, args.output)
        except BaseException:
            os.unlink(tmp)
            raise
    except (OSError, ValueError) as e:
        print(f"litert_restore: error: {e}", file=sys.stderr)
        return 1
    print(f"{args.output}: {image.shape[1]}x{image.shape[0]} restored with "
          f"{os.path.basename(args.model)}" + (f" in {restorer.tile[0]}x{restorer.tile[1]} tiles"
                                               if restorer.tile else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
