"""Tests for tfcomp.hiding.jpeg_sim, the differentiable libjpeg simulation (hiding strategy I)."""

import numpy as np
import pytest
import tensorflow as tf

from imagegen import natural_gray, natural_rgb
from tfcomp.codecs.graph_jpeg import jpeg_encode, jpeg_roundtrip
from tfcomp.hiding.jpeg_sim import (CHROMA_TABLE, LUMA_TABLE, _upsample_h2v2, compare_with_real,
                             jpeg_simulate, quant_tables)

QUALITIES = (10, 30, 50, 75, 90)
# Lower bounds (dB) on simulation-vs-real-JPEG PSNR. Measured on these exact images
# (TF 2.14's libjpeg-turbo), about 3 dB above each bound:
#   RGB 64x96:   q10 39.4, q30 45.7, q50 47.1, q75 47.6, q90 47.7
#   gray 64x96:  q10 48.8, q30 53.4, q50 55.0, q75 54.6, q90 52.8
#   RGB 37x53:   q10 36.3, q30 46.5, q50 45.5, q75 46.7, q90 46.8
#   gray 37x53:  q10 44.3, q30 47.9, q50 52.5, q75 54.3, q90 54.5
MIN_PSNR_RGB = {10: 36.0, 30: 42.0, 50: 44.0, 75: 44.0, 90: 44.0}
MIN_PSNR_GRAY = {10: 45.0, 30: 50.0, 50: 51.0, 75: 51.0, 90: 49.0}
MIN_PSNR_ODD_RGB = {10: 33.0, 30: 42.0, 50: 42.0, 75: 43.0, 90: 43.0}
MIN_PSNR_ODD_GRAY = {10: 41.0, 30: 44.0, 50: 49.0, 75: 51.0, 90: 51.0}


@pytest.fixture(scope="module")
def rgb():
    return natural_rgb(64, 96, 0)


@pytest.fixture(scope="module")
def gray():
    return natural_gray(64, 96, 1)[..., None]


def to_float(images_uint8):
    return tf.constant(np.asarray(images_uint8, np.float32) / 255.0)


# --- quantisation tables -------------------------------------------------------------------

def test_tables_at_q50_are_annex_k():
    luma, chroma = quant_tables(50)
    assert luma.shape == (8, 8) and chroma.shape == (8, 8)
    np.testing.assert_array_equal(luma.numpy(), LUMA_TABLE)
    np.testing.assert_array_equal(chroma.numpy(), CHROMA_TABLE)
    assert LUMA_TABLE[0, 0] == 16 and LUMA_TABLE[7, 7] == 99 and CHROMA_TABLE[0, 0] == 17


def test_tables_at_q10_and_q90():
    # q10: s = 500 -> floor((T * 500 + 50) / 100); q90: s = 20 -> floor((T * 20 + 50) / 100).
    l10, c10 = (t.numpy() for t in quant_tables(10))
    l90, c90 = (t.numpy() for t in quant_tables(90))
    assert l10[0, 0] == 80 and l90[0, 0] == 3          # T = 16
    assert l10[0, 1] == 55 and l90[0, 1] == 2          # T = 11: 5550 // 100, 270 // 100
    assert l10[7, 7] == 255 and l90[7, 7] == 20        # T = 99: 495 clipped; 2030 // 100
    assert c10[0, 0] == 85 and c90[0, 0] == 3          # T = 17: 8550 // 100, 390 // 100
    assert l90[6, 5] == 24                             # T = 121: 2470 // 100


def test_tables_clip_to_1_255():
    l1, c1 = (t.numpy() for t in quant_tables(1))      # s = 5000: everything clips to 255
    assert (l1 == 255).all() and (c1 == 255).all()
    l100, c100 = (t.numpy() for t in quant_tables(100))  # s = 0: (0 + 50) // 100 = 0 -> 1
    assert (l100 == 1).all() and (c100 == 1).all()
    assert (quant_tables(0)[0].numpy() == 255).all()    # clamped to q = 1, like libjpeg


def test_tables_per_element_quality():
    luma, chroma = quant_tables(tf.constant([10, 50, 90]))
    assert luma.shape == (3, 8, 8) and chroma.shape == (3, 8, 8)
    for i, q in enumerate((10, 50, 90)):
        np.testing.assert_array_equal(luma[i].numpy(), quant_tables(q)[0].numpy())
        np.testing.assert_array_equal(chroma[i].numpy(), quant_tables(q)[1].numpy())


# --- fidelity against the real codec ---------------------------------------------------------

def test_close_to_real_jpeg_rgb(rgb):
    measured = compare_with_real(rgb, QUALITIES)
    print("sim vs real PSNR, RGB 64x96:", {q: round(v, 2) for q, v in measured.items()})
    for q in QUALITIES:
        assert measured[q] > MIN_PSNR_RGB[q], (q, measured[q])


def test_close_to_real_jpeg_gray(gray):
    measured = compare_with_real(gray, QUALITIES)
    print("sim vs real PSNR, gray 64x96:", {q: round(v, 2) for q, v in measured.items()})
    for q in QUALITIES:
        assert measured[q] > MIN_PSNR_GRAY[q], (q, measured[q])


def test_sim_much_closer_to_real_than_original_is(rgb):
    """The simulation reproduces the codec's artefacts, not just the image."""
    for q in (10, 50):
        real = jpeg_roundtrip(rgb, q).numpy().astype(np.float64)
        sim = jpeg_simulate(to_float(rgb[None]), q)[0].numpy() * 255.0
        err_sim = np.mean((sim - real) ** 2)
        err_orig = np.mean((rgb.astype(np.float64) - real) ** 2)
        assert err_sim < err_orig / 10.0, (q, err_sim, err_orig)


@pytest.mark.parametrize("kind", ["rgb", "gray"])
def test_non_multiple_of_16_size(kind):
    image = natural_rgb(37, 53, 3) if kind == "rgb" else natural_gray(37, 53, 3)[..., None]
    out = jpeg_simulate(to_float(image[None]), 50)
    assert out.shape == (1, 37, 53, image.shape[-1])
    measured = compare_with_real(image, QUALITIES)
    print(f"sim vs real PSNR, {kind} 37x53:", {q: round(v, 2) for q, v in measured.items()})
    bounds = MIN_PSNR_ODD_RGB if kind == "rgb" else MIN_PSNR_ODD_GRAY
    for q in QUALITIES:
        assert measured[q] > bounds[q], (q, measured[q])


def test_fancy_upsampling_matches_libjpeg_formula():
    """tf.image.resize bilinear 2x == libjpeg's h2v2_fancy_upsample (9/3/3/1, edges clamped)."""
    rng = np.random.default_rng(0)
    c = rng.uniform(0, 255, (2, 5, 7)).astype(np.float32)

    def libjpeg_h2v2(p):
        rows = np.concatenate([p[:1], p, p[-1:]], axis=0)   # context rows: edge replicated
        out = np.zeros((2 * p.shape[0], 2 * p.shape[1]))
        for r in range(p.shape[0]):
            for v, far in ((0, rows[r]), (1, rows[r + 2])):
                colsum = 3.0 * rows[r + 1] + far
                ext = np.concatenate([colsum[:1], colsum, colsum[-1:]])
                out[2 * r + v, 0::2] = (3.0 * colsum + ext[:-2]) / 16.0
                out[2 * r + v, 1::2] = (3.0 * colsum + ext[2:]) / 16.0
        return out

    expected = np.stack([libjpeg_h2v2(p) for p in c])
    got = _upsample_h2v2(tf.constant(c), 9, 13).numpy()   # odd size: crop of 10x14
    np.testing.assert_allclose(got, expected[:, :9, :13], atol=1e-3)


# --- API behaviour ---------------------------------------------------------------------------

def test_values_in_unit_range(rgb, gray):
    for image in (rgb, gray):
        for q in (1, 10, 90, 100):
            out = jpeg_simulate(to_float(image[None]), q).numpy()
            assert out.dtype == np.float32
            assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("rounding", ["cubic", "ste"])
def test_gradients_exist_and_are_finite(rgb, gray, rounding):
    for image in (rgb[:32, :48], gray[:32, :48]):
        x = to_float(image[None])
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = jpeg_simulate(x, 50, rounding=rounding)
            loss = tf.reduce_sum(out * tf.random.stateless_normal(out.shape, [1, 2]))
        grad = tape.gradient(loss, x).numpy()
        assert np.isfinite(grad).all() and np.abs(grad).max() > 0
        with tf.GradientTape() as tape:
            tape.watch(x)
            _, rate = jpeg_simulate(x, 50, rounding=rounding, return_rate=True)
            total = tf.reduce_sum(rate)
        grad = tape.gradient(total, x).numpy()
        assert np.isfinite(grad).all() and np.abs(grad).max() > 0


def test_bad_arguments(rgb):
    with pytest.raises(ValueError):
        jpeg_simulate(to_float(rgb[None]), 50, rounding="floor")
    with pytest.raises(ValueError):
        jpeg_simulate(to_float(rgb), 50)                       # no batch axis
    with pytest.raises(ValueError):
        jpeg_simulate(tf.zeros([1, 16, 16, 2]), 50)


def test_per_element_quality_matches_single_runs():
    images = np.stack([natural_rgb(40, 56, s) for s in range(3)])
    qualities = [10, 50, 90]
    out, rate = jpeg_simulate(to_float(images), tf.constant(qualities), return_rate=True)
    assert out.shape == images.shape and rate.shape == (3,)
    for i, q in enumerate(qualities):
        one, one_rate = jpeg_simulate(to_float(images[i:i + 1]), q, return_rate=True)
        np.testing.assert_allclose(out[i].numpy(), one[0].numpy(), atol=1e-4)
        np.testing.assert_allclose(rate[i].numpy(), one_rate[0].numpy(), rtol=1e-4)


def test_tf_function_unknown_shapes_and_tf_data(rgb):
    fn = tf.function(lambda x, q: jpeg_simulate(x, q, return_rate=True), input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([None], tf.int32)])
    x = to_float(rgb[None, :37, :53])
    out, rate = fn(x, tf.constant([30]))
    eager, eager_rate = jpeg_simulate(x, 30, return_rate=True)
    np.testing.assert_allclose(out.numpy(), eager.numpy(), atol=1e-4)
    np.testing.assert_allclose(rate.numpy(), eager_rate.numpy(), rtol=1e-4)

    ds = tf.data.Dataset.from_tensor_slices(np.stack([rgb, rgb[::-1]]).astype(np.float32) / 255)
    ds = ds.batch(2).map(lambda b: jpeg_simulate(b, tf.constant(30)))
    (batch,) = list(ds)
    assert batch.shape == (2, 64, 96, 3)
    np.testing.assert_allclose(batch[0].numpy(), jpeg_simulate(to_float(rgb[None]), 30)[0],
                               atol=1e-4)


# --- rate proxy --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["rgb", "gray"])
def test_rate_proxy_tracks_real_file_size(rgb, gray, kind):
    image = rgb if kind == "rgb" else gray
    ladder = list(range(10, 100, 10))
    x = to_float(image[None])
    proxies = [float(jpeg_simulate(x, q, return_rate=True)[1][0]) for q in ladder]
    sizes = [len(jpeg_encode(image, q).numpy()) for q in ladder]
    print(f"rate proxy {kind} (bpp):", [round(p, 3) for p in proxies], "bytes:", sizes)
    assert all(p > 0 for p in proxies)
    assert all(a < b for a, b in zip(proxies, proxies[1:]))   # falls as quality falls
    assert np.array_equal(np.argsort(proxies), np.argsort(sizes))  # same ranking as real sizes
