"""The JPEG quality a file was saved at, from its luma quantisation table.

A restorer is trained for a range of JPEG qualities (its registry entry's
``quality_min..quality_max``); outside it, it can lower the quality it should raise (README,
restorer section). `tfcomp restore` reads the table of a JPEG input and says so before it
restores. The estimate compares the table with the IJG tables that libjpeg (Pillow, most
cameras' and programs' "quality" setting) writes for qualities 1..100: an exact match names
the quality; other encoders' tables get the nearest IJG quality (sum of absolute step
differences), marked inexact. The model stays blind: nothing here feeds the network.
"""

import functools
import io

import numpy as np


@functools.lru_cache(maxsize=1)
def ijg_luma_tables():
    """{quality: luma table} of Pillow's encoder at qualities 1..100, in Pillow's order."""
    from PIL import Image
    tile = Image.new("L", (8, 8), 128)
    out = {}
    for q in range(1, 101):
        buf = io.BytesIO()
        tile.save(buf, "JPEG", quality=q)
        buf.seek(0)
        with Image.open(buf) as img:
            out[q] = tuple(int(v) for v in img.quantization[0])
    return out


def estimate_quality(luma_table):
    """(quality, exact) for a 64-entry luma quantisation table; None if it is not 64 steps.

    ``exact`` is True when the table is the IJG table of that quality (the 100 IJG tables
    are all different)."""
    table = np.asarray(tuple(luma_table), dtype=np.int64)
    if table.shape != (64,):
        return None
    costs = {q: int(np.abs(table - np.asarray(ref)).sum()) for q, ref in ijg_luma_tables().items()}
    best = min(costs, key=costs.get)
    return best, costs[best] == 0


def range_note(name, model, estimate, quality_min, quality_max, alternatives=()):
    """A one-line note when a JPEG's estimated quality is outside the model's trained range
    (None inside it). ``estimate``: (quality, exact) from :func:`estimate_quality`.
    ``alternatives``: restorers whose range holds that quality, named in the note."""
    q, exact = estimate
    if quality_min <= q <= quality_max:
        return None
    trained = f"q{quality_min}" if quality_min == quality_max else f"q{quality_min}..{quality_max}"
    about = f"quality {q}" if exact else f"about quality {q} (not an IJG table)"
    hint = f"; at that quality try {', '.join(alternatives)}" if alternatives else ""
    return (f"{name} is a JPEG at {about}; {model} was trained for {trained} and can lower "
            f"the quality of other files{hint}")
