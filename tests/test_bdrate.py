import math

import numpy as np
import pytest

from tfcomp.bdrate import bd_psnr, bd_rate, rate_at_equal_quality
from tfcomp.errors import InputError

BPP = [0.12, 0.25, 0.5, 0.9, 1.6]
PSNR = [27.1, 29.8, 32.6, 35.0, 37.9]


def test_identical_curves():
    rate = bd_rate(BPP, PSNR, BPP, PSNR)
    assert rate == {"bd_rate": 0.0, "overlap": [27.1, 37.9], "anchor_points": 5, "test_points": 5}
    quality = bd_psnr(BPP, PSNR, BPP, PSNR)
    assert quality["bd_psnr"] == 0.0 and quality["overlap"] == [0.12, 1.6]


def test_half_rate_is_minus_50_percent():
    result = bd_rate(BPP, PSNR, [b / 2 for b in BPP], PSNR)
    assert result["bd_rate"] == pytest.approx(-50.0, abs=1e-9)


def test_one_db_better():
    result = bd_psnr(BPP, PSNR, BPP, [q + 1 for q in PSNR])
    assert result["bd_psnr"] == pytest.approx(1.0, abs=1e-12)
    assert bd_rate(BPP, PSNR, BPP, [q + 1 for q in PSNR])["bd_rate"] < 0


def test_unsorted_input_and_two_point_closed_form():
    order = [3, 0, 4, 2, 1]
    shuffled = bd_rate([BPP[i] for i in order], [PSNR[i] for i in order], [b * 1.1 for b in BPP], PSNR)
    assert shuffled["bd_rate"] == pytest.approx(10.0, abs=1e-9)
    # Two points: PCHIP is linear, so the mean log-rate gap is the mean of the endpoint gaps.
    result = bd_rate([1.0, 2.0], [30.0, 40.0], [1.0, 3.0], [30.0, 40.0])
    assert result["bd_rate"] == pytest.approx((math.exp(math.log(1.5) / 2) - 1) * 100, abs=1e-9)


def test_partial_overlap():
    test_bpp = [0.2, 0.4, 0.8, 1.5, 3.0]
    test_psnr = [30.0, 32.5, 35.0, 37.5, 40.0]
    rate = bd_rate(BPP, PSNR, test_bpp, test_psnr)
    assert rate["overlap"] == [30.0, 37.9]
    assert (rate["anchor_points"], rate["test_points"]) == (5, 5)
    quality = bd_psnr(BPP, PSNR, test_bpp, test_psnr)
    assert quality["overlap"] == [0.2, 1.6]


@pytest.mark.parametrize(
    "anchor_bpp, anchor_q, test_bpp, test_q",
    [
        ([0.5], [30.0], BPP, PSNR),  # fewer than 2 points
        ([0.0, 0.5, 1.0], [28.0, 30.0, 33.0], BPP, PSNR),  # non-positive bpp
        ([0.2, -0.5, 1.0], [28.0, 30.0, 33.0], BPP, PSNR),
        ([0.2, 0.5, 1.0], [28.0, float("nan"), 33.0], BPP, PSNR),  # NaN
        (BPP, PSNR, [0.2, float("inf"), 1.0], [28.0, 30.0, 33.0]),  # inf
        ([0.2, 0.5, 1.0], [28.0, 30.0], BPP, PSNR),  # length mismatch
        ([0.1, 0.2], [20.0, 25.0], [1.0, 2.0], [40.0, 45.0]),  # no overlap
        ([0.1, 0.2], [20.0, 25.0], [0.2, 0.3], [25.0, 30.0]),  # touching only
    ],
)
def test_errors_raise_input_error(anchor_bpp, anchor_q, test_bpp, test_q):
    with pytest.raises(InputError):
        bd_rate(anchor_bpp, anchor_q, test_bpp, test_q)
    with pytest.raises(InputError):
        bd_psnr(anchor_bpp, anchor_q, test_bpp, test_q)


def test_duplicate_x_values():
    with pytest.raises(InputError, match="duplicate quality"):
        bd_rate([0.2, 0.5, 1.0], [30.0, 30.0, 33.0], BPP, PSNR)
    with pytest.raises(InputError, match="duplicate bpp"):
        bd_psnr(BPP, PSNR, [0.5, 0.5, 1.0], [30.0, 31.0, 33.0])
    assert np.isfinite(bd_psnr([0.2, 0.5, 1.0], [30.0, 30.0, 33.0], BPP, PSNR)["bd_psnr"])


def test_rate_at_equal_quality_reads_the_anchor_curve():
    # On an anchor point: the anchor's own bpp; half of it is -50 %.
    r = rate_at_equal_quality(BPP, PSNR, BPP[2] / 2, PSNR[2])
    assert r["anchor_bpp"] == pytest.approx(BPP[2], rel=1e-12)
    assert r["saving"] == pytest.approx(-50.0, abs=1e-9)
    # Between two points on a two-point anchor (PCHIP is linear in ln bpp): the geometric mean.
    r = rate_at_equal_quality([1.0, 4.0], [30.0, 40.0], 2.0, 35.0)
    assert r["anchor_bpp"] == pytest.approx(2.0, rel=1e-12) and r["saving"] == pytest.approx(0.0, abs=1e-9)
    # Consistent with bd_rate: a test curve at 0.8x the anchor's bits reads -20 % at each point.
    for b, q in zip(BPP, PSNR):
        assert rate_at_equal_quality(BPP, PSNR, 0.8 * b, q)["saving"] == pytest.approx(-20.0, abs=1e-9)


def test_rate_at_equal_quality_outside_the_anchor_range_and_bad_points():
    assert rate_at_equal_quality(BPP, PSNR, 0.1, PSNR[0] - 0.01) is None
    assert rate_at_equal_quality(BPP, PSNR, 2.0, PSNR[-1] + 0.01) is None
    for bpp, q in ((0.0, 30.0), (-1.0, 30.0), (float("nan"), 30.0), (0.5, float("inf"))):
        with pytest.raises(InputError):
            rate_at_equal_quality(BPP, PSNR, bpp, q)
