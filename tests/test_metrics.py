import math

import numpy as np
import pytest

from tfcomp import metrics
from tfcomp.errors import InputError


def _natural(rng, h, w, c=3, noise=8.0):
    """Smooth colour gradients plus Gaussian noise, as float values in 0..255."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([(80 + 120 * np.sin(3 * xx + k) * np.cos(2 * yy - k)) for k in range(c)], axis=-1)
    return np.clip(base + 60 + noise * rng.standard_normal((h, w, c)), 0, 255)


def _distorted(rng, img, noise=10.0):
    return np.clip(np.round(img + noise * rng.standard_normal(img.shape)), 0, 255)


def test_psnr_closed_form_and_identical():
    rng = np.random.default_rng(0)
    a = rng.integers(10, 240, (16, 20, 3)).astype(np.uint8)
    b = a + np.uint8(5)
    assert metrics.mse(a, b) == 25.0
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-12)
    assert metrics.psnr(a, a) == float("inf")
    assert metrics.psnr(a / 255, b / 255, peak=1.0) == pytest.approx(metrics.psnr(a, b), abs=1e-9)


def test_shape_mismatch_raises():
    a = np.zeros((16, 16, 3))
    with pytest.raises(InputError):
        metrics.psnr(a, np.zeros((16, 17, 3)))
    with pytest.raises(InputError):
        metrics.ssim(a, np.zeros((16, 16)))
    with pytest.raises(InputError):
        metrics.psnr(np.zeros(5), np.zeros(5))


def test_rgb_to_y_and_y_psnr_gray_equivalent():
    v = np.array([[0, 255], [128, 30]], dtype=np.uint8)
    rgb = np.repeat(v[..., None], 3, axis=-1)
    expected = 16 + v.astype(np.float64) * 219 / 255
    y = metrics.rgb_to_y(rgb)
    np.testing.assert_allclose(y, expected, atol=1e-9)
    assert y.dtype == np.float64 and y.min() == pytest.approx(16) and y.max() == pytest.approx(235)
    rounded = metrics.rgb_to_y(rgb, rounded=True)
    assert rounded.dtype == np.uint8
    np.testing.assert_array_equal(rounded, np.floor(expected + 0.5))
    np.testing.assert_array_equal(metrics.rgb_to_y(v), v.astype(np.float64))
    np.testing.assert_array_equal(metrics.rgb_to_y(v[..., None], rounded=True), v[..., None])
    # Gray-equivalent RGB with a constant offset d: the luma differs by d * 219 / 255.
    d = 6
    shifted = np.repeat((v[..., None] // 2 + d).astype(np.uint8), 3, axis=-1)
    assert metrics.y_psnr(shifted - np.uint8(d), shifted) == pytest.approx(
        10 * math.log10(255**2 / (d * 219 / 255) ** 2), abs=1e-9
    )
    with pytest.raises(InputError):
        metrics.rgb_to_y(np.zeros((4, 4, 4)))


def test_ssim_matches_skimage():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    a = _natural(rng, 40, 53)
    b = _distorted(rng, a)
    ref = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1
    )
    assert metrics.ssim(a, b) == pytest.approx(ref, abs=1e-6)
    g, h = a[..., 0].astype(np.uint8), b[..., 0].astype(np.uint8)
    ref = structural_similarity(g, h, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert metrics.ssim(g, h) == pytest.approx(ref, abs=1e-6)
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_matches_tensorflow():
    import tensorflow as tf

    rng = np.random.default_rng(2)
    cases = []
    for h, w in [(200, 200), (257, 311)]:
        a = _natural(rng, h, w)
        cases.append((a, _distorted(rng, a, noise=20.0)))
    a = _natural(rng, 161, 170)
    cases.append((a, 255.0 - a))  # anti-correlated: negative cs, clipped by relu
    for a, b in cases:
        ref = tf.image.ssim_multiscale(
            tf.constant(a, tf.float32), tf.constant(b, tf.float32), max_val=255,
            filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03,
        )
        assert metrics.ms_ssim(a, b) == pytest.approx(float(ref), abs=1e-5)
    with pytest.raises(InputError):
        metrics.ms_ssim(np.zeros((160, 300, 3)), np.zeros((160, 300, 3)))


def test_ms_ssim_db():
    assert metrics.ms_ssim_db(0.99) == pytest.approx(20.0)
    assert metrics.ms_ssim_db(1.0) == float("inf")


def _psnr_b_reference(ref, test):
    """Slow PSNR-B from the paper's definition (sides multiple of 8), MSE and BEF channel-averaged."""
    h, w, c = test.shape
    mses, befs = [], []
    for ch in range(c):
        t = test[..., ch].astype(float)
        sums = {True: 0.0, False: 0.0}
        counts = {True: 0, False: 0}
        for i in range(h):
            for j in range(w - 1):  # horizontal neighbours (i, j) | (i, j + 1)
                edge = (j + 1) % 8 == 0
                sums[edge] += (t[i, j] - t[i, j + 1]) ** 2
                counts[edge] += 1
        for i in range(h - 1):  # vertical neighbours (i, j) | (i + 1, j)
            for j in range(w):
                edge = (i + 1) % 8 == 0
                sums[edge] += (t[i, j] - t[i + 1, j]) ** 2
                counts[edge] += 1
        assert counts[True] == h * (w // 8 - 1) + w * (h // 8 - 1)
        eta = math.log2(8) / math.log2(min(h, w))
        befs.append(eta * max(0.0, sums[True] / counts[True] - sums[False] / counts[False]))
        mses.append(np.mean((ref[..., ch].astype(float) - t) ** 2))
    return 10 * math.log10(255**2 / (np.mean(mses) + np.mean(befs)))


def test_psnr_b_equals_psnr_without_blocking():
    yy, xx = np.mgrid[0:32, 0:32]
    ramp = (3 * xx + 2 * yy).astype(float)  # equal boundary and non-boundary differences
    test = np.stack([ramp, ramp + 10, 200 - ramp], axis=-1)
    ref = test + np.round(5 * np.sin(xx / 5.0))[..., None]
    assert metrics.psnr_b(ref, test) == pytest.approx(metrics.psnr(ref, test), abs=1e-12)
    rng = np.random.default_rng(3)
    smooth_edges = rng.integers(0, 256, (24, 40)).astype(float)
    smooth_edges[:, 8::8] = smooth_edges[:, 7:-1:8]  # no jump across block columns
    smooth_edges[8::8] = smooth_edges[7:-1:8]  # nor across block rows
    other = _distorted(rng, smooth_edges)
    assert metrics.psnr_b(other, smooth_edges) == pytest.approx(metrics.psnr(other, smooth_edges), abs=1e-12)


def test_psnr_b_blocky_matches_slow_reference():
    rng = np.random.default_rng(4)
    ref = _natural(rng, 32, 48, noise=3.0)
    block_means = ref.reshape(4, 8, 6, 8, 3).mean(axis=(1, 3))
    blocky = np.repeat(np.repeat(block_means, 8, axis=0), 8, axis=1)
    test = np.clip(np.round(blocky + 2.0 * rng.standard_normal(ref.shape)), 0, 255)
    value = metrics.psnr_b(ref, test)
    assert value == pytest.approx(_psnr_b_reference(ref, test), abs=1e-9)
    assert value < metrics.psnr(ref, test) - 0.1
    gray = metrics.psnr_b(ref[..., 1], test[..., 1])
    assert gray == pytest.approx(_psnr_b_reference(ref[..., 1:2], test[..., 1:2]), abs=1e-9)
    with pytest.raises(InputError):
        metrics.psnr_b(np.zeros((15, 40)), np.zeros((15, 40)))


def test_bpp(tmp_path):
    assert metrics.bpp(1000, 100, 80) == pytest.approx(1.0)
    assert metrics.bpp(0, 10, 10) == 0.0
    path = tmp_path / "x.bin"
    path.write_bytes(b"\0" * 300)
    assert metrics.file_bpp(path, 40, 60) == pytest.approx(1.0)
    with pytest.raises(InputError):
        metrics.bpp(10, 0, 5)
    with pytest.raises(InputError):
        metrics.file_bpp(tmp_path / "missing.bin", 4, 4)


def test_batch_psnr_is_the_numpy_psnr_per_image():
    """The TF batch PSNR (every model's `psnr` log) equals metrics.psnr image by image and
    scikit-image's independent implementation; identical images hit the 100 dB floor."""
    import tensorflow as tf
    from skimage.metrics import peak_signal_noise_ratio
    rng = np.random.default_rng(3)
    a = rng.random((3, 17, 23, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, [[[[0.01]]], [[[0.05]]], [[[0.2]]]], a.shape), 0, 1)
    b = b.astype(np.float32)
    got = metrics.batch_psnr(tf.constant(a), tf.constant(b)).numpy()
    want = [metrics.psnr(x, y, peak=1.0) for x, y in zip(a, b)]
    np.testing.assert_allclose(got, want, atol=1e-3)
    np.testing.assert_allclose(got, [peak_signal_noise_ratio(x, y, data_range=1.0)
                                     for x, y in zip(a, b)], atol=1e-3)
    on255 = metrics.batch_psnr(tf.constant(a * 255), tf.constant(b * 255), peak=255.0).numpy()
    np.testing.assert_allclose(on255, got, atol=1e-3)
    assert metrics.batch_psnr(tf.constant(a), tf.constant(a)).numpy() == pytest.approx([100.0] * 3)
