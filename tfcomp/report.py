"""Markdown tables for the README from evaluation JSON results."""

from .bdrate import rate_at_equal_quality
from .errors import InputError
from .plot import bd_rate_table, label_of

__all__ = ["markdown_table", "restorer_markdown", "codec_markdown", "hiding_markdown", "format_range",
           "point_savings"]


def _cell(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def format_range(r):
    """An overlap [lo, hi] as 'lo..hi' ('-' when there is none)."""
    return "-" if r is None else f"{r[0]:.2f}..{r[1]:.2f}"


def markdown_table(headers, rows):
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def restorer_markdown(results):
    """One row per (result, quality): JPEG vs restored PSNR / SSIM / PSNR-B."""
    rows = []
    for r in results:
        for p in r["points"]:
            j, o = p["jpeg"], p["restored"]
            rows.append((r["restorer"], r.get("protocol", "rgb"), p["quality"], _cell(p["bpp"], 3),
                         f"{_cell(j['psnr'], 2)} / {_cell(j['ssim'], 4)} / {_cell(j['psnr_b'], 2)}",
                         f"{_cell(o['psnr'], 2)} / {_cell(o['ssim'], 4)} / {_cell(o['psnr_b'], 2)}",
                         f"{p['psnr_gain']:+.2f}"))
    return markdown_table(["model", "protocol", "q", "bpp", "JPEG PSNR / SSIM / PSNR-B",
                           "restored PSNR / SSIM / PSNR-B", "PSNR gain"], rows)


def codec_markdown(results):
    """Per codec and quality: bpp, PSNR, MS-SSIM; then BD-rates against the first result."""
    rows = [(label_of(r), p["quality"], _cell(p["bpp"], 3), _cell(p["psnr"], 2),
             _cell(p["ms_ssim"], 4)) for r in results for p in r["points"]]
    text = markdown_table(["codec", "quality", "bpp", "PSNR", "MS-SSIM"], rows)
    if len(results) > 1:
        bd = [(r["codec"], _cell(r["bd_rate_psnr"], 1), format_range(r["overlap_psnr"]),
               _cell(r["bd_rate_ms_ssim"], 1), format_range(r["overlap_ms_ssim_db"]))
              for r in bd_rate_table(results, 0)]
        text += f"\n\nBD-rate against {label_of(results[0])} (%; negative = fewer bits):\n\n"
        text += markdown_table(["codec", "BD-rate PSNR", "over PSNR (dB)", "BD-rate MS-SSIM",
                                "over MS-SSIM (dB)"], bd)
        rows = [(r["codec"], r["quality"], _cell(r["bpp"], 3), *_saving_cells(r["psnr"]),
                 *_saving_cells(r["ms_ssim_db"])) for r in point_savings(results, 0)]
        text += (f"\n\nEach point against {label_of(results[0])} at the same quality (its bpp read off "
                 f"{label_of(results[0])}'s curve; '-' outside the range it measured):\n\n")
        text += markdown_table(["codec", "quality", "bpp", f"{label_of(results[0])} bpp at equal PSNR",
                                "bits", f"{label_of(results[0])} bpp at equal MS-SSIM", "bits"], rows)
    return text


def _saving_cells(entry):
    """(anchor bpp, bits) cells of one rate_at_equal_quality() result ('-' for None)."""
    if entry is None:
        return "-", "-"
    return _cell(entry["anchor_bpp"], 3), f"{entry['saving']:+.1f} %"


def point_savings(results, anchor_index=0):
    """Each point of each non-anchor codec result against the anchor at equal PSNR and at
    equal MS-SSIM (dB): rows {"codec", "quality", "bpp", "psnr", "ms_ssim_db"}, the last two
    rate_at_equal_quality() results (None outside the anchor's range or without the metric)."""
    anchor = results[anchor_index]["points"]
    curves = {key: ([a["bpp"] for a in anchor], [a.get(key) for a in anchor])
              for key in ("psnr", "ms_ssim_db")}
    rows = []
    for i, result in enumerate(results):
        if i == anchor_index:
            continue
        for p in result["points"]:
            row = {"codec": label_of(result), "quality": p["quality"], "bpp": p["bpp"]}
            for key, (anchor_bpp, anchor_quality) in curves.items():
                try:
                    row[key] = rate_at_equal_quality(anchor_bpp, anchor_quality, p["bpp"], p[key])
                except (InputError, TypeError, KeyError):
                    row[key] = None
            rows.append(row)
    return rows


def hiding_markdown(results):
    """The paper-style table: plain codec, codec + restorer, hiding models at fixed q and equal bpp.

    Cells are "PSNR / SSIM (bpp)". Each hiding model has its own equal-bpp baselines: the plain
    codec (and the restorer on it) at the first quality whose file is at least as large as
    that model's file, per image (conservative: up to one quality step more bytes), and the
    "interpolated" margins against the same baselines at exactly that file's bpp (linear
    between the two qualities around it; "-" for results measured before they existed).
    """
    def margin(s, key):
        return f"{s['hiding']['psnr'] - s[key]['psnr']:+.2f}" if key in s else "-"

    def cell(entry):
        return f"{_cell(entry['psnr'], 2)} / {_cell(entry['ssim'], 4)} ({_cell(entry['bpp'], 3)})"

    rows, seen = [], set()
    for r in sorted(results, key=lambda r: (r["plain_codec"], r["quality"], r["model"])):
        s, key = r["summary"], (r["plain_codec"], r["quality"])
        if key not in seen:  # the fixed-quality baselines once per (codec, quality)
            seen.add(key)
            rows.append((f"{r['plain_codec']}", r["quality"], cell(s["plain"]))
                        + ("-",) * 8)
            rows.append((f"{r['plain_codec']} + {r['restorer']}", r["quality"],
                         cell(s["plain_restored"]), "-", "-",
                         f"{s['plain_restored']['psnr'] - s['plain']['psnr']:+.2f}")
                        + ("-",) * 5)
        rows.append((r["model"], r["quality"], cell(s["hiding"]), cell(s["plain_eq"]),
                     cell(s["plain_eq_restored"]), margin(s, "plain"), margin(s, "plain_eq"),
                     margin(s, "plain_eq_restored"), margin(s, "plain_at_bpp"),
                     margin(s, "plain_at_bpp_restored"), _cell(s["hiding_view"]["psnr"], 2)))
    return markdown_table(["method", "q", "PSNR / SSIM (bpp)", "codec at equal bpp",
                           "codec + restorer at equal bpp", "dB vs codec at q",
                           "dB vs codec at equal bpp", "dB vs codec + restorer at equal bpp",
                           "dB vs codec, interpolated", "dB vs codec + restorer, interpolated",
                           "viewer sees (dB)"], rows)
