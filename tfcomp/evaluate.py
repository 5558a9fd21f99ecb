"""Rate-distortion evaluation: real files written, real bytes counted, metrics per image."""

import os
import tempfile

import numpy as np

from . import metrics
from .codecs import get_codec
from .errors import InputError
from .imageio import list_images, read_image, write_bytes, write_image

__all__ = ["evaluate_codec", "evaluate_restorer", "progress", "load_images"]


def progress(iterable, total, desc, enabled=True):
    """A tqdm progress bar on stderr (shown on terminals only unless forced)."""
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, unit="img", disable=None if enabled else True,
                leave=False)


def _items(data):
    """[(name, path-or-array)] from a directory/glob or an explicit list of pairs."""
    if isinstance(data, (str, os.PathLike)):
        return [(os.path.splitext(os.path.basename(p))[0], p) for p in list_images(data)]
    return list(data)


def _load(item, mode):
    return read_image(item, mode=mode) if isinstance(item, (str, os.PathLike)) else np.asarray(item)


def _file_round_trip(codec, image, quality, path):
    """Writes codec.encode(image) to `path`, decodes the file as read back; (decoded, bpp)."""
    write_bytes(path, codec.encode(image, quality))
    with open(path, "rb") as f:
        decoded = codec.decode(f.read())
    if image.ndim == 2:
        decoded = decoded[:, :, 0]
    return decoded, metrics.file_bpp(path, *image.shape[:2])


def load_images(data, mode="rgb"):
    """[(name, uint8 array)] for a directory/glob (or already-loaded pairs)."""
    return [(name, _load(item, mode)) for name, item in _items(data)]


def _mean(values):
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None


def evaluate_codec(codec_name, data, qualities=None, options=None, out_dir=None,
                   show_progress=True):
    """Encodes every image at every quality into a real file, decodes it, measures it.

    Returns the interfaces.md JSON dict: {"codec", "data", "points": [{"quality", "bpp",
    "psnr", "ms_ssim", "ms_ssim_db", "images": [...]}]}. bpp counts the bytes of the file
    on disk. MS-SSIM needs both sides >= 161 pixels (null otherwise). Files (and decoded
    PNGs) are kept under `out_dir` when given, else written to a temporary folder.
    """
    codec = get_codec(codec_name, **(options or {}))
    qualities = list(qualities) if qualities else list(codec.sweep)
    for q in qualities:
        codec.check_quality(q)
    items = _items(data)
    points = {q: [] for q in qualities}
    with tempfile.TemporaryDirectory(prefix="tfcomp-eval-") as tmp:
        folder = out_dir or tmp
        os.makedirs(folder, exist_ok=True)
        bar = progress(items, len(items), f"evaluate {codec_name}", show_progress)
        for name, item in bar:
            image = _load(item, "rgb")
            h, w = image.shape[:2]
            for q in qualities:
                path = os.path.join(folder, f"{name}_q{q}{codec.extension}")
                decoded, bpp = _file_round_trip(codec, image, q, path)
                if out_dir:
                    write_image(os.path.join(folder, f"{name}_q{q}.png"), decoded)
                ms = metrics.ms_ssim(image, decoded) if min(h, w) >= 161 else None
                points[q].append({"name": name, "bpp": bpp,
                                  "psnr": metrics.psnr(image, decoded), "ms_ssim": ms})
    result = {"codec": codec_name, "data": str(data) if isinstance(data, (str, os.PathLike))
              else "<arrays>", "options": codec.settings, "points": []}
    for q in qualities:
        imgs = points[q]
        ms = _mean([i["ms_ssim"] for i in imgs])
        result["points"].append({
            "quality": q, "bpp": _mean([i["bpp"] for i in imgs]),
            "psnr": _mean([i["psnr"] for i in imgs]), "ms_ssim": ms,
            "ms_ssim_db": metrics.ms_ssim_db(ms) if ms is not None else None,
            "images": imgs})
    return result


def _restorer_metrics(ref, test):
    return {"psnr": metrics.psnr(ref, test), "ssim": metrics.ssim(ref, test),
            "psnr_b": metrics.psnr_b(ref, test)}


def evaluate_restorer(model_name, data, qualities=(10, 20, 30, 40), gray=False, out_dir=None,
                      show_progress=True, model=None):
    """JPEG at each quality, then the restorer: PSNR/SSIM/PSNR-B before and after.

    RGB protocol: colour images, 4:2:0 JPEG, metrics on RGB. Gray protocol (`gray=True`):
    the BT.601 studio-range Y (MATLAB rgb2ycbcr, rounded) of a colour image, or the gray
    image itself, encoded as a 1-channel JPEG; metrics on that channel.
    """
    from .models import load_model
    from .restore import restore_array
    model = model or load_model(model_name)
    jpeg = get_codec("jpeg")
    items = _items(data)
    per_q = {q: [] for q in qualities}
    with tempfile.TemporaryDirectory(prefix="tfcomp-eval-") as tmp:
        folder = out_dir or tmp
        os.makedirs(folder, exist_ok=True)
        for name, item in progress(items, len(items), f"restore {model_name}", show_progress):
            image = _load(item, "any" if gray else "rgb")
            if gray and image.ndim == 3:
                image = metrics.rgb_to_y(image, rounded=True)
            for q in qualities:
                decoded, bpp = _file_round_trip(jpeg, image, q, os.path.join(folder, f"{name}_q{q}.jpg"))
                restored = restore_array(model, decoded)
                if out_dir:
                    write_image(os.path.join(folder, f"{name}_q{q}_restored.png"), restored)
                per_q[q].append({"name": name, "bpp": bpp,
                                 "jpeg": _restorer_metrics(image, decoded),
                                 "restored": _restorer_metrics(image, restored)})
    points = []
    for q in qualities:
        imgs = per_q[q]
        point = {"quality": q, "bpp": _mean([i["bpp"] for i in imgs])}
        for side in ("jpeg", "restored"):
            point[side] = {k: _mean([i[side][k] for i in imgs]) for k in ("psnr", "ssim", "psnr_b")}
        point["psnr_gain"] = point["restored"]["psnr"] - point["jpeg"]["psnr"]
        point["images"] = imgs
        points.append(point)
    if not items:
        raise InputError("no images to evaluate")
    return {"restorer": model_name, "data": str(data) if isinstance(data, (str, os.PathLike))
            else "<arrays>", "protocol": "gray-Y" if gray else "rgb", "points": points}
