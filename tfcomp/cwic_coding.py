"""CWIC entropy coding: channel-causal context tables and range coding of the kept bits.

The kept bits of channel k are coded with a context built only from channels < k (the bit
at the same position in channels k-1 and k-2, the 4-neighbourhood of channel k-1, the
channel group, and whether k is in the last kept group of its position), so a whole channel
decodes in one vectorised step: n sequential steps per image instead of one per bit. The
importance map is coded row by row with a context from the row above. Probabilities are
integer 16-bit CDF tables counted on training images, so encoder and decoder use exactly the
same numbers on any machine. Coding uses tensorflow-compression's range coder.
"""

import numpy as np

__all__ = ["BIT_GROUPS", "num_bit_contexts", "num_map_contexts", "bit_contexts",
           "map_contexts", "ContextTables", "encode_streams", "decode_streams",
           "masked_bits"]

PRECISION = 16
BIT_GROUPS = 8
# (ones, zeros) among the 4 neighbours with ones + zeros <= 4 -> 15 classes.
_PAIR = -np.ones((5, 5), np.int64)
_k = 0
for _o in range(5):
    for _z in range(5 - _o):
        _PAIR[_o, _z] = _k
        _k += 1
NUM_PAIRS = _k  # 15


def num_bit_contexts():
    return BIT_GROUPS * 3 * 3 * NUM_PAIRS * 2


def num_map_contexts(levels):
    return (levels + 1) * (levels + 1)


def _neighbours(plane, fill):
    """The up, down, left and right neighbours of every position ([4, h, w])."""
    p = np.pad(plane, 1, constant_values=fill)
    return np.stack([p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]])


def bit_contexts(bits, kept, k, n, levels):
    """Context index of every position for channel k (int64 [h, w]).

    bits: uint8 [h, w, n] (only channels < k are read); kept: int [h, w] channels kept.
    """
    h, w = kept.shape
    a = bits[:, :, k - 1].astype(np.int64) if k >= 1 else np.full((h, w), 2, np.int64)
    b = np.where(kept > k - 2, bits[:, :, k - 2], 2).astype(np.int64) if k >= 2 \
        else np.full((h, w), 2, np.int64)
    if k >= 1:
        avail = _neighbours(kept > k - 1, False)
        prev = _neighbours(bits[:, :, k - 1].astype(bool), False)
        ones = np.sum(avail & prev, axis=0)
        zeros = np.sum(avail & ~prev, axis=0)
        pair = _PAIR[ones, zeros]
    else:
        pair = np.zeros((h, w), np.int64)
    group = k * BIT_GROUPS // n
    last = (k >= kept - n // levels).astype(np.int64)
    return ((((group * 3 + a) * 3 + b) * NUM_PAIRS + pair) * 2 + last)


def map_contexts(q, row, levels):
    """Context of each position of row `row` of the importance levels q (from the row above)."""
    w = q.shape[1]
    if row == 0:
        up = np.full(w, -1)
        diag = np.full(w, -1)
    else:
        prev = q[row - 1].astype(np.int64)
        up = prev
        padded = np.pad(prev, 1, mode="edge")
        diag = (padded[:-2] + padded[2:] + 1) // 2
    return (up + 1) * (levels + 1) + (diag + 1)


def _cdf_rows(counts):
    """Counts [C, S] -> tfc lookup rows [C, S + 2]: precision, then a strictly rising CDF."""
    counts = np.asarray(counts, np.float64) + 0.5
    total = 1 << PRECISION
    s = counts.shape[1]
    probs = counts / counts.sum(axis=1, keepdims=True)
    # Every symbol keeps at least one unit so that any value stays codable.
    freq = np.maximum(1, np.floor(probs * (total - s)).astype(np.int64))
    freq[np.arange(len(freq)), np.argmax(freq, axis=1)] += total - freq.sum(axis=1)
    cdf = np.concatenate([np.zeros((len(freq), 1), np.int64), np.cumsum(freq, axis=1)], axis=1)
    return np.concatenate([np.full((len(freq), 1), PRECISION), cdf], axis=1).astype(np.int32)


class ContextTables:
    """The integer probability tables of one CWIC model (uniform until fitted)."""

    def __init__(self, n, levels, bit_counts=None, map_counts=None):
        self.n, self.levels = n, levels
        self.bit_counts = np.zeros((num_bit_contexts(), 2)) if bit_counts is None \
            else np.asarray(bit_counts, np.float64)
        self.map_counts = np.zeros((num_map_contexts(levels), levels)) if map_counts is None \
            else np.asarray(map_counts, np.float64)
        self.bit_cdf = _cdf_rows(self.bit_counts)
        self.map_cdf = _cdf_rows(self.map_counts)

    def accumulate(self, bits, q):
        """Adds the statistics of one image's bits [h, w, n] and levels q [h, w]."""
        kept = (q.astype(np.int64) + 1) * (self.n // self.levels)
        for k in range(self.n):
            sel = kept > k
            ctx = bit_contexts(bits, kept, k, self.n, self.levels)[sel]
            np.add.at(self.bit_counts, (ctx, bits[:, :, k][sel].astype(np.int64)), 1)
        for r in range(q.shape[0]):
            np.add.at(self.map_counts, (map_contexts(q, r, self.levels), q[r].astype(np.int64)), 1)
        self.bit_cdf = _cdf_rows(self.bit_counts)
        self.map_cdf = _cdf_rows(self.map_counts)

    def save(self, path):
        np.savez_compressed(path, n=self.n, levels=self.levels, bit_counts=self.bit_counts,
                            map_counts=self.map_counts)

    @classmethod
    def load(cls, path):
        with np.load(path) as z:
            return cls(int(z["n"]), int(z["levels"]), z["bit_counts"], z["map_counts"])


def masked_bits(bits, q, n, levels):
    """The decoder's input: bits [h, w, n] with channels k >= kept(q) zeroed (float32)."""
    kept = (q.astype(np.int64) + 1) * (n // levels)
    return (bits * (np.arange(n) < kept[:, :, None])).astype(np.float32)


def encode_streams(bits, q, tables):
    """Range-codes levels q [h, w] and the kept bits [h, w, n]; returns (map_stream, bit_stream)."""
    import tensorflow_compression as tfc
    n, levels = tables.n, tables.levels
    kept = (q.astype(np.int64) + 1) * (n // levels)
    ctx = np.concatenate([map_contexts(q, r, levels) for r in range(q.shape[0])])
    enc = tfc.create_range_encoder([], tables.map_cdf)
    enc = tfc.entropy_encode_index(enc, ctx.astype(np.int32), q.reshape(-1).astype(np.int32))
    map_stream = tfc.entropy_encode_finalize(enc).numpy()
    idx, val = [], []
    for k in range(n):
        sel = kept > k
        idx.append(bit_contexts(bits, kept, k, n, levels)[sel])
        val.append(bits[:, :, k][sel])
    enc = tfc.create_range_encoder([], tables.bit_cdf)
    enc = tfc.entropy_encode_index(enc, np.concatenate(idx).astype(np.int32),
                                   np.concatenate(val).astype(np.int32))
    return map_stream, tfc.entropy_encode_finalize(enc).numpy()


def decode_streams(map_stream, bit_stream, h, w, tables):
    """Inverse of encode_streams: (bits uint8 [h, w, n], q int [h, w]).

    Raises ValueError if a stream ends early or has bytes left over (corruption).
    """
    import tensorflow as tf
    import tensorflow_compression as tfc
    n, levels = tables.n, tables.levels
    q = np.zeros((h, w), np.int64)
    dec = tfc.create_range_decoder(map_stream, tables.map_cdf)
    for r in range(h):
        dec, row = tfc.entropy_decode_index(dec, map_contexts(q, r, levels).astype(np.int32),
                                            [w], tf.int32)
        q[r] = row.numpy()
    if not bool(tfc.entropy_decode_finalize(dec)):
        raise ValueError("importance-map stream is corrupted")
    kept = (q + 1) * (n // levels)
    bits = np.zeros((h, w, n), np.uint8)
    dec = tfc.create_range_decoder(bit_stream, tables.bit_cdf)
    for k in range(n):
        sel = kept > k
        count = int(sel.sum())
        if count == 0:
            break
        ctx = bit_contexts(bits, kept, k, n, levels)[sel]
        dec, vals = tfc.entropy_decode_index(dec, ctx.astype(np.int32), [count], tf.int32)
        bits[:, :, k][sel] = vals.numpy().astype(np.uint8)
    if not bool(tfc.entropy_decode_finalize(dec)):
        raise ValueError("bit stream is corrupted")
    return bits, q
