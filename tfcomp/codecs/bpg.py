"""BPG: HEVC intra still images in the BPG 0.9.x format, as a TensorFlow op.

The codec is C (``tfcomp/csrc/bpg``: libx265 to encode, libde265 to decode, following
the reference bpgenc/bpgdec step by step, see the shared ``docs/bpg-format.md``) wrapped
in two TF ops compiled into ``tfcomp/_bpg_ops.so`` (``make``, or
``.venv/bin/python tfcomp/csrc/build.py``).  The library is loaded on first use, so
importing this module does not import TensorFlow.

* :func:`encode` / :func:`decode`: numpy in, bytes out and back (eager).
* :func:`bpg_encode` / :func:`bpg_decode` / :func:`bpg_roundtrip`: graph functions for
  ``tf.function`` and ``tf.data`` (stateless, thread-safe: ``num_parallel_calls`` works;
  no gradient).
* :class:`BpgCodec`: the ``bpg`` entry of the codec registry (quality = QP).

Images: uint8 HxW, HxWx1 (gray: a grayscale BPG, pixel_format 0), HxWx3 (RGB) or HxWx4
(RGBA: alpha is coded as a BPG alpha plane); :func:`decode` returns HxWx1 for gray files
and HxWx3 otherwise (``alpha=True`` adds the alpha channel).  The registry codec takes
and returns 1 or 3 channels like every codec.  Limits: each side at most 65535 and at
most the pixel budget (:func:`tfcomp.limits.max_pixels`, 64 Mi pixels by default) for
encoding and for the sizes a decoded header may claim: :func:`decode` reads the size from
the header and refuses it before the op allocates anything (the op itself caps at 2^28).  ``lossless=True`` is bpgenc's ``-lossless``: RGB
colour space, 4:4:4, 8 bits, bit-exact round trip.  Only the first frame of an animated
BPG is decoded.

Memory: libx265 3.5 (Debian 12) leaks about 0.1 byte per pixel per encoded image inside
``encoder_open`` (43 KB for 768x512); see tfcomp/csrc/README.md.
"""

import os
import re
import threading

import numpy as np

from .. import limits
from ..errors import BitstreamError, InputError, TfcompError
from .base import Codec

__all__ = ["BpgCodec", "encode", "decode", "bpg_encode", "bpg_decode", "bpg_roundtrip",
           "load_ops", "library_present", "LIBRARY_PATH", "MAGIC", "extensions",
           "with_extension", "with_extension_graph"]

#: The compiled op library (built by tfcomp/csrc/build.py).
LIBRARY_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "_bpg_ops.so")
#: First bytes of every BPG file.
MAGIC = b"BPG\xfb"
QP_MIN, QP_MAX, QP_DEFAULT = 0, 51, 30
LEVEL_DEFAULT = 8
CHROMA_FORMATS = ("420", "422", "444")
MAX_SIDE = 65535

_lock = threading.Lock()
_ops = None


def library_present():
    """Whether the compiled op library exists (the codec is usable)."""
    return os.path.isfile(LIBRARY_PATH)


def load_ops():
    """Loads tfcomp/_bpg_ops.so once (thread-safe) and returns the op module."""
    global _ops
    if _ops is None:
        with _lock:
            if _ops is None:
                if not library_present():
                    raise TfcompError(
                        f"the BPG codec is not built ({LIBRARY_PATH} is missing): run `make` "
                        "(or `pip install -e .`, or `.venv/bin/python tfcomp/csrc/build.py`; "
                        "it needs apt-get install libx265-dev libde265-dev pkg-config)")
                import tensorflow as tf
                try:
                    _ops = tf.load_op_library(LIBRARY_PATH)
                except (tf.errors.NotFoundError, OSError) as e:
                    raise TfcompError(
                        f"cannot load {LIBRARY_PATH} ({e}); rebuild it with "
                        "`.venv/bin/python tfcomp/csrc/build.py --force`") from None
    return _ops


def _op_message(error):
    """The op's own message, without TF's "{{function_node ...}}" / "[Op:...]" wrapping."""
    msg = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", str(error.message))
    return re.sub(r"\s*\[Op:\w+\]\s*$", "", msg).strip()


def _check_params(qp, chroma, level, lossless):
    for name, value, lo, hi in (("qp", qp, QP_MIN, QP_MAX), ("level", level, 1, 9)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                or not lo <= value <= hi:
            raise InputError(f"bpg: {name} must be an integer in {lo}..{hi}, got {value!r}")
    if chroma not in CHROMA_FORMATS:
        raise InputError(f"bpg: chroma must be one of {list(CHROMA_FORMATS)}, got {chroma!r}")
    if not isinstance(lossless, (bool, np.bool_)):
        raise InputError(f"bpg: lossless must be a bool, got {lossless!r}")
    return int(qp), str(chroma), int(level), bool(lossless)


def _as_image(image):
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputError(f"bpg: image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"bpg: image must be HxW or HxWxC with C in 1..4, got shape "
                         f"{image.shape}")
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise InputError(f"bpg: image is empty: shape {image.shape}")
    if h > MAX_SIDE or w > MAX_SIDE:
        raise InputError(f"bpg: image {w}x{h} is too large (at most {MAX_SIDE} per side)")
    limits.check_pixels(w, h, "bpg: the image to encode is too large")
    return np.ascontiguousarray(image)


def encode(image, qp=QP_DEFAULT, chroma="420", level=LEVEL_DEFAULT, lossless=False):
    """Encodes a uint8 HxW[xC] image (C = 1, 2, 3 or 4) into the bytes of a .bpg file."""
    qp, chroma, level, lossless = _check_params(qp, chroma, level, lossless)
    image = _as_image(image)
    ops = load_ops()
    import tensorflow as tf
    try:
        out = ops.bpg_encode(image=image, qp=qp, chroma_format=chroma, level=level,
                             lossless=lossless)
    except tf.errors.InvalidArgumentError as e:
        raise InputError(f"bpg: {_op_message(e)}") from None
    except tf.errors.OpError as e:
        raise TfcompError(f"bpg: encoding failed: {_op_message(e)}") from None
    return out.numpy()


def decode(data, alpha=False):
    """Decodes .bpg bytes into uint8 HxWx3 (HxWx1 for a grayscale file).

    With ``alpha=True`` a file with an alpha plane gives HxWx4 (HxWx2), alpha last and
    not premultiplied.  Corrupted, truncated or forged data raises BitstreamError.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError("bpg: decode expects bytes")
    data = bytes(data)
    if not data:
        raise BitstreamError("bpg: empty file")
    size = limits.bpg_size(data)
    if size is not None:  # malformed headers are the op's to report
        limits.check_pixels(*size, "bpg: the file's image is too large", BitstreamError)
    gray = len(data) > 4 and data[:4] == MAGIC and data[4] >> 5 == 0
    channels = 0 if alpha else (1 if gray else 3)
    ops = load_ops()
    import tensorflow as tf
    try:
        image = ops.bpg_decode(contents=data, channels=channels).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.ResourceExhaustedError) as e:
        raise BitstreamError(f"bpg: {_op_message(e)}") from None
    except tf.errors.OpError as e:
        raise TfcompError(f"bpg: decoding failed: {_op_message(e)}") from None
    return np.ascontiguousarray(image)


# -- graph functions ---------------------------------------------------------------------
# -- extension records ------------------------------------------------------------------
# A BPG header may carry (tag, length, bytes) records after picture_data_length: 1 EXIF, 2 ICC,
# 3 XMP, 4 thumbnail, 5 animation; decoders skip the ones they do not use (libbpg reads them
# only when asked, tfcomp's decoder only for animations), so other tags can carry private data.

def _ue7_bytes(value):
    """The ue7 (big-endian base-128) coding of a non-negative int below 2^30."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _read_ue7(data, pos, what):
    got = limits.read_ue7(data, pos)
    if got is None:
        raise BitstreamError(f"bpg: malformed header ({what} at byte {pos})")
    return got


def _record(tag, payload):
    """One extension record: tag ue7, length ue7, the payload."""
    return _ue7_bytes(tag) + _ue7_bytes(len(payload)) + bytes(payload)


def _layout(data):
    """(records, end of the fixed header fields, start and end of the extension data) of a BPG
    file's bytes; start == end without extensions. Raises BitstreamError if malformed."""
    if len(data) < 7 or data[:4] != MAGIC:
        raise BitstreamError("bpg: not a BPG file (magic 42 50 47 FB missing)")
    pos = 6
    for what in ("picture_width", "picture_height", "picture_data_length"):
        pos = _read_ue7(data, pos, what)[1]
    if not data[5] & 0x08:
        return [], pos, pos, pos
    length, start = _read_ue7(data, pos, "extension_data_length")
    end = start + length
    if end > len(data):
        raise BitstreamError(f"bpg: extension data of {length} bytes runs past the end of the "
                             f"file ({len(data)} bytes)")
    records, at = [], start
    while at < end:
        tag, at = _read_ue7(data[:end], at, "extension tag")
        size, at = _read_ue7(data[:end], at, "extension length")
        if at + size > end:
            raise BitstreamError(f"bpg: extension tag {tag} of {size} bytes runs past the "
                                 f"extension data")
        records.append((tag, data[at:at + size]))
        at += size
    return records, pos, start, end


def extensions(data):
    """The extension records of a BPG file as a list of (tag, payload bytes), in file order
    ([] without any). Raises BitstreamError if the header or a record is malformed."""
    return _layout(bytes(data))[0]


def with_extension(data, tag, payload):
    """`data` (a BPG file) with one more extension record (tag, payload) after the ones it
    has; the picture data is unchanged, so every decoder shows the same image."""
    data = bytes(data)
    _, fixed_end, start, end = _layout(data)  # the records it has must parse
    ext = data[start:end] + _record(tag, payload)
    head = bytearray(data[:fixed_end])
    head[5] |= 0x08
    return bytes(head) + _ue7_bytes(len(ext)) + ext + data[end:]


def with_extension_graph(data, tag, payload):
    """:func:`with_extension` as graph ops, for a scalar string tensor holding a file of
    :func:`bpg_encode` (which writes no extensions): byte-identical to the eager function."""
    import tensorflow as tf
    record = _record(tag, payload)
    head = tf.io.decode_raw(tf.strings.substr(data, 0, 24), tf.uint8)
    ends = tf.cast(tf.where(head[6:] < 128)[:, 0], tf.int32)  # the last byte of each ue7
    ok = tf.debugging.Assert(tf.logical_and(
        tf.size(ends) >= 3, tf.bitwise.bitwise_and(head[5], 8) == 0),
        ["bpg: expected an encoder file without extensions"])
    with tf.control_dependencies([ok]):
        pos = 6 + ends[2] + 1
    byte5 = tf.strings.substr(tf.constant(bytes(range(256))),
                              tf.cast(tf.bitwise.bitwise_or(head[5], 8), tf.int32), 1)
    return tf.strings.join([tf.strings.substr(data, 0, 5), byte5,
                            tf.strings.substr(data, 6, pos - 6),
                            _ue7_bytes(len(record)) + record, tf.strings.substr(data, pos, -1)])


def bpg_encode(image, qp=QP_DEFAULT, chroma="420", level=LEVEL_DEFAULT, lossless=False,
               name=None):
    """uint8 [H, W, C] tensor -> scalar tf.string holding a .bpg file (graph op).

    ``qp``, ``level`` (int32), ``chroma`` (string) and ``lossless`` (bool) may be
    tensors.  Errors surface as tf.errors.InvalidArgumentError when the op runs.
    """
    return load_ops().bpg_encode(image=image, qp=qp, chroma_format=chroma, level=level,
                                 lossless=lossless, name=name)


def bpg_decode(contents, channels=3, name=None):
    """Scalar tf.string (.bpg file) -> uint8 [H, W, channels] (graph op).

    channels: 3 RGB (default), 4 RGBA, 1 / 2 gray / gray+alpha (grayscale files only),
    0 = the file's own layout.
    """
    return load_ops().bpg_decode(contents=contents, channels=channels, name=name)


def bpg_roundtrip(image, qp=QP_DEFAULT, chroma="420", level=LEVEL_DEFAULT, lossless=False):
    """Encodes and decodes a uint8 [H, W, C] tensor: returns (decoded, num_bytes).

    ``decoded`` has the input's shape and channel layout; ``num_bytes`` is the int32
    size of the .bpg file (bits per pixel = 8 * num_bytes / (H * W)).
    """
    import tensorflow as tf
    image = tf.convert_to_tensor(image, dtype=tf.uint8)
    data = bpg_encode(image, qp, chroma, level, lossless)
    c = image.shape[-1] if image.shape.rank == 3 else None
    decoded = bpg_decode(data, channels=c if c in (1, 2, 3, 4) else 0)
    decoded = tf.ensure_shape(decoded, image.shape) if image.shape.rank == 3 else decoded
    return decoded, tf.strings.length(data)


# -- registry codec ----------------------------------------------------------------------
class BpgCodec(Codec):
    """BPG through the C op: quality = HEVC QP 0..51 (lower is better), chroma 420 or 444."""

    name = "bpg"
    kind = "classical"
    description = ("BPG (HEVC intra, libx265/libde265 in a TF op), quality = QP 0..51 "
                   "(lower is better), chroma 420 (default) or 444")
    extension = ".bpg"
    quality_min, quality_max, quality_default = QP_MIN, QP_MAX, QP_DEFAULT
    higher_is_better = False
    sweep = (22, 27, 32, 37, 42, 47)
    #: level = bpgenc -m (x265 preset), 1 = fastest .. 9 = slowest; 8 is bpgenc's default.
    options = {"chroma": ("420", "444"), "level": tuple(range(1, 10))}

    @property
    def weights_present(self):
        return library_present()

    def _encode(self, image, quality):
        return encode(image, qp=quality, chroma=self.settings.get("chroma", "420"),
                      level=self.settings.get("level", LEVEL_DEFAULT))

    def _decode(self, data):
        return decode(data)

    def sniff(self, data):
        return bytes(data[:4]) == MAGIC
