"""Rate-distortion evaluation: real files written, real bytes counted, metrics per image."""

import os
import tempfile

import numpy as np

from . import metrics
from .codecs import get_codec
from .errors import InputError
from .imageio import list_images, read_image, write_bytes, write_image

__all__ = ["evaluate_codec", "evaluate_restorer", "evaluate_hiding", "evaluate_jpdse", "progress",
           "load_images", "gate_statistics"]


def progress(iterable, total, desc, enabled=True):
    """A tqdm progress bar on stderr (shown on terminals only unless forced)."""
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, unit="img", disable=None if enabled else True,
                leave=False)


def check_weights_file(path, what="--weights"):
    """InputError unless `path` is an existing .weights.h5 file (a user's own weights)."""
    if not os.path.isfile(path) or not str(path).endswith(".weights.h5"):
        raise InputError(f"{what}: {path} is not an existing .weights.h5 file")


def _items(data):
    """[(name, path-or-array)] from a directory/glob or an explicit list of pairs; InputError
    when there are none (the first check of every evaluation)."""
    if isinstance(data, (str, os.PathLike)):
        return [(os.path.splitext(os.path.basename(p))[0], p) for p in list_images(data)]
    items = list(data)
    if not items:
        raise InputError("no images to evaluate")
    return items


def _load(item, mode):
    return read_image(item, mode=mode) if isinstance(item, (str, os.PathLike)) else np.asarray(item)


def gate_statistics(model, data, qualities=(10, 30, 50, 70, 90), show_progress=True):
    """What a quality-gated restorer's gate (tfcomp.restorer.model.split_gate) says per JPEG quality:
    {quality: {"mean": [per channel], "min": [...], "max": [...]}} over the images (RGB, 4:2:0
    JPEG by the registry codec, whole image as in restore_array)."""
    from .restorer.model import split_gate
    parts = split_gate(model)
    if parts is None:
        raise InputError("the model has no quality gate (restorers built with "
                         "quality_gate=True have one, e.g. restorer-blind)")
    gate = parts[0]
    jpeg = get_codec("jpeg")
    values = {q: [] for q in qualities}
    items = _items(data)
    for _, item in progress(items, len(items), "gate", show_progress):
        image = _load(item, "rgb" if gate.input_shape[-1] == 3 else "gray")
        for q in qualities:
            decoded = np.asarray(jpeg.decode(jpeg.encode(image, q)), np.float32) / 255.0
            x = decoded.reshape(1, *decoded.shape[:2], -1)
            values[q].append(gate(x, training=False).numpy()[0])
    return {q: {"mean": np.mean(v, 0).tolist(), "min": np.min(v, 0).tolist(),
                "max": np.max(v, 0).tolist()} for q, v in values.items()}


def file_round_trip(codec, image, quality, path):
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
                decoded, bpp = file_round_trip(codec, image, q, path)
                if out_dir:
                    write_image(os.path.join(folder, f"{name}_q{q}.png"), decoded)
                ms = metrics.ms_ssim(image, decoded) if min(h, w) >= 161 else None
                points[q].append({"name": name, "bpp": bpp,
                                  "psnr": metrics.psnr(image, decoded), "ms_ssim": ms})
    return _codec_result(codec_name, str(data) if isinstance(data, (str, os.PathLike))
                         else "<arrays>", points, codec.settings)


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
    from .restorer.restore import restore_array
    items = _items(data)
    model = model or load_model(model_name)
    jpeg = get_codec("jpeg")
    per_q = {q: [] for q in qualities}
    with tempfile.TemporaryDirectory(prefix="tfcomp-eval-") as tmp:
        folder = out_dir or tmp
        os.makedirs(folder, exist_ok=True)
        for name, item in progress(items, len(items), f"restore {model_name}", show_progress):
            image = _load(item, "any" if gray else "rgb")
            if gray and image.ndim == 3:
                image = metrics.rgb_to_y(image, rounded=True)
            for q in qualities:
                decoded, bpp = file_round_trip(jpeg, image, q, os.path.join(folder, f"{name}_q{q}.jpg"))
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
    return {"restorer": model_name, "data": str(data) if isinstance(data, (str, os.PathLike))
            else "<arrays>", "protocol": "gray-Y" if gray else "rgb", "points": points}


def quality_at_bpp(codec, image, target_bpp, start, folder, name, at_start=None):
    """The first quality from `start` towards better whose file has >= target_bpp bits/pixel.

    Walks the knob one step at a time (file size grows with quality); returns
    (quality, decoded, bpp, below) — the plain codec gets at least the hidden file's bits;
    `below` is the walk's previous step (quality, decoded, bpp), whose file is smaller than
    target_bpp, or None when the walk stopped at `start`.
    `at_start`: the (decoded, bpp) already measured at `start`, if any.
    """
    step = 1 if codec.higher_is_better else -1
    q, below = start, None
    while True:
        if q == start and at_start is not None:
            decoded, bpp = at_start
        else:
            decoded, bpp = file_round_trip(codec, image, q,
                                           os.path.join(folder, f"{name}_eq{q}{codec.extension}"))
        nxt = q + step
        if bpp >= target_bpp or not codec.quality_min <= nxt <= codec.quality_max:
            return q, decoded, bpp, below
        q, below = nxt, (q, decoded, bpp)


def at_bpp(target, low, high):
    """Metrics at exactly `target` bpp, linear in bpp between two measured points.

    `low` / `high` = (quality, bpp, {metric: value}) of two neighbouring qualities whose
    files bracket `target`; outside them the nearer point is taken (no extrapolation), and its
    bpp is reported. Returns {"quality_lo", "quality", "bpp", metric: value, ...}.
    """
    (q0, b0, m0), (q1, b1, m1) = low, high
    t = 1.0 if b1 <= b0 else min(max((target - b0) / (b1 - b0), 0.0), 1.0)
    values = {k: m0[k] + t * (m1[k] - m0[k]) for k in m0}
    return {"quality_lo": q0, "quality": q1, "bpp": b0 + t * (b1 - b0), **values}


def evaluate_hiding(model_name, data, quality=None, restorer="restorer-blind", out_dir=None,
                    show_progress=True, figure=None, weights=None):
    """The residual-hiding codec against its plain codec and plain codec + restorer.

    Per image: the hiding file at `quality` (bpp from its bytes; PSNR/SSIM of the decoder's
    output, and of the file as a plain viewer shows it); the plain codec at the same
    quality, without and with `restorer`; and at equal bpp: the plain codec at the first
    quality whose file is at least as large as the hiding file, without and with `restorer`
    ("plain_eq*": it gets up to one quality step more bytes, a margin in its favour), and
    at exactly the hiding file's bpp, interpolated between that quality and the one below
    ("plain_at_bpp*", `at_bpp`).
    `figure` = (image name, PNG path): side-by-side crops of that image where JPEG errs most.
    `weights`: a .weights.h5 of the model's architecture instead of its shipped weights (to
    measure a training run's candidate before it ships).
    """
    from .models import get_spec, load_model
    from .plot import plot_crops, worst_crop
    from .restorer.restore import restore_array
    spec = get_spec(model_name)
    if spec.kind != "hiding":
        raise InputError(f"model {model_name!r} is a {spec.kind} model, not a hiding model")
    hiding = get_codec(spec.codec, model=model_name, weights=weights)
    plain = hiding.plain
    quality = hiding.check_quality(spec.quality_default if quality is None else quality)
    post = load_model(restorer)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tfcomp-eval-") as tmp:
        folder = out_dir or tmp
        os.makedirs(folder, exist_ok=True)
        items = _items(data)
        if figure and figure[0] not in [name for name, _ in items]:
            raise InputError(f"no image named {figure[0]!r} in {data} for the figure")
        for name, item in progress(items, len(items), f"evaluate {model_name}", show_progress):
            image = _load(item, "rgb")
            path = os.path.join(folder, f"{name}_{model_name}_q{quality}{hiding.extension}")
            output, bpp = file_round_trip(hiding, image, quality, path)
            with open(path, "rb") as f:
                viewer = plain.decode(f.read())
            same, same_bpp = file_round_trip(plain, image, quality,
                                             os.path.join(folder, f"{name}_q{quality}{plain.extension}"))
            eq_q, eq, eq_bpp, below = quality_at_bpp(plain, image, bpp, quality, folder, name,
                                                     at_start=(same, same_bpp))
            if out_dir:
                write_image(os.path.join(folder, f"{name}_{model_name}_q{quality}.png"), output)
            same_restored = restore_array(post, same)
            # The quality one step below eq_q brackets the hiding file's bpp with it: the
            # walk's previous step, or (the walk stopped at `quality`) the step below that.
            lo_q = eq_q - (1 if plain.higher_is_better else -1)
            if below is not None:
                lo_q, lo, lo_bpp = below
            elif plain.quality_min <= lo_q <= plain.quality_max:
                lo, lo_bpp = file_round_trip(plain, image, lo_q, os.path.join(
                    folder, f"{name}_eq{lo_q}{plain.extension}"))
            else:  # no quality below: the equal-bpp point alone
                lo_q, lo, lo_bpp = eq_q, eq, eq_bpp
            same_m, same_restored_m = (_restorer_metrics(image, same),
                                       _restorer_metrics(image, same_restored))
            if eq_q == quality:  # the walk stopped at `quality`: eq is `same`
                eq_restored, eq_m, eq_restored_m = same_restored, same_m, same_restored_m
            else:
                eq_restored = restore_array(post, eq)
                eq_m = _restorer_metrics(image, eq)
                eq_restored_m = _restorer_metrics(image, eq_restored)
            # lo is `same` or `eq` unless it is a third quality: reuse what was measured.
            if lo_q == quality:
                lo_m, lo_restored_m = same_m, same_restored_m
            elif lo_q == eq_q:
                lo_m, lo_restored_m = eq_m, eq_restored_m
            else:
                lo_m = _restorer_metrics(image, lo)
                lo_restored_m = _restorer_metrics(image, restore_array(post, lo))
            row = {
                "name": name,
                "hiding": {"bpp": bpp, **_restorer_metrics(image, output)},
                "hiding_view": {"bpp": bpp, **_restorer_metrics(image, viewer)},
                "plain": {"quality": quality, "bpp": same_bpp, **same_m},
                "plain_restored": {"quality": quality, "bpp": same_bpp, **same_restored_m},
                "plain_eq": {"quality": eq_q, "bpp": eq_bpp, **eq_m},
                "plain_eq_restored": {"quality": eq_q, "bpp": eq_bpp, **eq_restored_m},
                "plain_at_bpp": at_bpp(bpp, (lo_q, lo_bpp, lo_m), (eq_q, eq_bpp, eq_m)),
                "plain_at_bpp_restored": at_bpp(bpp, (lo_q, lo_bpp, lo_restored_m),
                                                (eq_q, eq_bpp, eq_restored_m)),
            }
            rows.append(row)
            if figure and name == figure[0]:
                def caption(label, key):
                    return f"{label}\n{row[key]['psnr']:.2f} dB, {row[key]['bpp']:.3f} bpp"
                plot_crops([("original", image),
                            (caption(f"{plain.name} q{quality}", "plain"), same),
                            (caption(f"{plain.name} q{eq_q} + {restorer}", "plain_eq_restored"),
                             eq_restored),
                            (caption("the file in a plain viewer", "hiding_view"), viewer),
                            (caption(f"{model_name} decoded", "hiding"), output)],
                           figure[1], worst_crop(image, same, 128),
                           title=f"{name}: {model_name} at q{quality} vs {plain.name} "
                                 f"(equal bpp: q{eq_q})")
    summary = {}
    for key in rows[0]:
        if key == "name":
            continue
        summary[key] = {m: _mean([r[key][m] for r in rows]) for m in rows[0][key]}
    return {"model": model_name, "codec": spec.codec, "plain_codec": plain.name,
            "quality": quality, "restorer": restorer, "weights": weights,
            "data": str(data) if isinstance(data, (str, os.PathLike)) else "<arrays>",
            "summary": summary, "images": rows}


def _codec_result(name, data, per_q, options=None):
    """interfaces.md codec JSON from {quality: [per-image dicts with bpp/psnr/ms_ssim]}."""
    points = []
    for q, imgs in per_q.items():
        ms = _mean([i["ms_ssim"] for i in imgs])
        points.append({"quality": q, "bpp": _mean([i["bpp"] for i in imgs]),
                       "psnr": _mean([i["psnr"] for i in imgs]), "ms_ssim": ms,
                       "ms_ssim_db": metrics.ms_ssim_db(ms) if ms is not None else None,
                       "images": imgs})
    return {"codec": name, "data": data, "options": options or {}, "points": points}


def _image_row(name, reference, decoded, nbytes):
    h, w = reference.shape[:2]
    return {"name": name, "bpp": 8.0 * nbytes / (h * w), "psnr": metrics.psnr(reference, decoded),
            "ms_ssim": metrics.ms_ssim(reference, decoded) if min(h, w) >= 161 else None}


def evaluate_jpdse(records, qps, model_names, data="<records>", out_dir=None, show_progress=True,
                   weights=None):
    """Plain BPG vs the jpdse-bpg models on prepared frames (tfcomp.jpdse.data records).

    Every jpdse-bpg file is really written (BPG stream + side information + header) and its
    bytes give the bpp. `weights`: {model: .weights.h5} to evaluate a generator of that
    model's architecture (e.g. a training run's --generator-out) instead of the shipped file;
    its result records the file in "options". Returns (results list in the interfaces.md
    codec layout, first one plain BPG; {(model, name, qp): decoded image} for figures).
    """
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(model_names))
    if unknown:
        raise InputError(f"weights given for {', '.join(unknown)}, which is not evaluated "
                         f"(models: {', '.join(model_names)})")
    for m, path in weights.items():
        check_weights_file(path, f"weights for {m}")
    from .codecs import bpg
    plain = {q: [] for q in qps}
    ours = {m: {q: [] for q in qps} for m in model_names}
    outputs = {}
    folder = out_dir
    for rec in progress(records, len(records), "evaluate jpdse", show_progress):
        name, rgb = rec["name"], rec["rgb"]
        for q in qps:
            stream = bpg.encode(rgb, q)
            decoded = bpg.decode(stream)
            plain[q].append(_image_row(name, rgb, decoded, len(stream)))
            outputs[("bpg", name, q)] = decoded
            for m in model_names:
                codec = get_codec("jpdse-bpg", labels=rec["labels"], instances=rec["instances"],
                                  model=m, weights=weights.get(m))
                blob = codec.encode(rgb, q)
                if folder:
                    write_bytes(os.path.join(folder, f"{name}_{m}_qp{q}.jpdse"), blob)
                out = codec.decode(blob)
                ours[m][q].append(_image_row(name, rgb, out, len(blob)))
                outputs[(m, name, q)] = out
    results = [_codec_result("bpg", data, plain)]
    results += [_codec_result(m, data, ours[m], {"side_info": "counted",
                                                 **({"weights": weights[m]} if m in weights else {})})
                for m in model_names]
    return results, outputs
