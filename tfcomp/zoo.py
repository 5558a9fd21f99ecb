"""The model zoo: every shipped model with its size, how it was trained and what it measures.

`tfcomp models` prints `tfcomp/weights/zoo.json`, which `python training/make_zoo.py`
writes from the model registry (parameter counts of the built networks, a short hash of each
weights file) and the evaluation JSONs under `results/` that the README's tables come from
(the commands that made them are in each entry). Nothing in it is typed by hand.
"""

import glob
import hashlib
import json
import math
import os

from .errors import InputError

__all__ = ["ZOO_FILE", "weights_digest", "eval_summary", "build_zoo", "write_zoo", "read_zoo",
           "zoo_rows"]

ZOO_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "zoo.json")

#: How each kind's numbers in results/ were measured (the README's commands).
MEASURED_WITH = {
    "restorer": "make eval-restorers (training/eval_restorers.sh)",
    "learned": "bash training/eval_cwic.sh",
    "hiding": "training/eval_hiding.py (commands in README, residual hiding)",
    "semantic": "python training/eval_jpdse.py (commands in README, JPD-SE)",
}


def weights_digest(path, extra=None):
    """First 16 hex digits of SHA-256 over a weights file (and an extra file, e.g. tables)."""
    h = hashlib.sha256()
    for p in [path] + ([extra] if extra else []):
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _load(path):
    with open(path) as f:
        return json.load(f)


def _restorer_points(results, name):
    path = os.path.join(results, "restorers", f"{name}-mcmaster.json")
    if not os.path.isfile(path):
        return None
    d = _load(path)
    return {"data": d["data"], "source": os.path.relpath(path, os.path.dirname(results)),
            "points": [{"quality": p["quality"], "bpp": p["bpp"],
                        "psnr_baseline": p["jpeg"]["psnr"], "psnr": p["restored"]["psnr"],
                        "ssim": p["restored"]["ssim"], "psnr_gain": p["psnr_gain"]}
                       for p in d["points"]],
            "baseline": ("gray JPEG (Pillow, 1 channel) of the images' Y at the same quality"
                         if d.get("protocol") == "gray-Y" else
                         "JPEG (Pillow, 4:2:0) at the same quality")}


def _codec_points(path, qualities=None):
    if not os.path.isfile(path):
        return None
    d = _load(path)
    pts = [p for p in d["points"] if qualities is None or p["quality"] in qualities]
    return {"data": d["data"], "points": [{"quality": p["quality"], "bpp": p["bpp"],
                                           "psnr": p["psnr"], "ms_ssim": p.get("ms_ssim")}
                                          for p in pts]}


def _hiding_points(results, name):
    points, data, sources = [], None, []
    for path in sorted(glob.glob(os.path.join(results, "hiding", f"{name}-q*-mcmaster.json"))):
        d = _load(path)
        if d.get("model") != name:
            continue
        s = d["summary"]
        data = d["data"]
        sources.append(os.path.relpath(path, os.path.dirname(results)))
        points.append({"quality": d["quality"], "bpp": s["hiding"]["bpp"],
                       "psnr": s["hiding"]["psnr"], "ssim": s["hiding"]["ssim"],
                       "psnr_baseline": s["plain"]["psnr"], "bpp_baseline": s["plain"]["bpp"],
                       "psnr_gain": s["hiding"]["psnr"] - s["plain"]["psnr"]})
    if not points:
        return None
    return {"data": data, "source": ", ".join(sources), "points": points,
            "baseline": f"plain {d['plain_codec']} at the same quality"}


def eval_summary(spec, results="results"):
    """The measured numbers of one registry model from the evaluation JSONs (None if absent)."""
    if spec.kind == "restorer":
        return _restorer_points(results, spec.name)
    if spec.kind == "learned":
        path = os.path.join(results, "codecs", f"{spec.codec}.json")
        out = _codec_points(path, range(spec.quality_min, spec.quality_max + 1))
        if out:
            out["source"] = os.path.relpath(path, os.path.dirname(results))
        return out
    if spec.kind == "hiding":
        return _hiding_points(results, spec.name)
    if spec.kind == "semantic":
        path = os.path.join(results, "jpdse", f"{spec.name}.json")
        out = _codec_points(path)
        if out:
            out["source"] = os.path.relpath(path, os.path.dirname(results))
            out["baseline"] = "side information counted in bpp"
        return out
    return None


def _param_count(model):
    # Every variable of the built networks (subclassed models such as HidingModel are not
    # "built" for Keras' count_params, but their sub-networks' variables exist).
    return sum(math.prod(int(d) for d in v.shape) for v in model.weights)


def build_zoo(results="results", count_params=True):
    """One entry per registered model: kind, codec, parameters, weights hash, command, numbers."""
    from . import models
    entries = []
    for name in models.model_names():
        spec = models.get_spec(name)
        entry = {"name": name, "kind": spec.kind, "codec": spec.codec or None,
                 "description": spec.description, "weights": spec.weights,
                 "weights_present": spec.weights_present, "trained_with": spec.trained_with,
                 "measured_with": MEASURED_WITH.get(spec.kind), "params": None,
                 "weights_sha256": None, "eval": eval_summary(spec, results)}
        if spec.weights_present:
            tables = spec.tables_path or None
            entry["weights_sha256"] = weights_digest(spec.weights_path, tables)
            if count_params:
                entry["params"] = _param_count(spec.build())
        entries.append(entry)
    return entries


def write_zoo(path=ZOO_FILE, results="results"):
    """Writes the zoo file (atomically) and returns its entries."""
    from .imageio import write_json
    entries = build_zoo(results)
    write_json(path, {"models": entries})
    return entries


def read_zoo(path=ZOO_FILE):
    """The entries of the zoo file; InputError when it is missing or unreadable."""
    try:
        return _load(path)["models"]
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"cannot read the model zoo {path} ({e}); regenerate it with "
                         "python training/make_zoo.py") from None


def _summary(entry):
    ev = entry.get("eval")
    if not ev or not ev.get("points"):
        return "not measured"
    parts = []
    for p in ev["points"][:3]:
        text = f"q{p['quality']}: {p['bpp']:.3f} bpp {p['psnr']:.2f} dB"
        if p.get("psnr_gain") is not None:
            text += f" ({p['psnr_gain']:+.2f})"
        elif p.get("ms_ssim") is not None:
            text += f" MS-SSIM {p['ms_ssim']:.4f}"
        parts.append(text)
    more = len(ev["points"]) - 3
    return "; ".join(parts) + (f"; +{more} more" if more > 0 else "")


def zoo_rows(entries):
    """Table rows (name, kind, params, eval set, numbers, trained with) for `tfcomp models`."""
    rows = []
    for e in entries:
        ev = e.get("eval") or {}
        data = os.path.basename(str(ev.get("data", "")).rstrip("/").split(" ")[0]) or "-"
        rows.append((e["name"], e["kind"], f"{e['params']:,}" if e.get("params") else "-",
                     data, _summary(e), e["trained_with"] or "-"))
    return rows
