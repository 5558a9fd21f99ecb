"""Bjontegaard delta metrics (BD-rate, BD-PSNR) with PCHIP interpolation and exact integration."""

import numpy as np
from scipy.interpolate import PchipInterpolator

from .errors import InputError

__all__ = ["bd_rate", "bd_psnr", "rate_at_equal_quality"]


def _curve(label, bpp, quality):
    """Validate one rate-quality curve; return (bpp, quality) as float64 arrays."""
    bpp = np.asarray(bpp, dtype=np.float64)
    quality = np.asarray(quality, dtype=np.float64)
    if bpp.ndim != 1 or bpp.shape != quality.shape:
        raise InputError(
            f"{label} curve: bpp and quality must be 1-D and of equal length, "
            f"got shapes {bpp.shape} and {quality.shape}"
        )
    if bpp.size < 2:
        raise InputError(f"{label} curve: need at least 2 points, got {bpp.size}")
    if not (np.isfinite(bpp).all() and np.isfinite(quality).all()):
        raise InputError(f"{label} curve: bpp and quality must be finite (no NaN or inf)")
    if (bpp <= 0).any():
        raise InputError(f"{label} curve: bpp must be positive, got {bpp.min()}")
    return bpp, quality


def _fit(label, x, y, x_name):
    """PCHIP interpolant of y as a function of x (sorted; duplicate x values rejected)."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if (np.diff(x) == 0).any():
        raise InputError(f"{label} curve: duplicate {x_name} values")
    return PchipInterpolator(x, y)


def _mean_gap(anchor_x, anchor_y, test_x, test_y, x_name):
    """Mean of test minus anchor y(x) interpolants over the overlapping x range, and that range."""
    anchor = _fit("anchor", anchor_x, anchor_y, x_name)
    test = _fit("test", test_x, test_y, x_name)
    lo = max(anchor_x.min(), test_x.min())
    hi = min(anchor_x.max(), test_x.max())
    if not lo < hi:
        raise InputError(f"the anchor and test curves do not overlap in {x_name}")
    return float((test.integrate(lo, hi) - anchor.integrate(lo, hi)) / (hi - lo)), lo, hi


def bd_rate(anchor_bpp, anchor_quality, test_bpp, test_quality):
    """Bjontegaard delta rate of test against anchor, in percent (negative = test saves bits).

    ln(bpp) is fitted as a PCHIP function of quality for each curve and integrated
    exactly over the overlapping quality range. Returns {"bd_rate": percent,
    "overlap": [lo, hi] (quality), "anchor_points": n, "test_points": n}.
    """
    anchor_bpp, anchor_quality = _curve("anchor", anchor_bpp, anchor_quality)
    test_bpp, test_quality = _curve("test", test_bpp, test_quality)
    gap, lo, hi = _mean_gap(anchor_quality, np.log(anchor_bpp), test_quality, np.log(test_bpp), "quality")
    return {
        "bd_rate": float(np.expm1(gap) * 100.0),
        "overlap": [float(lo), float(hi)],
        "anchor_points": int(anchor_bpp.size),
        "test_points": int(test_bpp.size),
    }


def bd_psnr(anchor_bpp, anchor_quality, test_bpp, test_quality):
    """Bjontegaard delta quality (e.g. dB of PSNR) of test against anchor (positive = test better).

    Quality is fitted as a PCHIP function of ln(bpp) for each curve and integrated
    exactly over the overlapping log-rate range. Returns {"bd_psnr": mean difference,
    "overlap": [lo, hi] (bpp), "anchor_points": n, "test_points": n}.
    """
    anchor_bpp, anchor_quality = _curve("anchor", anchor_bpp, anchor_quality)
    test_bpp, test_quality = _curve("test", test_bpp, test_quality)
    gap, _, _ = _mean_gap(np.log(anchor_bpp), anchor_quality, np.log(test_bpp), test_quality, "bpp")
    return {
        "bd_psnr": gap,
        "overlap": [float(max(anchor_bpp.min(), test_bpp.min())), float(min(anchor_bpp.max(), test_bpp.max()))],
        "anchor_points": int(anchor_bpp.size),
        "test_points": int(test_bpp.size),
    }


def rate_at_equal_quality(anchor_bpp, anchor_quality, bpp, quality):
    """Bits of one test point against the anchor at the same quality, in percent.

    The anchor's ln(bpp) is the PCHIP function of quality that bd_rate integrates; it is read
    at `quality` (no extrapolation). Returns {"anchor_bpp": the anchor's interpolated bpp,
    "saving": 100 * (bpp / anchor_bpp - 1), negative = the test point needs fewer bits}, or
    None when `quality` is outside the anchor's measured range. Unlike the BD-rate, which
    averages over the range both curves cover (and so moves when an end point moves), it
    compares one point with the curve it is set against.
    """
    anchor_bpp, anchor_quality = _curve("anchor", anchor_bpp, anchor_quality)
    bpp, quality = float(bpp), float(quality)
    if not (np.isfinite(bpp) and np.isfinite(quality)) or bpp <= 0:
        raise InputError(f"test point: bpp must be positive and both values finite, got {bpp}, {quality}")
    if not anchor_quality.min() <= quality <= anchor_quality.max():
        return None
    fit = _fit("anchor", anchor_quality, np.log(anchor_bpp), "quality")
    at = float(np.exp(fit(quality)))
    return {"anchor_bpp": at, "saving": 100.0 * (bpp / at - 1.0)}
