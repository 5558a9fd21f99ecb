"""tf.data pipelines: images from a folder or glob -> augmented (compressed, clean) patches."""

import math

import numpy as np
import tensorflow as tf

from .codecs.graph_jpeg import jpeg_roundtrip
from .errors import InputError
from .imageio import IMAGE_EXTENSIONS, list_images

__all__ = ["IMAGE_EXTENSIONS", "list_images", "patch_dataset",
           "PatchConfig", "QUALITY_SAMPLING", "draw_quality", "eval_patches", "image_sizes",
           "decode_file"]


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


def decode_file(path, channels):
    """A uint8 [H, W, channels] tensor from an image file (PNG, JPEG, BMP, GIF first frame)."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=channels, dtype=tf.uint8,
                               expand_animations=False)
    return tf.ensure_shape(image, [None, None, channels])


#: How a quality-range config draws each patch's JPEG quality.
QUALITY_SAMPLING = ("uniform", "log")


class PatchConfig:
    """Augmentation and degradation settings for `patch_dataset`.

    Defaults are the seed project's: one random crop per image visit; with p=0.5 a
    bicubic rescale by 0.9/0.8/0.7/0.6; with p=0.5 a rotation by 90/180/270; plus
    horizontal flips with p=0.5.

    With `quality_range`, each patch's JPEG quality is drawn from LO..HI: uniformly
    (`quality_sampling="uniform"`) or log-uniformly ("log": density ~ 1/q, so the low
    qualities, where there is most to restore, get more of the patches).
    """

    def __init__(self, patch_size=128, channels=3, quality=None, quality_range=None,
                 rescale_prob=0.5, scales=(0.9, 0.8, 0.7, 0.6), rot_prob=0.5, flip_prob=0.5,
                 quality_sampling="uniform"):
        if quality is not None and quality_range is not None:
            raise ValueError("give either quality or quality_range, not both")
        if quality is not None and not 1 <= quality <= 100:
            raise ValueError(f"quality must be in 1..100, got {quality}")
        if quality_range is not None:
            lo, hi = quality_range
            if not 1 <= lo <= hi <= 100:
                raise ValueError(f"quality_range must satisfy 1 <= lo <= hi <= 100, got {quality_range}")
        if quality_sampling not in QUALITY_SAMPLING:
            raise ValueError(f"quality_sampling must be one of {QUALITY_SAMPLING}, "
                             f"got {quality_sampling!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if patch_size < 8:
            raise ValueError(f"patch_size must be >= 8, got {patch_size}")
        self.patch_size = int(patch_size)
        self.channels = int(channels)
        self.quality = quality
        self.quality_range = tuple(quality_range) if quality_range is not None else None
        self.quality_sampling = quality_sampling
        self.rescale_prob = float(rescale_prob)
        self.scales = tuple(float(s) for s in scales)
        self.rot_prob = float(rot_prob)
        self.flip_prob = float(flip_prob)


def _augment(image, seed, cfg):
    """One random (compressed, clean) float32 pair from a uint8 image, stateless in `seed`."""
    s = tf.random.experimental.stateless_split(seed, num=8)
    p = cfg.patch_size
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    # Rescale by s == crop a (p/s)-sized window and resize it to p (bicubic), which is what
    # rescaling the whole image then cropping p gives, at a fraction of the cost.
    scales = tf.constant((1.0,) + cfg.scales, tf.float32)
    do_rescale = tf.random.stateless_uniform([], s[0]) < cfg.rescale_prob
    k = tf.random.stateless_uniform([], s[1], 1, len(scales), dtype=tf.int32)
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
    do_rot = tf.random.stateless_uniform([], s[4]) < cfg.rot_prob
    turns = tf.where(do_rot, tf.random.stateless_uniform([], s[5], 1, 4, dtype=tf.int32), 0)
    patch = tf.image.rot90(patch, turns)
    patch = tf.cond(tf.random.stateless_uniform([], s[6]) < cfg.flip_prob,
                    lambda: tf.image.flip_left_right(patch), lambda: patch)
    patch = tf.ensure_shape(patch, [p, p, cfg.channels])
    degraded = _degrade(patch, s[7], cfg)
    return tf.image.convert_image_dtype(degraded, tf.float32), \
        tf.image.convert_image_dtype(patch, tf.float32)


def draw_quality(seed, cfg):
    """The JPEG quality (int32 scalar) of one patch of a quality-range config, stateless in seed."""
    lo, hi = cfg.quality_range
    if cfg.quality_sampling == "log":
        # floor(exp(U(log lo, log(hi + 1)))): P(q) ~ log((q + 1) / q), every q reachable.
        u = tf.random.stateless_uniform([], seed, math.log(lo), math.log(hi + 1))
        return tf.clip_by_value(tf.cast(tf.floor(tf.exp(u)), tf.int32), lo, hi)
    return tf.random.stateless_uniform([], seed, lo, hi + 1, dtype=tf.int32)


def _degrade(patch, seed, cfg):
    if cfg.quality is not None:
        return jpeg_roundtrip(patch, cfg.quality)
    if cfg.quality_range is not None:
        return jpeg_roundtrip(patch, draw_quality(seed, cfg))
    return patch


def patch_dataset(source, config, batch_size, seed=0, shuffle=True, repeat=True):
    """Training pipeline: images -> batches of (degraded, clean) float32 patches in [0, 1].

    Args:
      source: directory, glob or list of paths.
      config: a PatchConfig.
      batch_size: global batch size (split over replicas by the distribution strategy).
      seed: shuffle and augmentation seed; the same seed on every worker gives the same
        stream, so MultiWorkerMirroredStrategy can shard it by element (DATA policy).
      shuffle, repeat: shuffle image order each pass; repeat forever.

    Every element's randomness comes from stateless ops keyed by (seed, element index),
    so the stream is the same with any degree of parallelism.
    """
    paths = list_images(source)
    small = [(p, s) for p, s in zip(paths, image_sizes(paths)) if min(s) < config.patch_size]
    if small:
        raise InputError(f"{len(small)} image(s) smaller than the patch size "
                         f"{config.patch_size}, e.g. {small[0][0]} {small[0][1]}")
    # Decoded once, then kept in memory: decoding megapixel PNGs per patch would dominate.
    ds = tf.data.Dataset.from_tensor_slices(paths).map(
        lambda p: decode_file(p, config.channels), num_parallel_calls=tf.data.AUTOTUNE).cache()
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.enumerate()
    ds = ds.map(lambda i, im: _augment(im, tf.stack([tf.cast(seed, tf.int64), i]), config),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
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
