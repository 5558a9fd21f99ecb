"""Tests for tfcomp.data: image listing, the training patch pipeline and validation patches."""

import math

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcomp.codecs.graph_jpeg import jpeg_roundtrip
from tfcomp.data import (PatchConfig, draw_quality, eval_patches, list_images, patch_dataset,
                         random_qualities)
from tfcomp.errors import InputError

P = 32
B = 4


def _pattern(h, w, seed):
    """Smooth colour pattern + texture + noise, uint8 HxWx3."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    phase = rng.uniform(0, 2 * np.pi, 3)
    img = np.stack([128 + 90 * np.sin(4 * x + 3 * y + phase[c]) for c in range(3)], axis=-1)
    img += (25 * np.sin(35 * x + phase[0]) * np.cos(28 * y))[..., None]
    img += rng.normal(0.0, 5.0, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Five 80x96 RGB PNGs and one 40x56 PNG (smaller than 48, larger than 32)."""
    d = tmp_path_factory.mktemp("images")
    for i in range(5):
        Image.fromarray(_pattern(80, 96, i)).save(d / f"img{i}.png")
    Image.fromarray(_pattern(40, 56, 9)).save(d / "small.png")
    return d


def _first(ds, n=1):
    """The first n batches of a dataset as numpy (degraded, clean) pairs."""
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


def _as_uint8(x):
    return np.round(x * 255.0).astype(np.uint8)


def _check_batch(x, y, channels=3):
    for a in (x, y):
        assert a.dtype == np.float32
        assert a.shape == (B, P, P, channels)
        assert a.min() >= 0.0 and a.max() <= 1.0


# -- list_images ---------------------------------------------------------------------

def test_list_images_dir_glob_and_list(image_dir):
    paths = list_images(image_dir)
    assert len(paths) == 6 and paths == sorted(paths)
    assert list_images(str(image_dir / "img*.png")) == [p for p in paths if "img" in p]
    assert list_images([image_dir / "img0.png", image_dir / "img1.png"]) == paths[:2]


def test_list_images_empty_dir(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(InputError):
        list_images(tmp_path)


def test_list_images_bad_glob(tmp_path):
    with pytest.raises(InputError):
        list_images(str(tmp_path / "nothing-*.png"))
    with pytest.raises(InputError):
        list_images(str(tmp_path / "missing-dir"))


# -- PatchConfig -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"quality": 0}, {"quality": 101},
    {"quality_range": (0, 10)}, {"quality_range": (50, 40)}, {"quality_range": (10, 101)},
    {"quality": 10, "quality_range": (10, 20)},
    {"patch_size": 4}, {"quality_range": (10, 90), "quality_sampling": "beta"},
    {"scales": ()}, {"scales": (0.0,)}, {"scales": (2.0, 9.0)}, {"rescale_prob": 1.5},
    {"rescale_prob": -0.1},
])
def test_patch_config_rejects(kwargs):
    with pytest.raises(ValueError):
        PatchConfig(**kwargs)


# -- patch_dataset ---------------------------------------------------------------------

def test_patches_jpeg_degraded(image_dir):
    ds = patch_dataset(image_dir, PatchConfig(patch_size=P, quality=10), batch_size=B, seed=1)
    [(x, y)] = _first(ds)
    _check_batch(x, y)
    assert not np.array_equal(x, y)
    # The degraded patch is exactly the JPEG q10 round trip of the clean one.
    clean = _as_uint8(y)
    for i in range(B):
        np.testing.assert_array_equal(_as_uint8(x[i]), jpeg_roundtrip(clean[i], 10).numpy())


def test_patches_without_quality_are_clean(image_dir):
    ds = patch_dataset(image_dir, PatchConfig(patch_size=P, quality=None), batch_size=B, seed=1)
    [(x, y)] = _first(ds)
    _check_batch(x, y)
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("sampling", ["uniform", "log"])
def test_quality_range(image_dir, sampling):
    lo, hi = 20, 26
    ds = patch_dataset(image_dir, PatchConfig(patch_size=P, quality_range=(lo, hi),
                                              quality_sampling=sampling),
                       batch_size=B, seed=3)
    qualities = []
    for x, y in _first(ds, 2):
        _check_batch(x, y)
        clean, degraded = _as_uint8(y), _as_uint8(x)
        for i in range(B):
            match = [q for q in range(lo, hi + 1)
                     if np.array_equal(degraded[i], jpeg_roundtrip(clean[i], q).numpy())]
            assert match, f"patch {i} is not a JPEG q{lo}..{hi} round trip"
            qualities.append(match[0])
    assert len(set(qualities)) > 1, qualities


@pytest.mark.parametrize("sampling, share_at_most_20", [
    ("uniform", 11 / 81),                               # q 10..20 of 10..90
    ("log", math.log(21 / 10) / math.log(91 / 10)),     # P(q <= 20) under density ~ 1/q
])
def test_quality_sampling_distribution(sampling, share_at_most_20):
    cfg = PatchConfig(patch_size=P, quality_range=(10, 90), quality_sampling=sampling)
    draw = tf.function(lambda seed: draw_quality(seed, cfg))
    q = np.array([int(draw(tf.constant([7, i], tf.int64))) for i in range(3000)])
    # random_qualities (the hiding model's per-batch draw) follows the same law.
    tf.random.set_seed(7)
    batched = random_qualities(3000, 10, 90, sampling).numpy()
    assert batched.dtype == np.int32
    for q in (q, batched):
        assert q.min() == 10 and q.max() <= 90 and q.max() >= 85
        assert abs(np.mean(q <= 20) - share_at_most_20) < 0.03, np.mean(q <= 20)


def test_random_qualities_refuses_an_unknown_sampling():
    with pytest.raises(ValueError, match="quality_sampling"):
        random_qualities(4, 10, 90, "beta")


def test_single_quality_range_equals_fixed_quality(image_dir):
    a = _first(patch_dataset(image_dir, PatchConfig(patch_size=P, quality=40), B, seed=5))
    b = _first(patch_dataset(image_dir, PatchConfig(patch_size=P, quality_range=(40, 40)), B, seed=5))
    np.testing.assert_array_equal(a[0][0], b[0][0])
    np.testing.assert_array_equal(a[0][1], b[0][1])


def test_augmentation_varies_and_is_seeded(image_dir):
    cfg = PatchConfig(patch_size=P, quality=10)
    first, second = _first(patch_dataset(image_dir, cfg, batch_size=B, seed=1), 2)
    assert not np.array_equal(first[1], second[1])
    # Different patches inside one batch, too.
    assert not np.array_equal(first[1][0], first[1][1])
    again = _first(patch_dataset(image_dir, cfg, batch_size=B, seed=1))[0]
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[1])
    other = _first(patch_dataset(image_dir, cfg, batch_size=B, seed=2))[0]
    assert not np.array_equal(other[1], first[1])


def _roughness(patches):
    """Mean absolute difference of horizontally adjacent pixels, uint8 0..255 units."""
    return float(np.abs(np.diff(patches.astype(np.float32) * 255.0, axis=2)).mean())


def test_enlarging_scales_give_smooth_scaled_up_patches(image_dir):
    base = dict(patch_size=P, quality=None, rot_prob=0.0, flip_prob=0.0)
    plain = _first(patch_dataset(image_dir, PatchConfig(rescale_prob=0.0, **base),
                                 batch_size=B, seed=1))[0][1]
    big = _first(patch_dataset(image_dir, PatchConfig(rescale_prob=1.0, scales=(3.0,), **base),
                               batch_size=B, seed=1))[0][1]
    assert big.shape == plain.shape
    # An 11x11 window resized up to 32x32: about a third of the pixel-to-pixel change.
    assert _roughness(big) < 0.6 * _roughness(plain)


def test_gray_patches(image_dir):
    ds = patch_dataset(image_dir, PatchConfig(patch_size=P, channels=1, quality=10),
                       batch_size=B, seed=1)
    [(x, y)] = _first(ds)
    _check_batch(x, y, channels=1)
    assert not np.array_equal(x, y)


def test_image_smaller_than_patch(image_dir):
    with pytest.raises(InputError):
        patch_dataset(image_dir, PatchConfig(patch_size=48, quality=10), batch_size=B)


def test_empty_source(tmp_path):
    with pytest.raises(InputError):
        patch_dataset(tmp_path, PatchConfig(patch_size=P), batch_size=B)


def test_fit_under_mirrored_strategy(image_dir):
    from tfcomp.restorer.model import build_restorer
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    ds = patch_dataset(image_dir, PatchConfig(patch_size=P, quality=10), batch_size=B, seed=1)
    with strategy.scope():
        model = build_restorer(widths=(4, 4, 4, 4))
        model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="mse")
    history = model.fit(ds, epochs=1, steps_per_epoch=2, verbose=0)
    loss = history.history["loss"]
    assert len(loss) == 1 and np.isfinite(loss[0])


# -- eval_patches ----------------------------------------------------------------------

def test_eval_patches(image_dir):
    x, y = eval_patches(image_dir, patch_size=P, channels=3, qualities=(10, 30))
    assert x.shape == y.shape == (6 * 2, P, P, 3)
    assert x.dtype == y.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert not np.array_equal(x, y)
    # Each image's centre crop, once per quality.
    np.testing.assert_array_equal(y[0], y[1])
    img0 = np.asarray(Image.open(image_dir / "img0.png"))
    np.testing.assert_array_equal(_as_uint8(y[0]), img0[24:56, 32:64])
    np.testing.assert_array_equal(_as_uint8(x[0]), jpeg_roundtrip(img0[24:56, 32:64], 10).numpy())


def test_eval_patches_skips_small_images_and_max_images(image_dir):
    x, y = eval_patches(image_dir, patch_size=48, channels=1, qualities=(10,))
    assert x.shape == y.shape == (5, 48, 48, 1)
    x, _ = eval_patches(image_dir, patch_size=P, channels=3, qualities=(10,), max_images=2)
    assert x.shape == (2, P, P, 3)


def test_eval_patches_no_large_enough_image(image_dir):
    with pytest.raises(InputError):
        eval_patches(image_dir, patch_size=128, channels=3, qualities=(10,))
