"""A differentiable bits proxy for BPG (HEVC intra), the BPG counterpart of the JPEG
simulation's rate term (tfcomp.hiding.jpeg_sim).

There is no differentiable HEVC here, so the proxy does not simulate the codec: it counts
what any transform coder pays for, the transform coefficients' magnitudes against the
quantiser step. The image goes to YCbCr 4:2:0 (BPG's default), each plane through an
orthonormal 8x8 DCT, and the proxy is the sum over coefficients of log2(1 + |c| / Qstep)
per pixel, with HEVC's step for the QP, Qstep = 2^((QP - 4) / 6) (a step of 1 at QP 4, twice
as large every 6 QP; flat, as BPG's default scaling lists are). Intra prediction, CABAC and
the variable block sizes are not modelled, so the proxy's level is not the file's size; the
training loss uses its *difference* between the image sent and the original, which tracks
how many bytes a hidden pattern adds (tests: it grows with the real file as noise is added,
and its gradient is finite).
"""

import tensorflow as tf

from .jpeg_sim import dct_blocks, rate_bits, rgb_to_ycc

__all__ = ["hevc_qstep", "bpg_rate_proxy"]


def hevc_qstep(qp):
    """HEVC's quantiser step for `qp` (int or int32 tensor, scalar or [B]) -> float32."""
    return tf.pow(2.0, (tf.cast(qp, tf.float32) - 4.0) / 6.0)


def _pad_edge(x, multiple):
    """Replicates the last row and column of [B, H, W, C] up to a multiple of `multiple`."""
    shape = tf.shape(x)
    h, w = shape[1], shape[2]
    rows = tf.minimum(tf.range((h + multiple - 1) // multiple * multiple), h - 1)
    cols = tf.minimum(tf.range((w + multiple - 1) // multiple * multiple), w - 1)
    return tf.gather(tf.gather(x, rows, axis=1), cols, axis=2)


def bpg_rate_proxy(images, qp):
    """Bits proxy per pixel [B] of BPG-coding `images` (float32 [B, H, W, 3] in [0, 1]) at
    HEVC QP `qp` (Python int, int32 scalar or [B]); differentiable in `images`."""
    x = tf.convert_to_tensor(images, tf.float32)
    if x.shape.rank != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be [B, H, W, 3], got shape {x.shape}")
    shape = tf.shape(x)
    b, h, w = shape[0], shape[1], shape[2]
    ycc = _pad_edge(rgb_to_ycc(x * 255.0), 16)
    hp, wp = tf.shape(ycc)[1], tf.shape(ycc)[2]
    luma = ycc[..., 0]
    chroma = tf.nn.avg_pool2d(ycc[..., 1:], 2, 2, "VALID")  # 4:2:0
    chroma = tf.reshape(tf.transpose(chroma, [3, 0, 1, 2]), [2 * b, hp // 2, wp // 2])
    step = tf.broadcast_to(hevc_qstep(qp), [b])
    coeffs_y = dct_blocks(luma) / step[:, None, None, None, None]
    coeffs_c = dct_blocks(chroma) / tf.tile(step, [2])[:, None, None, None, None]
    bits = rate_bits(coeffs_y) + tf.reduce_sum(tf.reshape(rate_bits(coeffs_c), [2, b]), axis=0)
    return bits / tf.cast(h * w, tf.float32)
