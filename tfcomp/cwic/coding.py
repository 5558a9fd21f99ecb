"""CWIC entropy coding: context tables (channel-causal, checkerboard in-channel) and range coding.

The kept bits of channel k are coded with a context built from channels < k (the bit at the
same position in channels k-1 and k-2, the 4-neighbourhood of channel k-1, the channel group,
and whether k is in the last kept group of its position) and, in the shipped "checkerboard"
family, from channel k's own bits decoded one step earlier: the positions with i + j even
(anchors) decode first with the channel context alone, then the others with their four anchor
neighbours' bits added. A channel thus decodes in two vectorised steps: 2n sequential steps per
image instead of one per bit. tfcomp.cwic.contexts measures this against a channel-only
context (n steps) and a same-channel up/left context (n (h + w - 1) steps). The importance
map is coded row by row with a context from the row above. Probabilities are integer 16-bit
CDF tables counted on training images, so encoder and decoder use exactly the same numbers on
any machine. Coding uses tensorflow-compression's range coder.

.cwic files are coded by the same contexts in TF ops inside the model's graph
(tfcomp.cwic.graph, CWIC.compress / decompress); this numpy coder is the reference those are
tested against (byte-identical streams) and what table fitting and the context study use.
"""

import numpy as np

__all__ = ["BIT_GROUPS", "FAMILIES", "DEFAULT_FAMILY", "num_bit_contexts", "num_contexts",
           "num_map_contexts", "bit_contexts", "contexts", "decode_steps", "map_contexts",
           "ContextTables", "encode_bits", "decode_bits", "encode_streams", "decode_streams",
           "kept_counts", "masked_bits", "encode_map"]

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
#: Bit-context families (see the module docstring); the .cwic format uses DEFAULT_FAMILY.
FAMILIES = ("group", "channel", "checkerboard", "channel+spatial")
DEFAULT_FAMILY = "checkerboard"


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


def _check(family):
    if family not in FAMILIES:
        raise ValueError(f"unknown context family {family!r}; choose from {FAMILIES}")


def num_contexts(family):
    _check(family)
    return {"group": BIT_GROUPS, "channel": num_bit_contexts(),
            "checkerboard": num_bit_contexts() * (1 + NUM_PAIRS),
            "channel+spatial": num_bit_contexts() * 9}[family]


def _same_channel(family, base, bits, kept, k):
    """Adds channel k's own decoded neighbours to the channel-causal context `base`."""
    cur, avail = bits[:, :, k].astype(np.int64), kept > k
    if family == "checkerboard":
        # Anchors (i + j even) keep the channel context; the others, decoded second, add
        # the (ones, zeros) count of their 4 neighbours, all anchors, in channel k.
        h, w = kept.shape
        anchor = (np.add.outer(np.arange(h), np.arange(w)) % 2) == 0
        nb_avail = _neighbours(avail, False)
        nb_bits = _neighbours(cur.astype(bool), False)
        pair = _PAIR[np.sum(nb_avail & nb_bits, axis=0), np.sum(nb_avail & ~nb_bits, axis=0)]
        return np.where(anchor, base, num_bit_contexts() + base * NUM_PAIRS + pair)
    up = np.full(kept.shape, 2, np.int64)
    up[1:] = np.where(avail[:-1], cur[:-1], 2)
    left = np.full(kept.shape, 2, np.int64)
    left[:, 1:] = np.where(avail[:, :-1], cur[:, :-1], 2)
    return (base * 3 + up) * 3 + left


def contexts(family, bits, kept, k, n, levels, base=None):
    """Context index of every position of channel k (int64 [h, w]); reads only what is decoded
    before that position (channels < k, and channel k's earlier decoding steps).
    `base`: bit_contexts(bits, kept, k, n, levels) if already computed."""
    _check(family)
    if family == "group":
        return np.full(kept.shape, k * BIT_GROUPS // n, np.int64)
    if base is None:
        base = bit_contexts(bits, kept, k, n, levels)
    return base if family == "channel" else _same_channel(family, base, bits, kept, k)


def decode_steps(family, h, w):
    """The groups of positions of one channel that decode together, in decoding order."""
    _check(family)
    diag = np.add.outer(np.arange(h), np.arange(w))
    if family == "checkerboard":
        return [diag % 2 == 0, diag % 2 == 1]
    if family == "channel+spatial":
        return [diag == s for s in range(h + w - 1)]
    return [np.ones((h, w), bool)]


def kept_counts(q, n, levels):
    """Channels kept at each position (int64 [h, w]) for importance levels q."""
    return (np.asarray(q, np.int64) + 1) * (n // levels)


def _symbols(family, bits, q, n, levels):
    """(contexts, values) of every kept bit in decoding order."""
    kept, h, w = kept_counts(q, n, levels), q.shape[0], q.shape[1]
    steps = decode_steps(family, h, w)
    idx, val = [], []
    for k in range(n):
        ctx = contexts(family, bits, kept, k, n, levels)
        for step in steps:
            sel = (kept > k) & step
            idx.append(ctx[sel])
            val.append(bits[:, :, k][sel])
    return np.concatenate(idx), np.concatenate(val).astype(np.int64)


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
    """The integer probability tables of one CWIC model (uniform until fitted).

    `family`: the bit-context family the tables were counted for (DEFAULT_FAMILY in files)."""

    def __init__(self, n, levels, bit_counts=None, map_counts=None, family=DEFAULT_FAMILY):
        _check(family)
        self.n, self.levels, self.family = n, levels, family
        self.bit_counts = np.zeros((num_contexts(family), 2)) if bit_counts is None \
            else np.asarray(bit_counts, np.float64)
        if self.bit_counts.shape != (num_contexts(family), 2):
            raise ValueError(f"bit tables of shape {self.bit_counts.shape} do not fit the "
                             f"{family!r} context family")
        self.map_counts = np.zeros((num_map_contexts(levels), levels)) if map_counts is None \
            else np.asarray(map_counts, np.float64)
        self.bit_cdf = _cdf_rows(self.bit_counts)
        self.map_cdf = _cdf_rows(self.map_counts)

    def accumulate(self, bits, q):
        """Adds the statistics of one image's bits [h, w, n] and levels q [h, w]."""
        idx, val = _symbols(self.family, bits, q, self.n, self.levels)
        np.add.at(self.bit_counts, (idx, val), 1)
        for r in range(q.shape[0]):
            np.add.at(self.map_counts, (map_contexts(q, r, self.levels), q[r].astype(np.int64)), 1)
        self.bit_cdf = _cdf_rows(self.bit_counts)
        self.map_cdf = _cdf_rows(self.map_counts)

    def save(self, path):
        np.savez_compressed(path, n=self.n, levels=self.levels, family=self.family,
                            bit_counts=self.bit_counts, map_counts=self.map_counts)

    @classmethod
    def load(cls, path):
        with np.load(path) as z:
            family = str(z["family"]) if "family" in z.files else "channel"
            return cls(int(z["n"]), int(z["levels"]), z["bit_counts"], z["map_counts"], family)


def masked_bits(bits, q, n, levels):
    """The decoder's input: bits [h, w, n] with channels k >= kept(q) zeroed (float32)."""
    return (bits * (np.arange(n) < kept_counts(q, n, levels)[:, :, None])).astype(np.float32)


def encode_bits(family, bits, q, cdf, n, levels):
    """Range-codes the kept bits under `family` with integer tables `cdf` -> bytes."""
    import tensorflow_compression as tfc
    idx, val = _symbols(family, bits, q, n, levels)
    enc = tfc.create_range_encoder([], cdf)
    enc = tfc.entropy_encode_index(enc, idx.astype(np.int32), val.astype(np.int32))
    return tfc.entropy_encode_finalize(enc).numpy()


def decode_bits(family, stream, q, cdf, n, levels):
    """Inverse of encode_bits given the (already decoded) importance levels q.

    Returns (bits uint8 [h, w, n], number of sequential decoding steps taken)."""
    import tensorflow as tf
    import tensorflow_compression as tfc
    kept, h, w = kept_counts(q, n, levels), q.shape[0], q.shape[1]
    bits = np.zeros((h, w, n), np.uint8)
    dec = tfc.create_range_decoder(stream, cdf)
    taken, steps = 0, decode_steps(family, h, w)
    for k in range(n):
        if not (kept > k).any():
            break  # kept counts are prefixes: no later channel has bits either
        base = None if family == "group" else bit_contexts(bits, kept, k, n, levels)
        for step in steps:
            sel = (kept > k) & step
            m = int(sel.sum())
            if m == 0:
                continue
            ctx = contexts(family, bits, kept, k, n, levels, base)[sel]
            dec, vals = tfc.entropy_decode_index(dec, ctx.astype(np.int32), [m], tf.int32)
            bits[:, :, k][sel] = vals.numpy().astype(np.uint8)
            taken += 1
    if not bool(tfc.entropy_decode_finalize(dec)):
        raise ValueError("bit stream is corrupted")
    return bits, taken


def encode_map(q, tables):
    """Range-codes the importance levels q [h, w] row by row -> bytes."""
    import tensorflow_compression as tfc
    ctx = np.concatenate([map_contexts(q, r, tables.levels) for r in range(q.shape[0])])
    enc = tfc.create_range_encoder([], tables.map_cdf)
    enc = tfc.entropy_encode_index(enc, ctx.astype(np.int32), q.reshape(-1).astype(np.int32))
    return tfc.entropy_encode_finalize(enc).numpy()


def encode_streams(bits, q, tables):
    """Range-codes levels q [h, w] and the kept bits [h, w, n]; returns (map_stream, bit_stream)."""
    return encode_map(q, tables), encode_bits(tables.family, bits, q, tables.bit_cdf, tables.n,
                                              tables.levels)


def decode_streams(map_stream, bit_stream, h, w, tables):
    """Inverse of encode_streams: (bits uint8 [h, w, n], q int [h, w]).

    Raises ValueError if a stream ends early or has bytes left over (corruption). The range
    decoder reads zeros past the end of a stream, so the streams of a small image under a
    header claiming a large one would "decode": each decoded stream must re-encode to exactly
    its bytes (the encoder's output is canonical), checked for the map before any bit is
    decoded. That refuses such forgeries and trailing bytes, but it is not a size bound: a
    stream crafted to end on the low edge of its interval codes any number of further
    lowest symbols (a flat region) for free. Sizes are bounded by the pixel budget, and the
    decode is linear in the size.
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
    if not bool(tfc.entropy_decode_finalize(dec)) or encode_map(q, tables) != bytes(map_stream):
        raise ValueError("importance-map stream is corrupted (or too short for the image size)")
    bits = decode_bits(tables.family, bit_stream, q, tables.bit_cdf, n, levels)[0]
    if encode_bits(tables.family, bits, q, tables.bit_cdf, n, levels) != bytes(bit_stream):
        raise ValueError("bit stream is corrupted (or too short for the image size)")
    return bits, q
