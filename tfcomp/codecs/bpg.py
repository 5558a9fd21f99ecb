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
           "load_ops", "library_present", "LIBRARY_PATH", "MAGIC"]

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
