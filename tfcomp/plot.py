"""RD plots (matplotlib, PNG) and BD-rate tables from evaluation JSON results."""

import io
import os

from .bdrate import bd_rate
from .imageio import write_bytes

__all__ = ["label_of", "plot_codecs", "plot_restorers", "bd_rate_table", "default_plot_path",
           "worst_crop", "plot_crops", "datasets_differ"]


def label_of(result):
    """A legend label: the codec/restorer name plus its options."""
    name = result.get("codec") or result.get("restorer")
    opts = result.get("options") or {}
    return name + "".join(f" {k}={v}" for k, v in sorted(opts.items()))


def _image_names(result):
    """The image names a result lists (empty when it lists none)."""
    names = set()
    for point in result.get("points") or ():
        for image in (point.get("images") or ()) if isinstance(point, dict) else ():
            if isinstance(image, dict) and "name" in image:
                names.add(str(image["name"]))
    return frozenset(names)


def _data_key(result):
    """What identifies a result's dataset: its image names, else its normalised "data" text."""
    names = _image_names(result)
    if names:
        return ("images", names)
    data = result.get("data")
    return ("data", os.path.normpath(data) if isinstance(data, str) and data else data)


def datasets_differ(results):
    """Each result's "data" field when the results were not all measured on one dataset,
    else None. One dataset: the same image names (or, without per-image lists, the same
    normalised "data" path)."""
    if len({_data_key(r) for r in results}) <= 1:
        return None
    return [r.get("data") for r in results]


def _save(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    write_bytes(path, buf.getvalue())


def _figure(ncols):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.5))
    return plt, fig, axes


def plot_codecs(results, path, title=None):
    """bpp vs PSNR and bpp vs MS-SSIM (dB) for codec results, one curve per result."""
    plt, fig, axes = _figure(2)
    for result in results:
        pts = sorted(result["points"], key=lambda p: p["bpp"])
        bpp = [p["bpp"] for p in pts]
        axes[0].plot(bpp, [p["psnr"] for p in pts], "o-", label=label_of(result))
        if all(p.get("ms_ssim_db") is not None for p in pts):
            axes[1].plot(bpp, [p["ms_ssim_db"] for p in pts], "o-", label=label_of(result))
    for ax, ylabel in zip(axes, ("PSNR (dB, RGB)", "MS-SSIM (dB)")):
        ax.set_xlabel("bits per pixel (file bytes)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title or f"Rate-distortion on {results[0].get('data', '')}")
    _save(fig, path)
    plt.close(fig)


def plot_restorers(results, path, title=None):
    """bpp vs PSNR and SSIM for JPEG and for each restorer's output."""
    plt, fig, axes = _figure(2)
    for k, (ax, metric) in enumerate(zip(axes, ("psnr", "ssim"))):
        pts = sorted(results[0]["points"], key=lambda p: p["bpp"])
        ax.plot([p["bpp"] for p in pts], [p["jpeg"][metric] for p in pts], "o-", label="JPEG")
        for result in results:
            pts = sorted(result["points"], key=lambda p: p["bpp"])
            ax.plot([p["bpp"] for p in pts], [p["restored"][metric] for p in pts], "s-",
                    label=f"JPEG + {result['restorer']}")
            if k == 0:
                for p in pts:
                    ax.annotate(f"q{p['quality']}", (p["bpp"], p["restored"][metric]),
                                textcoords="offset points", xytext=(4, -10), fontsize=8)
        ax.set_xlabel("bits per pixel (JPEG file bytes)")
        ax.set_ylabel(metric.upper() + (" (dB)" if metric == "psnr" else ""))
        ax.grid(True, alpha=0.3)
        ax.legend()
    protocol = results[0].get("protocol", "rgb")
    fig.suptitle(title or f"JPEG artifact removal ({protocol}) on {results[0].get('data', '')}")
    _save(fig, path)
    plt.close(fig)


def bd_rate_table(results, anchor_index=0):
    """BD-rate of each codec result against the anchor, for PSNR and MS-SSIM (dB).

    Returns rows {"codec", "anchor", "bd_rate_psnr", "overlap_psnr", "bd_rate_ms_ssim",
    "overlap_ms_ssim_db"}; None where the curves do not overlap.
    """
    from .errors import InputError
    anchor = results[anchor_index]
    rows = []
    for i, result in enumerate(results):
        if i == anchor_index:
            continue
        row = {"codec": label_of(result), "anchor": label_of(anchor)}
        for metric, key in (("psnr", "psnr"), ("ms_ssim_db", "ms_ssim")):
            try:
                r = bd_rate([p["bpp"] for p in anchor["points"]], [p[metric] for p in anchor["points"]],
                            [p["bpp"] for p in result["points"]], [p[metric] for p in result["points"]])
                row[f"bd_rate_{key}"], row[f"overlap_{metric}"] = r["bd_rate"], r["overlap"]
            except (InputError, TypeError, KeyError):
                row[f"bd_rate_{key}"], row[f"overlap_{metric}"] = None, None
        rows.append(row)
    return rows


def default_plot_path(json_path):
    """Where `tfcomp evaluate` puts the plot when --plot is not given: next to the JSON."""
    return os.path.splitext(json_path)[0] + ".png"


def worst_crop(reference, decoded, size):
    """(top, left, height, width) of the size x size window where `decoded` errs most (MSE)."""
    import numpy as np
    err = (reference.astype(np.float64) - decoded.astype(np.float64)) ** 2
    err = err.reshape(err.shape[0], err.shape[1], -1).sum(axis=2)
    h, w = min(size, err.shape[0]), min(size, err.shape[1])
    table = np.pad(err.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[h:, w:] - table[:-h, w:] - table[h:, :-w] + table[:-h, :-w]
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left), h, w


def plot_crops(panels, path, box, title=None):
    """Side-by-side crops: `panels` = [(caption, HxWxC uint8)], `box` = (top, left, h, w)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    top, left, h, w = box
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2 * h / w + 0.9),
                             constrained_layout=True)
    for ax, (caption, image) in zip(axes, panels):
        crop = image[top:top + h, left:left + w]
        ax.imshow(crop[:, :, 0] if crop.ndim == 3 and crop.shape[2] == 1 else crop,
                  cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_xlabel(caption, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)
    plt.close(fig)
