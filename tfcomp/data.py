"""tf.data pipelines: images from folders, globs or TFRecord shards -> augmented
(compressed, clean) patches."""

import math
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from .codecs.graph_jpeg import jpeg_roundtrip
from .errors import InputError
from .imageio import IMAGE_EXTENSIONS, image_from_bytes, list_images
from .shards import TF_MAGIC, find_shards, shard_stats

__all__ = ["IMAGE_EXTENSIONS", "list_images", "patch_dataset", "pipeline_plan", "PipelinePlan",
           "PatchConfig", "QUALITY_SAMPLING", "check_quality_sampling", "draw_quality",
           "random_qualities", "eval_patches", "image_sizes", "decode_file", "decode_bytes",
           "CACHE_BUDGET", "SHUFFLE_BUFFER", "STREAM_CROPS", "MAX_STREAM_CROPS"]

#: Decoded size (bytes of uint8 pixels) up to which `patch_dataset` keeps the decoded
#: images in memory unless told otherwise (1 GiB; the 149 training images take 0.19 GiB).
CACHE_BUDGET = 2 ** 30
#: Patch pairs in the shuffle buffer behind the crops (uint8: 96 MiB at 128x128x3).
SHUFFLE_BUFFER = 1024
#: Crops per decoded image when streaming and PatchConfig.crops_per_image is not set: the
#: mean image area in patches (so decoding costs about one patch's pixels per patch), within
#: 1..MAX_STREAM_CROPS; STREAM_CROPS (256x256 images, 128 patches) when sizes are unknown.
STREAM_CROPS = 4
MAX_STREAM_CROPS = 16


def image_sizes(paths):
    """(height, width) of each image from its header, without decoding pixels."""
    from PIL import Image
    sizes = []
    for p in paths:
        try:
            with Image.open(p) as im:
                sizes.append((im.height, im.width))
        except (OSError, SyntaxError, ValueError) as e:
            raise InputError(f"{p}: not an image Pillow can read ({e})") from None
    return sizes


def _pillow_decode(data, channels):
    """uint8 [H, W, channels] from encoded bytes through tfcomp.imageio (WebP, TIFF, ...)."""
    mode = "gray" if channels == 1 else "rgb"

    def decode(raw):
        pixels = image_from_bytes(raw.tobytes(), mode)
        return pixels[..., None] if channels == 1 else pixels

    # Passed as uint8 values: numpy would drop a string's trailing NUL bytes.
    return tf.numpy_function(decode, [tf.io.decode_raw(data, tf.uint8)], tf.uint8,
                             stateful=False)


def decode_bytes(data, channels):
    """A uint8 [H, W, channels] tensor from an encoded image (a scalar string tensor).

    JPEG and PNG decode with TensorFlow's ops; every other format `list_images` accepts
    (WebP, TIFF, BMP, PPM/PGM) through Pillow in a `tf.numpy_function`, exactly as
    tfcomp.imageio reads it (slower, holds the GIL: fine for the odd file).
    """
    native = tf.reduce_any([tf.equal(tf.strings.substr(data, 0, len(m)), m) for m in TF_MAGIC])
    image = tf.cond(
        native,
        lambda: tf.io.decode_image(data, channels=channels, dtype=tf.uint8,
                                   expand_animations=False),
        lambda: _pillow_decode(data, channels))
    return tf.ensure_shape(image, [None, None, channels])


def decode_file(path, channels):
    """A uint8 [H, W, channels] tensor from an image file of any `IMAGE_EXTENSIONS` format."""
    return decode_bytes(tf.io.read_file(path), channels)


#: How a quality-range config draws each patch's JPEG quality.
QUALITY_SAMPLING = ("uniform", "log")


class PatchConfig:
    """Augmentation and degradation settings for `patch_dataset`.

    Defaults are the seed project's: a random crop; with p=0.5 a bicubic rescale by
    0.9/0.8/0.7/0.6; with p=0.5 a rotation by 90/180/270; plus horizontal flips with p=0.5.
    A scale above 1 enlarges (a (p/s)-sized window resized up to p): smooth, scaled-up
    content such as some of Set14's images, where a restorer must leave accurate files alone.

    With `quality_range`, each patch's JPEG quality is drawn from LO..HI: uniformly
    (`quality_sampling="uniform"`) or log-uniformly ("log": density ~ 1/q, so the low
    qualities, where there is most to restore, get more of the patches).

    `crops_per_image` is how many patches each decoded image gives per visit; None: one
    when the decoded images are cached, and when they are streamed (decoding is then the
    cost to spread) the mean image area over the patch area, in 1..MAX_STREAM_CROPS.
    """

    def __init__(self, patch_size=128, channels=3, quality=None, quality_range=None,
                 rescale_prob=0.5, scales=(0.9, 0.8, 0.7, 0.6), rot_prob=0.5, flip_prob=0.5,
                 quality_sampling="uniform", crops_per_image=None):
        if quality is not None and quality_range is not None:
            raise ValueError("give either quality or quality_range, not both")
        if quality is not None and not 1 <= quality <= 100:
            raise ValueError(f"quality must be in 1..100, got {quality}")
        if quality_range is not None:
            lo, hi = quality_range
            if not 1 <= lo <= hi <= 100:
                raise ValueError(f"quality_range must satisfy 1 <= lo <= hi <= 100, got {quality_range}")
        check_quality_sampling(quality_sampling)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if patch_size < 8:
            raise ValueError(f"patch_size must be >= 8, got {patch_size}")
        if not 0.0 <= rescale_prob <= 1.0:
            raise ValueError(f"rescale_prob must be in [0, 1], got {rescale_prob}")
        if not scales or any(not 0.1 <= float(v) <= 8.0 for v in scales):
            raise ValueError(f"scales must be a non-empty list of factors in [0.1, 8], got {scales}")
        if crops_per_image is not None and not 1 <= crops_per_image <= 256:
            raise ValueError(f"crops_per_image must be in 1..256, got {crops_per_image}")
        self.patch_size = int(patch_size)
        self.channels = int(channels)
        self.quality = quality
        self.quality_range = tuple(quality_range) if quality_range is not None else None
        self.quality_sampling = quality_sampling
        self.rescale_prob = float(rescale_prob)
        self.scales = tuple(float(s) for s in scales)
        self.rot_prob = float(rot_prob)
        self.flip_prob = float(flip_prob)
        self.crops_per_image = None if crops_per_image is None else int(crops_per_image)


def _crop(image, s, cfg):
    """One random uint8 [p, p, C] patch of `image` (rescale, rotation, flip), stateless in
    the seeds s[0..6] of an 8-way split."""
    turns, flip = _orientation(s, cfg)
    return tf.ensure_shape(_orient(_window(image, s, cfg), turns, flip),
                           [cfg.patch_size, cfg.patch_size, cfg.channels])


def _window(image, s, cfg):
    """The random window, rescaled to p x p (uint8), of `_crop` (seeds s[0..3])."""
    p = cfg.patch_size
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    # Rescale by s == crop a (p/s)-sized window and resize it to p (bicubic), which is what
    # rescaling the whole image then cropping p gives, at a fraction of the cost.
    scales = tf.constant((1.0,) + cfg.scales, tf.float32)
    do_rescale = tf.random.stateless_uniform([], s[0]) < cfg.rescale_prob
    k = tf.random.stateless_uniform([], s[1], 1, len(cfg.scales) + 1, dtype=tf.int32)
    scale = tf.where(do_rescale, scales[k], 1.0)
    crop = tf.cast(tf.math.ceil(p / scale), tf.int32)
    crop = tf.minimum(crop, tf.minimum(h, w))
    y = tf.random.stateless_uniform([], s[2], 0, h - crop + 1, dtype=tf.int32)
    x = tf.random.stateless_uniform([], s[3], 0, w - crop + 1, dtype=tf.int32)
    patch = image[y:y + crop, x:x + crop, :]
    patch = tf.cond(
        tf.equal(crop, p),
        lambda: patch,
        lambda: tf.cast(tf.clip_by_value(tf.round(tf.image.resize(
            patch, [p, p], method="bicubic", antialias=True)), 0, 255), tf.uint8))
    return patch


def _orientation(s, cfg):
    """(quarter turns 0..3, flip 0/1) int32 scalars of `_crop` (seeds s[4..6])."""
    do_rot = tf.random.stateless_uniform([], s[4]) < cfg.rot_prob
    turns = tf.where(do_rot, tf.random.stateless_uniform([], s[5], 1, 4, dtype=tf.int32), 0)
    return turns, tf.cast(tf.random.stateless_uniform([], s[6]) < cfg.flip_prob, tf.int32)


def _rot90(image, k):
    """tf.image.rot90(image, k) for a Python int k in 0..3 (the same ops)."""
    if k == 1:
        return tf.transpose(tf.reverse(image, [1]), [1, 0, 2])
    if k == 2:
        return tf.reverse(image, [0, 1])
    if k == 3:
        return tf.reverse(tf.transpose(image, [1, 0, 2]), [1])
    return image


def _orient(image, turns, flip):
    """`turns` counter-clockwise quarter turns, then a left-right flip if `flip` (int32
    scalars): tf.image.rot90 and flip_left_right's pixels in one switch_case, instead of
    their four conditionals."""
    def branch(k, f):
        return lambda: tf.reverse(_rot90(image, k), [1]) if f else _rot90(image, k)

    return tf.switch_case(turns * 2 + flip, [branch(k, f) for k in range(4) for f in (0, 1)])


def _crops(index, image, seed, cfg, n):
    """The n (degraded, clean) uint8 [n, p, p, C] patch pairs of the image at stream
    position `index`: pair k is element index * n + k, all its randomness keyed by the
    seed (seed, element)."""
    base = tf.cast(index, tf.int64) * n
    seed = tf.cast(seed, tf.int64)

    def one(k):
        s = tf.random.experimental.stateless_split(tf.stack([seed, base + k]), num=8)
        patch = _crop(image, s, cfg)
        return _degrade(patch, s[7], cfg), patch

    if n == 1:
        return tuple(t[None] for t in one(tf.constant(0, tf.int64)))
    spec = tf.TensorSpec([cfg.patch_size, cfg.patch_size, cfg.channels], tf.uint8)
    # map_fn traces one crop whatever n is (a Python loop would trace n).
    return tf.map_fn(one, tf.range(n, dtype=tf.int64), fn_output_signature=(spec, spec))


def _to_float(degraded, clean):
    """uint8 -> float32 in [0, 1] (x / 255), of single patches or whole batches alike."""
    return (tf.image.convert_image_dtype(degraded, tf.float32),
            tf.image.convert_image_dtype(clean, tf.float32))


def check_quality_sampling(sampling):
    """Raises ValueError unless `sampling` is one of QUALITY_SAMPLING."""
    if sampling not in QUALITY_SAMPLING:
        raise ValueError(f"quality_sampling must be one of {QUALITY_SAMPLING}, got {sampling!r}")


def draw_quality(seed, cfg):
    """The JPEG quality (int32 scalar) of one patch of a quality-range config, stateless in seed."""
    lo, hi = cfg.quality_range
    if cfg.quality_sampling == "log":
        return _log_quality(tf.random.stateless_uniform([], seed, math.log(lo), math.log(hi + 1)),
                            lo, hi)
    return tf.random.stateless_uniform([], seed, lo, hi + 1, dtype=tf.int32)


def _log_quality(u, lo, hi):
    # u ~ U(log lo, log(hi + 1)); floor(exp(u)): P(q) ~ log((q + 1) / q), every q reachable.
    return tf.clip_by_value(tf.cast(tf.floor(tf.exp(u)), tf.int32), lo, hi)


def random_qualities(n, lo, hi, sampling="uniform"):
    """n qualities in lo..hi (int32 [n]) from the global RNG, drawn as draw_quality's
    `sampling` ("uniform" or "log": density ~ 1/q, low qualities more often)."""
    check_quality_sampling(sampling)
    if sampling == "log":
        return _log_quality(tf.random.uniform([n], math.log(lo), math.log(hi + 1)), lo, hi)
    return tf.random.uniform([n], lo, hi + 1, dtype=tf.int32)


def _degrade(patch, seed, cfg):
    if cfg.quality is not None:
        return jpeg_roundtrip(patch, cfg.quality)
    if cfg.quality_range is not None:
        return jpeg_roundtrip(patch, draw_quality(seed, cfg))
    return patch


class PipelinePlan(NamedTuple):
    """What `patch_dataset` will read and how (see `pipeline_plan`)."""
    kind: str                 # "files" or "shards"
    items: list               # image paths or shard files, sorted
    images: int               # number of images (None: shards without an index)
    decoded_bytes: int        # uint8 pixels of the decoded set (None: unknown)
    cache: bool               # decoded images kept in memory
    crops_per_image: int


def pipeline_plan(source, config, cache=None, cache_budget=CACHE_BUDGET):
    """Lists a source and decides the pipeline: files or shards, cached or streamed.

    Images smaller than the patch size are refused (from the image headers, or the shards'
    index). With `cache=None` the decoded images are cached when they fit `cache_budget`
    bytes (height * width * channels summed over the set, from the headers / index);
    shards without an index are streamed. Crops per image: the config's, else 1 when
    cached, else the mean image area over the patch area in 1..MAX_STREAM_CROPS
    (STREAM_CROPS for shards without an index).
    """
    p = config.patch_size
    shards = find_shards(source)
    if shards is None:
        items = list_images(source)
        sizes = image_sizes(items)
        small = [(path, s) for path, s in zip(items, sizes) if min(s) < p]
        if small:
            raise InputError(f"{len(small)} image(s) smaller than the patch size {p}, "
                             f"e.g. {small[0][0]} {small[0][1]}")
        images, decoded = len(items), sum(h * w for h, w in sizes) * config.channels
    else:
        items, stats = shards, shard_stats(shards)
        images = decoded = None
        if stats is not None:
            images, pixels, side = stats
            if side < p:
                raise InputError(f"the shards hold images smaller than the patch size {p} "
                                 f"(smallest side {side})")
            decoded = pixels * config.channels
    if cache is None:
        cache = decoded is not None and decoded <= cache_budget
    crops = config.crops_per_image
    if crops is None:
        crops = 1 if cache else STREAM_CROPS if decoded is None else min(
            MAX_STREAM_CROPS, max(1, round(decoded / config.channels / images / p ** 2)))
    return PipelinePlan("shards" if shards else "files", items, images, decoded, bool(cache),
                        crops)


#: Marks a tf.data function as plain graph code (no Python control flow on tensors), which
#: skips AutoGraph's conversion and halves the pipeline's tracing time.
_graph_only = tf.autograph.experimental.do_not_convert


def _records(files, cycle_length):
    """Encoded image bytes from a dataset of shard file names, interleaved over files."""
    parallel = dict(num_parallel_calls=tf.data.AUTOTUNE, deterministic=True) \
        if cycle_length > 1 else {}
    return files.interleave(tf.data.TFRecordDataset, cycle_length=cycle_length, block_length=1,
                            **parallel).map(
        lambda r: tf.io.parse_single_example(r, {"image": tf.io.FixedLenFeature([], tf.string)})[
            "image"])


def _image_stream(plan, config, seed, shuffle, repeat):
    """Enumerated (index, decoded image) or (index, encoded bytes) stream, with the image
    order shuffled each pass; the second element of the tuple says whether it is decoded."""
    c = config.channels
    items = tf.data.Dataset.from_tensor_slices(plan.items)
    if plan.cache:
        # Everything decoded once into memory, then shuffled with a buffer of the whole set.
        ds = items.map(tf.io.read_file) if plan.kind == "files" else _records(items, 1)
        count = plan.images or int(ds.reduce(0, lambda n, _: n + 1))  # index-less shards
        ds = ds.map(_graph_only(lambda b: decode_bytes(b, c)),
                    num_parallel_calls=tf.data.AUTOTUNE).cache()
        if shuffle:
            ds = ds.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        return (ds.repeat() if repeat else ds).enumerate(), True
    # Streamed: only names are shuffled (a shard's records stay in order, interleaved with
    # other shards' and mixed by the patch shuffle buffer).
    if shuffle:
        items = items.shuffle(len(plan.items), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        items = items.repeat()
    if plan.kind == "files":
        return items.enumerate(), False
    return _records(items, min(len(plan.items), 4) if shuffle else 1).enumerate(), False


def patch_dataset(source, config, batch_size, seed=0, shuffle=True, repeat=True, *,
                  cache=None, cache_budget=CACHE_BUDGET, shuffle_buffer=SHUFFLE_BUFFER):
    """Training pipeline: images -> batches of (degraded, clean) float32 patches in [0, 1].

    Args:
      source: image folder, glob or list of those; or TFRecord shards written by
        `tfcomp data pack` (a shard folder, a ``*.tfrecord`` glob or a list of those).
      config: a PatchConfig (augmentations, JPEG degradation, crops per image).
      batch_size: global batch size (split over replicas by the distribution strategy).
      seed: shuffle and augmentation seed; the same seed on every worker gives the same
        stream, so MultiWorkerMirroredStrategy can shard it by element (DATA policy).
      shuffle, repeat: shuffle image order each pass; repeat forever.
      cache: True keeps the decoded images in memory, False streams them (decoding each
        image again at each visit), None (default) caches when the decoded set fits
        `cache_budget` bytes (see `pipeline_plan`).
      shuffle_buffer: patches in the shuffle buffer behind the crops, used when an image
        gives several crops or the source is shards (whose records come in pack order).

    Images are read in parallel (`map`/`interleave` with AUTOTUNE, in order), each visit
    cropped `crops_per_image` times. Every patch's randomness (crop, rescale, rotation,
    flip, JPEG quality) comes from stateless ops keyed by (seed, patch index in the
    stream), so the stream is the same with any degree of parallelism, and the same
    cached or streamed.
    """
    plan = pipeline_plan(source, config, cache=cache, cache_budget=cache_budget)
    n, c = plan.crops_per_image, config.channels
    images, decoded = _image_stream(plan, config, seed, shuffle, repeat)

    @_graph_only
    def crops(j, item):
        if not decoded:
            item = decode_file(item, c) if plan.kind == "files" else decode_bytes(item, c)
        return _crops(j, item, seed, config, n)

    ds = images.map(crops, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
    if shuffle and (n > 1 or plan.kind == "shards"):
        ds = ds.shuffle(shuffle_buffer, seed=seed)
    # Batched as uint8 and converted per batch: a quarter of the bytes to copy, 1/B the ops.
    ds = ds.batch(batch_size, drop_remainder=True).map(
        _graph_only(_to_float), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def relative_weights(degraded, clean, power, floor=1e-5):
    """Per-sample loss weights (MSE(degraded, clean) + floor) ** -power, normalised to mean 1.

    With power 0 every sample counts by its plain MSE; with power 1 the loss becomes the
    mean of MSE(output) / MSE(input), which counts a 10 % error reduction at JPEG q90 as
    much as one at q10 (a plain MSE loss barely sees the high qualities, so a quality-blind
    model learns to damage them a little). Used on batches: (x, y) -> (x, y, w).
    """
    mse = tf.reduce_mean(tf.square(degraded - clean), axis=[1, 2, 3])
    w = tf.pow(mse + floor, -float(power))
    # Shaped [batch, 1, 1] to broadcast over Keras' per-pixel MSE (which reduces channels only).
    return (w / tf.reduce_mean(w))[:, tf.newaxis, tf.newaxis]


def eval_patches(source, patch_size, channels, qualities, max_images=None):
    """A fixed validation set: the centre crop of each image, JPEG'd at each quality.

    With `qualities=None` the crops are returned uncompressed (for codec training).

    Returns numpy arrays (degraded, clean) float32 [N, p, p, C] in [0, 1].
    """
    xs, ys = [], []
    for path in list_images(source)[:max_images]:
        img = decode_file(path, channels).numpy()
        h, w = img.shape[:2]
        p = min(patch_size, h, w)
        y0, x0 = (h - p) // 2, (w - p) // 2
        crop = img[y0:y0 + p, x0:x0 + p]
        if p != patch_size:
            continue
        for q in qualities or [None]:
            xs.append(crop if q is None else jpeg_roundtrip(crop, int(q)).numpy())
            ys.append(crop)
    if not xs:
        raise InputError(f"no validation image is at least {patch_size} pixels on each side")
    return (np.stack(xs).astype(np.float32) / 255.0, np.stack(ys).astype(np.float32) / 255.0)
