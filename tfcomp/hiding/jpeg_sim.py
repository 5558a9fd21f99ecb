"""A differentiable simulation of baseline libjpeg JPEG (4:2:0) in TensorFlow.

Used as "Strategy I" of the residual-hiding model (tfcomp.hiding.model): the forward value
comes from the real codec, the gradient from this simulation,
``sim(x) + tf.stop_gradient(real(x) - sim(x))``.

The pipeline follows libjpeg (IJG / libjpeg-turbo, as used by TF encode_jpeg and Pillow):

* quality scaling of the Annex K tables exactly as ``jpeg_set_quality(q, force_baseline)``;
* RGB -> JFIF YCbCr, 2x2 box-average chroma downsampling;
* edge replication into partial MCUs the way the encoder does it: the full-resolution
  planes are replicated right to a multiple of 16 columns and down to an even number of
  rows, then (after downsampling) the last row of every plane is replicated down to a
  whole MCU row (16 luma / 8 chroma rows). Gray images use 8x8 MCUs;
* level shift, orthonormal 8x8 DCT-II (matrix form; equal to libjpeg's DCT up to its
  fixed-point errors), ``Fq = round(F / Q)``, ``F' = Fq * Q``, inverse DCT;
* libjpeg's "fancy" h2v2 chroma upsampling (triangular 9/3/3/1 weights, edges clamped at
  the chroma plane's real size ceil(H/2) x ceil(W/2)), which is exactly a 2x bilinear
  ``tf.image.resize`` with half-pixel centres;
* YCbCr -> RGB, clip to [0, 255].

Only the quantisation is rounded (with a differentiable surrogate). libjpeg's other integer
steps (8-bit samples after colour conversion and downsampling, integer DCT/IDCT, the
range-limit after the IDCT, 8-bit output) are not simulated. On gray images the luma path
is then exact up to the output's 8-bit rounding (58.5 dB against the real codec at q=100);
in colour the chroma roundings, amplified by YCbCr -> RGB, cap the match at about 50 dB
(RMS ~0.8 grey levels). At lower qualities the remaining difference is quantisation
decisions flipped by these small differences: on natural 64x96 test images the simulation
is 39-48 dB (RGB) / 49-55 dB (gray) from the real decoded image for q = 10..90.

Not modelled: the box upsampling libjpeg-turbo falls back to when the chroma plane is
at most 2 pixels wide (images of width <= 4).
"""

import numpy as np
import tensorflow as tf

from ..metrics import psnr

__all__ = ["LUMA_TABLE", "CHROMA_TABLE", "quant_tables", "jpeg_simulate", "compare_with_real",
           "dct_blocks", "rate_bits", "rgb_to_ycc"]

#: Annex K (IJG) luminance quantisation table, quality 50.
LUMA_TABLE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99]], dtype=np.int32)

#: Annex K (IJG) chrominance quantisation table, quality 50.
CHROMA_TABLE = np.array([
    [17, 18, 24, 47, 99, 99, 99, 99],
    [18, 21, 26, 66, 99, 99, 99, 99],
    [24, 26, 56, 99, 99, 99, 99, 99],
    [47, 66, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99]], dtype=np.int32)


def _dct_matrix():
    k = np.arange(8)[:, None]
    n = np.arange(8)[None, :]
    d = np.sqrt(2.0 / 8.0) * np.cos(np.pi * (2 * n + 1) * k / 16.0)
    d[0] /= np.sqrt(2.0)
    return d.astype(np.float32)


_DCT = _dct_matrix()  # orthonormal: F = D X D^T, X = D^T F D

# JFIF RGB -> YCbCr (offset 128 on the chroma) and its exact inverse.
_RGB_TO_YCC = np.array([[0.299, 0.587, 0.114],
                        [-0.168736, -0.331264, 0.5],
                        [0.5, -0.418688, -0.081312]], dtype=np.float64)
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC)
_YCC_OFFSET = np.array([0.0, 128.0, 128.0], dtype=np.float32)

_ROUNDING = ("cubic", "ste")
_RATE_EPS = 1e-4  # |x| ~ sqrt(x^2 + eps): a defined gradient at x = 0


def quant_tables(quality):
    """libjpeg's (luma, chroma) quantisation tables for `quality`, as float32 tensors.

    `quality` (1..100; clamped like libjpeg) is a Python int or an int32 scalar tensor ->
    tables [8, 8], or an int32 tensor [B] -> tables [B, 8, 8] (one per batch element).
    Scaling: s = 5000 // q if q < 50 else 200 - 2 q; table = clip((T s + 50) // 100, 1, 255).
    """
    q = tf.clip_by_value(tf.cast(quality, tf.int32), 1, 100)
    scale = tf.where(q < 50, 5000 // q, 200 - 2 * q)
    scale = scale[..., None, None]

    def scaled(table):
        t = (tf.constant(table) * scale + 50) // 100
        return tf.cast(tf.clip_by_value(t, 1, 255), tf.float32)

    return scaled(LUMA_TABLE), scaled(CHROMA_TABLE)


def _round_half_away(x):
    """Rounds half away from zero, like libjpeg's quantiser."""
    return tf.sign(x) * tf.floor(tf.abs(x) + 0.5)


def _surrogate_round(x, rounding):
    r = tf.stop_gradient(_round_half_away(x))
    if rounding == "cubic":
        return r + (x - r) ** 3
    return x + tf.stop_gradient(r - x)  # "ste"


def _replicate_pad(x, axis, size):
    """Pads axis `axis` of `x` to `size` by repeating the last entry (edge replication)."""
    n = tf.shape(x)[axis]
    idx = tf.minimum(tf.range(size), n - 1)
    return tf.gather(x, idx, axis=axis)


def _round_up(n, m):
    return (n + m - 1) // m * m


def dct_blocks(plane):
    """Orthonormal 8x8 DCT of a plane [B, H, W] (H, W % 8 == 0) of 0..255 values, level-shifted
    by 128 -> coefficients [B, H/8, W/8, 8, 8]."""
    shape = tf.shape(plane)
    b, h, w = shape[0], shape[1], shape[2]
    blocks = tf.reshape(plane - 128.0, [b, h // 8, 8, w // 8, 8])
    blocks = tf.transpose(blocks, [0, 1, 3, 2, 4])  # [B, H/8, W/8, 8, 8]
    d = tf.constant(_DCT)
    return tf.einsum("ij,bxyjk,lk->bxyil", d, blocks, d)


def _code_plane(plane, table, rounding):
    """DCT, quantise, dequantise, inverse DCT of a padded plane [B, H, W] (H, W % 8 == 0).

    `table` is [8, 8] or [B, 8, 8]. Returns (decoded plane, surrogate-rounded Fq blocks).
    """
    shape = tf.shape(plane)
    b, h, w = shape[0], shape[1], shape[2]
    d = tf.constant(_DCT)
    coeffs = dct_blocks(plane)
    if table.shape.rank == 3:
        table = table[:, None, None]
    fq = _surrogate_round(coeffs / table, rounding)
    rec = tf.einsum("ji,bxyjk,kl->bxyil", d, fq * table, d)
    rec = tf.reshape(tf.transpose(rec, [0, 1, 3, 2, 4]), [b, h, w]) + 128.0
    return rec, fq


def rate_bits(fq):
    """Sum over an image's coefficients of log2(1 + |Fq|) -> [B]."""
    mag = tf.sqrt(tf.square(fq) + _RATE_EPS) - np.sqrt(_RATE_EPS)
    bits = tf.math.log(1.0 + mag) / np.log(2.0)
    return tf.reduce_sum(bits, axis=[1, 2, 3, 4])


def rgb_to_ycc(x):
    """JFIF RGB -> YCbCr of [B, H, W, 3] 0..255 values (chroma offset by 128)."""
    return tf.einsum("bhwc,dc->bhwd", x, tf.constant(_RGB_TO_YCC, tf.float32)) + _YCC_OFFSET


def _upsample_h2v2(chroma, h, w):
    """libjpeg's fancy h2v2 upsampling of [B, ceil(h/2), ceil(w/2)] -> [B, h, w]."""
    ch = tf.shape(chroma)[1]
    cw = tf.shape(chroma)[2]
    up = tf.image.resize(chroma[..., None], tf.stack([2 * ch, 2 * cw]), method="bilinear")
    return up[:, :h, :w, 0]


def jpeg_simulate(images, quality, rounding="cubic", return_rate=False):
    """Differentiable simulation of a libjpeg JPEG round trip (4:2:0 for colour).

    `images`: float32 [B, H, W, C] (C = 1 or 3, static) in [0, 1]; H, W may be unknown at
    trace time. `quality`: Python int, int32 scalar or int32 [B]. `rounding`: "cubic"
    (round(x) + (x - round(x))**3, gradient 3 (x - round(x))**2) or "ste" (straight-through,
    gradient 1). Returns the decoded images, float32 [B, H, W, C] in [0, 1]; with
    `return_rate=True` also a differentiable rate proxy [B] in "bits per pixel": the sum
    over all quantised coefficients (surrogate-rounded, padding blocks included) of
    log2(1 + |Fq|), divided by H * W. It is a proxy that tracks, but is not, the Huffman
    coded size.
    """
    if rounding not in _ROUNDING:
        raise ValueError(f"rounding must be one of {_ROUNDING}, got {rounding!r}")
    x = tf.convert_to_tensor(images, tf.float32)
    if x.shape.rank != 4:
        raise ValueError(f"images must be [B, H, W, C], got shape {x.shape}")
    channels = x.shape[-1]
    if channels not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels (static), got {channels}")
    luma_q, chroma_q = quant_tables(quality)
    x = x * 255.0
    shape = tf.shape(x)
    h, w = shape[1], shape[2]

    if channels == 1:
        y = x[..., 0]
        y = _replicate_pad(_replicate_pad(y, 1, _round_up(h, 8)), 2, _round_up(w, 8))
        y_rec, fq = _code_plane(y, luma_q, rounding)
        out = y_rec[:, :h, :w, None]
        bits = rate_bits(fq)
    else:
        ycc = rgb_to_ycc(x)
        hp, wp = _round_up(h, 16), _round_up(w, 16)
        # The encoder replicates right to whole MCUs and down to a whole row group (2 rows)
        # before downsampling, then replicates each plane's last row down to a whole MCU row.
        ycc = _replicate_pad(_replicate_pad(ycc, 2, wp), 1, _round_up(h, 2))
        y = _replicate_pad(ycc[..., 0], 1, hp)
        c = ycc[..., 1:]
        cshape = tf.shape(c)
        c = tf.reduce_mean(tf.reshape(c, [cshape[0], cshape[1] // 2, 2, wp // 2, 2, 2]),
                           axis=[2, 4])
        c = _replicate_pad(c, 1, hp // 2)
        c = tf.transpose(c, [3, 0, 1, 2])  # [2, B, hp/2, wp/2]
        c = tf.reshape(c, [2 * cshape[0], hp // 2, wp // 2])  # Cb batch, then Cr batch
        c_table = chroma_q if chroma_q.shape.rank == 2 else tf.tile(chroma_q, [2, 1, 1])
        y_rec, fq_y = _code_plane(y, luma_q, rounding)
        c_rec, fq_c = _code_plane(c, c_table, rounding)
        ch, cw = (h + 1) // 2, (w + 1) // 2
        c_rec = _upsample_h2v2(c_rec[:, :ch, :cw], h, w)
        cb, cr = tf.split(c_rec, 2, axis=0)
        ycc_rec = tf.stack([y_rec[:, :h, :w], cb, cr], axis=-1) - _YCC_OFFSET
        out = tf.einsum("bhwc,dc->bhwd", ycc_rec, tf.constant(_YCC_TO_RGB, tf.float32))
        bits = rate_bits(fq_y) + tf.reduce_sum(tf.split(rate_bits(fq_c), 2), axis=0)

    out = tf.clip_by_value(out, 0.0, 255.0) / 255.0
    if not return_rate:
        return out
    return out, bits / tf.cast(h * w, tf.float32)


def compare_with_real(images_uint8, qualities):
    """Mean PSNR (dB) between the simulation and the real JPEG, per quality -> {q: dB}.

    `images_uint8`: one uint8 [H, W, C] array, a [N, H, W, C] array or a list of arrays
    (sizes may differ). The real codec is tfcomp.codecs.graph_jpeg.jpeg_roundtrip; the
    simulation's output is compared unrounded on the 0..255 scale.
    """
    from ..codecs.graph_jpeg import jpeg_roundtrip

    if isinstance(images_uint8, np.ndarray) and images_uint8.ndim == 3:
        images_uint8 = [images_uint8]
    images = [np.asarray(im, np.uint8) for im in images_uint8]
    results = {}
    for q in qualities:
        values = []
        for im in images:
            real = jpeg_roundtrip(im, int(q)).numpy()
            sim = jpeg_simulate(im[None].astype(np.float32) / 255.0, int(q))[0].numpy()
            values.append(psnr(sim * 255.0, real))
        results[q] = float(np.mean(values))
    return results
