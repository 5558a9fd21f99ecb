"""CWIC's context coding in TensorFlow ops: the .cwic streams and file, inside a tf.function.

The same numbers as the numpy reference in tfcomp.cwic.coding (bit for bit: the test suite
compares the streams): the checkerboard bit contexts of channel k from channels k-1 and k-2
and from channel k's anchors, the importance map's contexts from the row above, and
tensorflow-compression's range coder on the integer CDF tables. Encoding knows every bit and
computes all contexts at once; decoding runs a tf.while_loop over the map's rows and one over
the channels (two range-decoding steps per channel). The file header, its CRC-32 and the
model identity are written and checked with string ops, so a SavedModel of a CWIC model
needs nothing but TensorFlow and tensorflow_compression.

Planes are int32 [..., h, w]; a leading axis holds channels when contexts of many channels
are computed together (encoding), none when one channel is decoded.
"""

import zlib

import numpy as np
import tensorflow as tf

from .coding import _PAIR, BIT_GROUPS, NUM_PAIRS, num_bit_contexts

__all__ = ["bit_contexts", "checkerboard_contexts", "map_contexts", "encode_map",
           "decode_map", "encode_bits", "decode_bits", "crc32", "to_bytes", "from_bytes",
           "edge_pad", "require_canonical", "write_file", "read_file", "big_endian", "read_big_endian",
           "analyse", "synthesise"]

_PAIR_FLAT = _PAIR.reshape(-1).astype(np.int32)


def _tfc():
    import tensorflow_compression as tfc
    return tfc


# -- contexts -----------------------------------------------------------------------------
def _neighbour_sum(x):
    """Sum of the up, down, left and right neighbours of every position (zero outside)."""
    rank = len(x.shape)
    p = tf.pad(x, [[0, 0]] * (rank - 2) + [[1, 1], [1, 1]])
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]


def _pair(avail, plane):
    """The (ones, zeros) class of the available 4-neighbours' bits (coding._PAIR)."""
    ones = _neighbour_sum(avail * plane)
    zeros = _neighbour_sum(avail * (1 - plane))
    return tf.gather(tf.constant(_PAIR_FLAT), ones * 5 + zeros)


def bit_contexts(prev1, prev2, kept, k, n, levels):
    """coding.bit_contexts for channel(s) k: prev1, prev2 = the planes of channels k-1, k-2
    (zero where not kept), kept int32 [h, w], k int32 broadcastable against the planes."""
    two = tf.fill(tf.shape(prev1), 2)
    a = tf.where(k >= 1, prev1, two)
    b = tf.where((k >= 2) & (kept > k - 2), prev2, two)
    pair = tf.where(k >= 1, _pair(tf.cast(kept > k - 1, tf.int32), prev1), 0)
    group = k * BIT_GROUPS // n
    last = tf.cast(k >= kept - n // levels, tf.int32)
    return (((group * 3 + a) * 3 + b) * NUM_PAIRS + pair) * 2 + last


def _anchors(h, w):
    """True where i + j is even: the positions of a channel that decode first."""
    return (tf.range(h)[:, None] + tf.range(w)[None, :]) % 2 == 0


def checkerboard_contexts(base, plane, kept, k):
    """coding.contexts("checkerboard", ...): anchors keep `base`, the others add the class of
    their 4 anchor neighbours' bits in `plane` (channel k)."""
    pair = _pair(tf.cast(kept > k, tf.int32), plane)
    h, w = tf.shape(kept)[0], tf.shape(kept)[1]
    return tf.where(_anchors(h, w), base, num_bit_contexts() + base * NUM_PAIRS + pair)


def map_contexts(prev, levels):
    """Contexts of a map row from the row above, `prev` int32 [..., w] (-1 for the first row)."""
    w = tf.shape(prev)[-1]
    j = tf.range(w)
    left = tf.gather(prev, tf.maximum(j - 1, 0), axis=-1)
    right = tf.gather(prev, tf.minimum(j + 1, w - 1), axis=-1)
    diag = tf.math.floordiv(left + right + 1, 2)
    return (prev + 1) * (levels + 1) + (diag + 1)


# -- range coding -------------------------------------------------------------------------
def _encode(cdf, index, value):
    tfc = _tfc()
    enc = tfc.create_range_encoder([], cdf)
    enc = tfc.entropy_encode_index(enc, index, value)
    return tfc.entropy_encode_finalize(enc)


def _check_finalized(dec, what):
    ok = _tfc().entropy_decode_finalize(dec)
    return tf.debugging.Assert(ok, [f"cwic: {what} stream is corrupted"])


def require_canonical(encoded, stream, what):
    """Assert: `stream` is exactly what the encoder writes for the symbols decoded from it."""
    return tf.debugging.Assert(tf.equal(encoded, stream), [
        f"cwic: {what} stream is corrupted (or too short for the image size)"])


def encode_map(q, map_cdf, levels):
    """Importance levels q int32 [h, w] -> the map stream (scalar string)."""
    h, w = tf.shape(q)[0], tf.shape(q)[1]
    prev = tf.concat([tf.fill([1, w], -1), q[:-1]], axis=0)
    return _encode(map_cdf, tf.reshape(map_contexts(prev, levels), [-1]), tf.reshape(q, [-1]))


def decode_map(stream, map_cdf, h, w, levels):
    """Inverse of encode_map: int32 [h, w]; InvalidArgumentError on a corrupted stream."""
    tfc = _tfc()
    dec = tfc.create_range_decoder(stream, map_cdf)

    def row(r, dec, prev, rows):
        dec, values = tfc.entropy_decode_index(dec, map_contexts(prev, levels), [w], tf.int32)
        return r + 1, dec, values, rows.write(r, values)

    rows = tf.TensorArray(tf.int32, size=h, element_shape=[None])
    _, dec, _, rows = tf.while_loop(lambda r, *_: r < h, row,
                                    (0, dec, tf.fill([w], -1), rows))
    with tf.control_dependencies([_check_finalized(dec, "importance-map")]):
        return tf.reshape(rows.stack(), [h, w])


def encode_bits(bits, kept, bit_cdf, n, levels):
    """Kept bits int32 [h, w, n] (any value where not kept) -> the bit stream (scalar string).

    The symbols are ordered as the decoder needs them: channel by channel, anchors first."""
    k = tf.range(n)[:, None, None]
    avail = kept[None] > k                                          # [n, h, w]
    planes = tf.where(avail, tf.transpose(bits, [2, 0, 1]), 0)
    zero = tf.zeros_like(planes[:1])
    prev1 = tf.concat([zero, planes[:-1]], axis=0)
    prev2 = tf.concat([zero, zero, planes[:-2]], axis=0)
    base = bit_contexts(prev1, prev2, kept, k, n, levels)
    ctx = checkerboard_contexts(base, planes, kept, k)
    anchor = _anchors(tf.shape(kept)[0], tf.shape(kept)[1])
    order = tf.stack([avail & anchor, avail & ~anchor], axis=1)    # [n, 2, h, w]
    index = tf.boolean_mask(tf.stack([ctx, ctx], axis=1), order)
    value = tf.boolean_mask(tf.stack([planes, planes], axis=1), order)
    return _encode(bit_cdf, index, value)


def _decode_at(dec, select, ctx):
    """Decodes the positions where `select` holds (row-major) -> (dec, plane of their bits)."""
    where = tf.where(select)
    index = tf.gather_nd(ctx, where)
    dec, values = _tfc().entropy_decode_index(dec, index, tf.shape(index), tf.int32)
    plane = tf.scatter_nd(where, values, tf.shape(select, out_type=tf.int64))
    plane.set_shape(select.shape)
    return dec, plane


def decode_bits(stream, kept, bit_cdf, n, levels):
    """Inverse of encode_bits given kept int32 [h, w]: bits int32 [h, w, n], 0 where not kept."""
    tfc = _tfc()
    h, w = tf.shape(kept)[0], tf.shape(kept)[1]
    anchor = _anchors(h, w)
    channels = tf.reduce_max(kept)  # kept counts are prefixes: no channel after has bits

    def channel(k, dec, prev1, prev2, planes):
        avail = kept > k
        base = bit_contexts(prev1, prev2, kept, k, n, levels)
        dec, first = _decode_at(dec, avail & anchor, base)
        ctx = checkerboard_contexts(base, first, kept, k)
        dec, second = _decode_at(dec, avail & ~anchor, ctx)
        plane = first + second
        return k + 1, dec, plane, prev1, planes.write(k, plane)

    dec = tfc.create_range_decoder(stream, bit_cdf)
    zero = tf.zeros_like(kept)
    planes = tf.TensorArray(tf.int32, size=channels, element_shape=[None, None])
    _, dec, _, _, planes = tf.while_loop(lambda k, *_: k < channels, channel,
                                         (0, dec, zero, zero, planes))
    with tf.control_dependencies([_check_finalized(dec, "bit")]):
        bits = tf.transpose(planes.stack(), [1, 2, 0])
    return tf.pad(bits, [[0, 0], [0, 0], [0, n - channels]])


# -- bytes --------------------------------------------------------------------------------
_BYTE_STRINGS = [bytes([i]) for i in range(256)]


def to_bytes(values):
    """uint8-valued int tensor [m] -> scalar string of those bytes."""
    table = tf.constant(_BYTE_STRINGS)
    return tf.strings.reduce_join(tf.gather(table, tf.cast(values, tf.int32)))


def from_bytes(data):
    """Scalar string -> int32 [len] of its bytes."""
    return tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int32)


def big_endian(value, size):
    """int64 scalar -> int32 [size] bytes, most significant first."""
    shifts = tf.constant([8 * (size - 1 - i) for i in range(size)], tf.int64)
    return tf.cast(tf.bitwise.bitwise_and(tf.bitwise.right_shift(value, shifts), 255), tf.int32)


def read_big_endian(values):
    """int32 [size] bytes -> int64 scalar."""
    size = values.shape[0]
    weights = tf.constant([256 ** (size - 1 - i) for i in range(size)], tf.int64)
    return tf.reduce_sum(tf.cast(values, tf.int64) * weights)


# -- CRC-32 (zlib's) ----------------------------------------------------------------------
_CRC_CHUNK = 512


def _crc_table():
    table = np.arange(256, dtype=np.uint64)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ 0xEDB88320, table >> 1)
    return table.astype(np.int64)


def _zeros_matrix(count):
    """The GF(2) matrix [32, 32] of running the CRC register over `count` zero bytes:
    row i = the register that bit i becomes."""
    table = _crc_table()
    rows = []
    for i in range(32):
        reg = 1 << i
        for _ in range(count):
            reg = (reg >> 8) ^ int(table[reg & 0xFF])
        rows.append([(reg >> j) & 1 for j in range(32)])
    return np.array(rows, np.int64)


def _apply(matrix, reg):
    """The GF(2)-linear map `matrix` applied to an int64 register (scalar)."""
    bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(reg, tf.range(32, dtype=tf.int64)), 1)
    out = tf.math.floormod(tf.linalg.matvec(matrix, bits, transpose_a=True), 2)
    return tf.reduce_sum(tf.bitwise.left_shift(out, tf.range(32, dtype=tf.int64)))


def crc32(data):
    """zlib.crc32 of a scalar string, as int64, in O(sqrt-ish) sequential steps.

    The register update is linear over GF(2): the bytes are split into chunks of 512 whose
    registers (started at 0) run side by side, then folded left to right, each fold moving
    the register over 512 zero bytes with one 32x32 matrix. zlib's initial register
    0xFFFFFFFF equals complementing the first 4 bytes (longer strings), or a constant term
    (shorter ones); leading zero bytes leave a zero register unchanged, so the first chunk
    is zero-filled in front.
    """
    table = tf.constant(_crc_table())
    values = tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int64)
    size = tf.size(values)
    head = tf.cast(tf.range(size) < 4, tf.int64) * tf.cast(size >= 4, tf.int64) * 255
    values = tf.bitwise.bitwise_xor(values, head)
    chunks = -(-size // _CRC_CHUNK)
    values = tf.reshape(tf.concat([tf.zeros([chunks * _CRC_CHUNK - size], tf.int64), values], 0),
                        [chunks, _CRC_CHUNK])

    def byte(i, reg):
        low = tf.bitwise.bitwise_and(tf.bitwise.bitwise_xor(reg, values[:, i]), 255)
        return i + 1, tf.bitwise.bitwise_xor(tf.bitwise.right_shift(reg, 8), tf.gather(table, low))

    _, regs = tf.while_loop(lambda i, _: i < _CRC_CHUNK, byte,
                            (0, tf.zeros([chunks], tf.int64)))
    move = tf.constant(_zeros_matrix(_CRC_CHUNK))

    def fold(j, reg):
        return j + 1, tf.bitwise.bitwise_xor(_apply(move, reg), regs[j])

    _, reg = tf.while_loop(lambda j, _: j < chunks, fold, (0, tf.constant(0, tf.int64)))
    # The initial register's share for strings under 4 bytes: crc32(m zero bytes) ^ ~0.
    short = tf.constant([zlib.crc32(b"\0" * m) ^ 0xFFFFFFFF for m in range(4)] + [0], tf.int64)
    reg = tf.bitwise.bitwise_xor(reg, tf.gather(short, tf.minimum(size, 4)))
    return tf.bitwise.bitwise_xor(reg, 0xFFFFFFFF)


def edge_pad(image, multiple):
    """imageio.pad_to_multiple in TF: edge-replicates [H, W, C] down and right."""
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    rows = tf.minimum(tf.range(h + (-h) % multiple), h - 1)
    cols = tf.minimum(tf.range(w + (-w) % multiple), w - 1)
    return tf.gather(tf.gather(image, rows, axis=0), cols, axis=1)


# -- the .cwic file -----------------------------------------------------------------------
_HEX = [f"{i:02x}" for i in range(256)]


def _hex(values):
    return tf.strings.reduce_join(tf.gather(tf.constant(_HEX), values))


def write_file(rate, model_id, h, w, map_stream, bit_stream):
    """The version-3 .cwic file (tfcomp.cwic.codec's layout) as a scalar string."""
    from .codec import MAGIC, VERSION
    body = tf.strings.join([map_stream, bit_stream])
    fields = tf.concat([big_endian(tf.cast(h, tf.int64), 2), big_endian(tf.cast(w, tf.int64), 2),
                        big_endian(tf.cast(tf.strings.length(map_stream), tf.int64), 4),
                        big_endian(crc32(body), 4)], axis=0)
    return tf.strings.join([tf.constant(MAGIC + bytes([VERSION, rate]) + model_id),
                            to_bytes(fields), body])


def _require(condition, *message):
    return tf.debugging.Assert(condition, list(message), summarize=64)


def read_file(data, rate, model_id):
    """Checks a .cwic file (version 2 or 3) -> (height, width, map stream, bit stream).

    InvalidArgumentError, with the reason, for another format, a wrong model (version 3: the
    model id; version 2: the rate index), a size outside 1..MAX_SIDE, a truncated or
    corrupted body (CRC-32). Every check runs before anything is decoded."""
    from .codec import HEADERS, MAGIC, MAX_SIDE
    short, long = HEADERS[2].size, HEADERS[3].size
    size = tf.strings.length(data)
    with tf.control_dependencies([_require(size >= short, "cwic: file too short for its header"),
                                  _require(tf.strings.substr(data, 0, 4) == MAGIC,
                                           "cwic: not a CWIC file (bad magic)")]):
        head = from_bytes(tf.strings.substr(data, 0, long))
    head = tf.pad(head, [[0, long - tf.size(head)]])
    version, file_rate, file_id = head[4], head[5], head[6:6 + len(model_id)]
    v3 = tf.equal(version, 3)
    header = tf.where(v3, long, short)
    fields = tf.slice(head, [tf.where(v3, long - 12, short - 12)], [12])
    h, w = read_big_endian(fields[0:2]), read_big_endian(fields[2:4])
    map_len, crc = read_big_endian(fields[4:8]), read_big_endian(fields[8:12])
    body_len = tf.cast(tf.maximum(size - header, 0), tf.int64)
    want_id = tf.constant(list(model_id), tf.int32)
    checks = [
        _require(tf.equal(version, 2) | v3, "cwic: unsupported format version", version,
                 "(this tfcomp reads 2 and 3)"),
        _require(size >= header, "cwic: file too short for its header"),
        _require(v3 | tf.equal(file_rate, rate), "cwic: the version-2 file needs rate model",
                 file_rate, "; this model is rate", rate),
        _require(~v3 | tf.reduce_all(tf.equal(file_id, want_id)),
                 "cwic: the file was made by model", _hex(file_id), "; this model is",
                 model_id.hex(), "(decode with the weights that made it)"),
        _require((h >= 1) & (h <= MAX_SIDE) & (w >= 1) & (w <= MAX_SIDE),
                 f"cwic: image size outside 1..{MAX_SIDE}; width, height:", w, h),
        _require(map_len <= body_len, "cwic: truncated file (map stream longer than the file)")]
    with tf.control_dependencies(checks):
        body = tf.strings.substr(data, tf.minimum(header, size), tf.cast(body_len, tf.int32))
    with tf.control_dependencies([_require(tf.equal(crc32(body), crc),
                                           "cwic: corrupted or truncated file (checksum mismatch)")]):
        map_len = tf.cast(tf.minimum(map_len, body_len), tf.int32)
        map_stream = tf.strings.substr(body, 0, map_len)
        bit_stream = tf.strings.substr(body, map_len, tf.cast(body_len, tf.int32) - map_len)
    return tf.cast(h, tf.int32), tf.cast(w, tf.int32), map_stream, bit_stream


# -- the networks, in tiles ---------------------------------------------------------------
def _tile(t, count_x, size_y, size_x, step, margin):
    """Tile t (row-major) of a grid of `step`-sized tiles: (y, y1, x, x1) and the crop with
    its overlaps (cy, cy1, cx, cx1), as tfcomp.cwic.codec._tiles."""
    y, x = (t // count_x) * step, (t % count_x) * step
    return (y, tf.minimum(size_y, y + step), x, tf.minimum(size_x, x + step),
            tf.maximum(0, y - margin), tf.minimum(size_y, y + step + margin),
            tf.maximum(0, x - margin), tf.minimum(size_x, x + step + margin))


def _grid(y, x, h, w):
    """Indices [h, w, 2] of the block of a plane at (y, x)."""
    rows, cols = tf.meshgrid(y + tf.range(h), x + tf.range(w), indexing="ij")
    return tf.stack([rows, cols], axis=-1)


def _over_tiles(size_y, size_x, step, margin, body, state):
    """Runs body(state, *tile) over the tiles; returns the final state."""
    count_x = -(-size_x // step)
    count = (-(-size_y // step)) * count_x

    def loop(t, state):
        return t + 1, body(state, *_tile(t, count_x, size_y, size_x, step, margin))
    return tf.while_loop(lambda t, _: t < count, loop, (0, state))[1]


def analyse(model, image):
    """codec.analyse in the graph: uint8 [H, W, 3] -> (bits int32 [h, w, n], kept int32 [h, w]).

    The same tiles as the numpy path (images over codec.TILE a side run in overlapping
    tiles), so the same bits."""
    from .codec import _ENCODER_MARGIN, TILE
    from .model import kept_channels
    padded = edge_pad(image, 8)
    ph, pw = tf.shape(padded)[0], tf.shape(padded)[1]
    tiled = (ph > TILE) | (pw > TILE)
    step = tf.where(tiled, TILE, tf.maximum(ph, pw))
    margin = tf.where(tiled, _ENCODER_MARGIN, 0)

    def tile(state, y, y1, x, x1, cy, cy1, cx, cx1):
        bits, p = state
        crop = tf.cast(padded[cy:cy1, cx:cx1], tf.float32)[None] / 255.0
        codes, imp = model.encoder(crop)
        oy, ox, th, tw = (y - cy) // 8, (x - cx) // 8, (y1 - y) // 8, (x1 - x) // 8
        where = _grid(y // 8, x // 8, th, tw)
        bits = tf.tensor_scatter_nd_update(
            bits, where, tf.cast(codes[0, oy:oy + th, ox:ox + tw] > 0.5, tf.int32))
        p = tf.tensor_scatter_nd_update(p, where, imp[0, oy:oy + th, ox:ox + tw, 0])
        return bits, p

    bits, p = _over_tiles(ph, pw, step, margin, tile,
                          (tf.zeros([ph // 8, pw // 8, model.n], tf.int32),
                           tf.zeros([ph // 8, pw // 8], tf.float32)))
    kept = tf.cast(kept_channels(p, model.n, model.levels), tf.int32)
    return bits, kept


def synthesise(model, bits, height, width):
    """codec.synthesise in the graph: the kept bits int32 [h, w, n] (0 where not kept) ->
    uint8 [height, width, 3], in the numpy path's tiles."""
    from .codec import _DECODER_MARGIN, TILE
    lh, lw = tf.shape(bits)[0], tf.shape(bits)[1]
    tiled = (height > TILE) | (width > TILE)
    step = tf.where(tiled, TILE // 8, tf.maximum(lh, lw))
    margin = tf.where(tiled, _DECODER_MARGIN, 0)

    def tile(out, y, y1, x, x1, cy, cy1, cx, cx1):
        r = model.decoder(tf.cast(bits[cy:cy1, cx:cx1], tf.float32)[None])[0]
        oh, ow = tf.minimum(height, 8 * y1) - 8 * y, tf.minimum(width, 8 * x1) - 8 * x
        r = r[8 * (y - cy):8 * (y - cy) + oh, 8 * (x - cx):8 * (x - cx) + ow]
        values = tf.cast(tf.clip_by_value(tf.round(r * 255.0), 0.0, 255.0), tf.uint8)
        return tf.tensor_scatter_nd_update(out, _grid(8 * y, 8 * x, oh, ow), values)

    return _over_tiles(lh, lw, step, margin, tile, tf.zeros([height, width, 3], tf.uint8))
