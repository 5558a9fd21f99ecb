"""Tests for the streaming side of tfcomp.data: every listed format decodes in training,
crops per image, cache decisions, determinism, and TFRecord shards (`tfcomp data pack`)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcomp.cli import main as cli_main
from tfcomp.data import (PatchConfig, decode_file, list_images, patch_dataset,
                         pipeline_plan)
from tfcomp.errors import InputError
from tfcomp.imageio import read_image
from tfcomp.shards import INDEX_NAME, pack_shards
from tfcomp.training_args import run_options, training_parser

P = 32
B = 4
# Formats TensorFlow cannot decode itself, then the two it can.
PILLOW_ONLY = ("webp", "tif", "tiff", "ppm", "bmp")
ALL_FORMATS = PILLOW_ONLY + ("png", "jpg")


def _image(h, w, seed):
    """A smooth colour pattern with noise (so crops differ), uint8 HxWx3."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    phase = rng.uniform(0, 2 * np.pi, 3)
    img = np.stack([128 + 90 * np.sin(5 * x + 3 * y + phase[c]) for c in range(3)], axis=-1)
    img += rng.normal(0.0, 6.0, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _save(img, path):
    # Lossless WebP, so every format holds the same pixels.
    Image.fromarray(img).save(path, **({"lossless": True} if path.endswith(".webp") else {}))


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory):
    """One 48x64 image in each format list_images accepts (RGB), plus a gray PGM."""
    d = tmp_path_factory.mktemp("mixed")
    for i, ext in enumerate(ALL_FORMATS):
        _save(_image(48, 64, i), str(d / f"img{i}.{ext}"))
    Image.fromarray(_image(48, 64, 99)[..., 0]).save(d / "gray.pgm")
    return d


@pytest.fixture(scope="module")
def flat_dir(tmp_path_factory):
    """Six 40x52 PNGs, each one flat grey level (10, 20, ...): a patch tells its image."""
    d = tmp_path_factory.mktemp("flat")
    for i in range(6):
        Image.fromarray(np.full((40, 52, 3), 10 * (i + 1), np.uint8)).save(d / f"f{i}.png")
    return d


def _batches(ds, n):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


def _clean_patches(ds):
    return np.concatenate([y.numpy() for _, y in ds])


def _same(a, b):
    return all(np.array_equal(u[0], v[0]) and np.array_equal(u[1], v[1]) for u, v in zip(a, b))


# -- formats -------------------------------------------------------------------------

def test_every_listed_format_decodes_like_imageio(mixed_dir):
    paths = list_images(mixed_dir)
    assert {os.path.splitext(p)[1] for p in paths} == {"." + e for e in ALL_FORMATS} | {".pgm"}
    for path in paths:
        native = path.endswith((".png", ".jpg"))
        # TensorFlow's own decoders: its gray conversion and JPEG IDCT are not Pillow's.
        for channels, mode in ((3, "rgb"),) if native else ((3, "rgb"), (1, "gray")):
            got = decode_file(tf.constant(path), channels).numpy()
            want = read_image(path, mode=mode)
            assert got.shape == want.shape[:2] + (channels,)
            if not path.endswith(".jpg"):
                np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=path)


def test_every_listed_format_trains(mixed_dir):
    # Streamed and cached, inside a graph (Keras fit would fail on "Unknown image format").
    for cache in (False, True):
        ds = patch_dataset(mixed_dir, PatchConfig(patch_size=P, quality=30), B, seed=1,
                           cache=cache, shuffle_buffer=16)
        for x, y in _batches(ds, 3):
            assert x.shape == y.shape == (B, P, P, 3) and x.dtype == np.float32


# -- crops, cache, determinism -------------------------------------------------------

@pytest.mark.parametrize("cache", [False, True])
def test_crops_per_image(flat_dir, cache):
    cfg = PatchConfig(patch_size=P, crops_per_image=3)
    ds = patch_dataset(flat_dir, cfg, batch_size=1, shuffle=False, repeat=False, cache=cache)
    clean = _clean_patches(ds)
    assert clean.shape == (6 * 3, P, P, 3)
    # In order: three crops of image 0, three of image 1, ...
    levels = np.round(clean.reshape(18, -1).mean(axis=1) * 255).astype(int)
    np.testing.assert_array_equal(levels, np.repeat(10 * np.arange(1, 7), 3))


def test_crops_of_one_image_differ(mixed_dir):
    ds = patch_dataset(mixed_dir / "img5.png", PatchConfig(patch_size=P, crops_per_image=4),
                       batch_size=4, shuffle=False, repeat=False)
    [(_, y)] = _batches(ds, 1)
    assert len({y[i].tobytes() for i in range(4)}) == 4


def test_default_crops_and_cache_budget(flat_dir):
    cfg = PatchConfig(patch_size=P)
    plan = pipeline_plan(flat_dir, cfg)
    assert plan.kind == "files" and plan.images == 6
    assert plan.decoded_bytes == 6 * 40 * 52 * 3
    assert plan.cache and plan.crops_per_image == 1            # small set: cached, one crop
    big = pipeline_plan(flat_dir, cfg, cache_budget=plan.decoded_bytes - 1)
    assert not big.cache and big.crops_per_image == 2          # 40 * 52 pixels ~ 2 patches
    assert pipeline_plan(flat_dir, cfg, cache=True, cache_budget=1).cache
    assert pipeline_plan(flat_dir, PatchConfig(patch_size=P, crops_per_image=2), cache=False) \
        .crops_per_image == 2


@pytest.mark.parametrize("budget, cached", [(1, False), (10 ** 9, True)])
def test_large_sets_are_not_cached(tmp_path, budget, cached):
    """A streamed pipeline re-reads the files: rewritten files show in later patches."""
    for i in range(4):
        Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(tmp_path / f"{i}.png")
    ds = patch_dataset(tmp_path, PatchConfig(patch_size=P, crops_per_image=2), B, seed=0,
                       cache_budget=budget, shuffle_buffer=4)
    it = iter(ds)
    next(it)
    for i in range(4):  # atomically: the pipeline is reading ahead in other threads
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "new.tmp", format="PNG")
        os.replace(tmp_path / "new.tmp", tmp_path / f"{i}.png")
    late = np.concatenate([next(it)[1].numpy() for _ in range(30)])
    assert (late.max(axis=(1, 2, 3)) == 0).any() != cached


def test_cached_and_streamed_give_the_same_stream(mixed_dir):
    cfg = PatchConfig(patch_size=P, quality_range=(10, 90), crops_per_image=3)
    streamed = _batches(patch_dataset(mixed_dir, cfg, B, seed=4, cache=False, shuffle_buffer=16), 6)
    cached = _batches(patch_dataset(mixed_dir, cfg, B, seed=4, cache=True, shuffle_buffer=16), 6)
    assert _same(streamed, cached)


def test_streamed_is_seeded(mixed_dir):
    cfg = PatchConfig(patch_size=P, quality_range=(10, 90), crops_per_image=2)
    kw = dict(cache=False, shuffle_buffer=16)
    a = _batches(patch_dataset(mixed_dir, cfg, B, seed=7, **kw), 4)
    b = _batches(patch_dataset(mixed_dir, cfg, B, seed=7, **kw), 4)
    c = _batches(patch_dataset(mixed_dir, cfg, B, seed=8, **kw), 4)
    assert _same(a, b)
    assert not np.array_equal(a[0][1], c[0][1])
    assert not np.array_equal(a[0][1], a[1][1])


def test_crops_per_image_validated():
    for bad in (0, 257):
        with pytest.raises(ValueError):
            PatchConfig(crops_per_image=bad)


def test_crops_per_image_flag():
    p = training_parser("test", out_help="out")
    base = ["--data", "d", "--run-dir", "r"]
    assert run_options(p.parse_args(base + ["--crops-per-image", "6"]))["crops_per_image"] == 6
    assert "crops_per_image" not in run_options(p.parse_args(base))
    with pytest.raises(SystemExit):
        p.parse_args(base + ["--crops-per-image", "0"])


# -- shards ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shard_dir(mixed_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "packed"
    assert cli_main(["data", "pack", str(mixed_dir), "-o", str(out), "--shard-size", "3"]) == 0
    return out


def test_pack_writes_shards_and_index(shard_dir, mixed_dir):
    files = sorted(os.listdir(shard_dir))
    assert files == [f"shard-0000{i}-of-00003.tfrecord" for i in range(3)] + [INDEX_NAME]
    with open(shard_dir / INDEX_NAME) as f:
        index = json.load(f)
    assert index["images"] == 8 and index["reencoded_png"] == len(PILLOW_ONLY) + 1
    assert [e["images"] for e in index["shards"]] == [3, 3, 2]
    assert sum(e["pixels"] for e in index["shards"]) == 8 * 48 * 64
    # Every record decodes with TensorFlow's own ops (JPEG kept, the rest PNG).
    for record in tf.data.TFRecordDataset(str(shard_dir / files[0])):
        data = tf.io.parse_single_example(record, {"image": tf.io.FixedLenFeature([], tf.string)})
        assert tf.io.decode_image(data["image"]).shape[:2] == (48, 64)


def test_pack_refuses_a_folder_with_shards(shard_dir, mixed_dir, capsys):
    assert cli_main(["data", "pack", str(mixed_dir), "-o", str(shard_dir)]) == 1
    assert "already holds shards" in capsys.readouterr().err


@pytest.mark.parametrize("cache", [False, True])
def test_shards_give_the_files_patches(shard_dir, mixed_dir, cache):
    """In pack order (no shuffling), shards and files yield the very same patches."""
    cfg = PatchConfig(patch_size=P, quality_range=(10, 90), crops_per_image=2)
    kw = dict(batch_size=2, seed=3, shuffle=False, repeat=False, cache=cache)
    from_files = _batches(patch_dataset(mixed_dir, cfg, **kw), 8)
    from_shards = _batches(patch_dataset(shard_dir, cfg, **kw), 8)
    assert len(from_shards) == 8 and _same(from_files, from_shards)


def test_shards_shuffled_and_seeded(shard_dir):
    cfg = PatchConfig(patch_size=P, quality=20)
    plan = pipeline_plan(str(shard_dir / "*.tfrecord"), cfg)
    assert plan.kind == "shards" and plan.images == 8 and plan.cache
    a = _batches(patch_dataset(shard_dir, cfg, B, seed=2, cache=False, shuffle_buffer=8), 4)
    b = _batches(patch_dataset(shard_dir, cfg, B, seed=2, cache=False, shuffle_buffer=8), 4)
    assert _same(a, b)
    for x, y in a:
        assert x.shape == y.shape == (B, P, P, 3) and 0 <= y.min() and y.max() <= 1


def test_shards_without_index_stream(shard_dir, tmp_path):
    for name in os.listdir(shard_dir):
        if name.endswith(".tfrecord"):
            os.link(shard_dir / name, tmp_path / name)
    plan = pipeline_plan(tmp_path, PatchConfig(patch_size=P))
    assert plan.images is None and not plan.cache
    ds = patch_dataset(tmp_path, PatchConfig(patch_size=P), B, shuffle_buffer=8)
    assert len(_batches(ds, 2)) == 2


def test_shard_sources_checked(shard_dir, mixed_dir):
    with pytest.raises(InputError, match="smaller than the patch size"):
        pipeline_plan(shard_dir, PatchConfig(patch_size=56))
    with pytest.raises(InputError, match="not both"):
        pipeline_plan([shard_dir, mixed_dir], PatchConfig(patch_size=P))
    with pytest.raises(InputError):
        pack_shards(mixed_dir, shard_dir / "new", shard_size=0)
