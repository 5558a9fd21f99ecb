"""The resource budget: one pixel limit that every image decode and encode consults.

Every reader of an untrusted size (the image reader, each codec's decoder and encoder, the
container parsers and the server) calls :func:`check_pixels` with the width and height it is
about to allocate for, *before* allocating anything. The limit is process-wide:
:data:`DEFAULT_MAX_PIXELS` (64 Mi pixels = 8192 x 8192) unless raised or lowered with
:func:`set_max_pixels` (the CLI's ``--max-pixels``) or temporarily with :func:`pixel_budget`.

Besides the budget, a container whose header states a size must hold enough bytes to fill
it: :func:`check_fill` compares the stream's length with a lower bound the format implies
(e.g. a JPEG's Huffman-coded blocks need at least two bits each), so a tiny forged file is
refused without decoding. :func:`jpeg_frame` and :func:`bpg_size` read those sizes from the
headers without decoding.
"""

import contextlib
import struct
import threading

from .errors import BitstreamError, InputError

__all__ = ["DEFAULT_MAX_PIXELS", "max_pixels", "set_max_pixels", "pixel_budget", "check_pixels",
           "check_fill", "jpeg_frame", "jpeg_min_bytes", "read_ue7", "bpg_size", "image_size"]

#: The default budget: 64 Mi pixels (8192 x 8192 = 67,108,864), about 200 MB as 8-bit RGB.
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024

_lock = threading.Lock()
_budget = DEFAULT_MAX_PIXELS


def max_pixels():
    """The current pixel budget (width * height of the largest image decoded or encoded)."""
    return _budget


def set_max_pixels(value):
    """Sets the process-wide pixel budget; returns the previous one. None restores the default."""
    global _budget
    if value is None:
        value = DEFAULT_MAX_PIXELS
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"--max-pixels must be a positive integer, got {value!r}")
    with _lock:
        previous, _budget = _budget, value
    return previous


@contextlib.contextmanager
def pixel_budget(value):
    """``with pixel_budget(n):`` runs a block under the budget ``n`` (then restores the old one)."""
    previous = set_max_pixels(value)
    try:
        yield value
    finally:
        set_max_pixels(previous)


def check_pixels(width, height, what, error=InputError, cap=None, cap_reason=""):
    """Raises ``error`` unless a ``width`` x ``height`` image fits the budget; returns w * h.

    ``what`` starts the message (e.g. ``"x.png: image is too large"``).
    ``cap``: a lower ceiling of the caller's own (e.g. a network that runs on the whole
    image), named by ``cap_reason`` in the message; the budget applies in any case.
    """
    width, height = int(width), int(height)
    if width < 1 or height < 1:
        raise error(f"{what}: image has zero size ({width}x{height})")
    pixels = width * height
    budget = max_pixels()
    if pixels > budget:
        raise error(f"{what}: {width}x{height} = {pixels} pixels is over the pixel budget of "
                    f"{budget} (raise it with --max-pixels)")
    if cap is not None and pixels > cap:
        raise error(f"{what}: {width}x{height} = {pixels} pixels is over the limit of {cap} "
                    f"pixels{' of ' + cap_reason if cap_reason else ''}")
    return pixels


def check_fill(nbytes, needed, what, width, height):
    """BitstreamError when ``nbytes`` of stream cannot fill the claimed size (``needed`` bytes)."""
    if nbytes < needed:
        raise BitstreamError(f"{what}: header claims {width}x{height} but the stream has only "
                             f"{nbytes} bytes (the format needs at least {needed})")


# -- JPEG ---------------------------------------------------------------------------------------
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_HUFFMAN_SEQUENTIAL = frozenset({0xC0, 0xC1})
_HUFFMAN_LOSSLESS = frozenset({0xC3})


def jpeg_frame(data):
    """The frame header of a JPEG: {"marker", "width", "height", "components": [(h, v)], "offset"}.

    Walks the marker segments from SOI to the first SOFn without decoding anything; returns
    None when ``data`` is not a JPEG or ends before its frame header.
    """
    data = memoryview(data)
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:  # standalone markers
            pos += 2
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0]
        if length < 2:
            return None
        if marker in _SOF_MARKERS:
            if pos + 2 + length > len(data) or length < 8:
                return None
            _, height, width, count = struct.unpack_from(">BHHB", data, pos + 4)
            if length < 8 + 3 * count:
                return None
            comps = [(data[pos + 10 + 3 * i + 1] >> 4, data[pos + 10 + 3 * i + 1] & 15)
                     for i in range(count)]
            return {"marker": marker, "width": width, "height": height, "components": comps,
                    "offset": pos + 2 + length}
        if marker in (0xD9, 0xDA):  # EOI or a scan before any frame header
            return None
        pos += 2 + length
    return None


def jpeg_min_bytes(frame):
    """A lower bound on the entropy-coded bytes a JPEG frame needs (0 when none is known).

    Sequential Huffman (SOF0/SOF1): every 8x8 block of a component needs a DC code and an
    end-of-block code, at least one bit each; the bound takes the component with the fewest
    blocks. Lossless Huffman (SOF3): at least one bit per sample. Progressive and
    arithmetic-coded frames can code runs of blocks in a few bits: no bound.
    """
    w, h, comps = frame["width"], frame["height"], frame["components"]
    if not comps or w == 0 or h == 0:
        return 0
    hmax = max(c[0] for c in comps) or 1
    vmax = max(c[1] for c in comps) or 1
    sizes = [(-(-w * max(c[0], 1) // hmax), -(-h * max(c[1], 1) // vmax)) for c in comps]
    if frame["marker"] in _HUFFMAN_SEQUENTIAL:
        blocks = min(-(-cw // 8) * -(-ch // 8) for cw, ch in sizes)
        return blocks * 2 // 8
    if frame["marker"] in _HUFFMAN_LOSSLESS:
        return min(cw * ch for cw, ch in sizes) // 8
    return 0


# -- BPG ----------------------------------------------------------------------------------------
def read_ue7(data, pos):
    """One ue7 integer of a BPG header at ``pos`` -> (value, next position); None if malformed
    (the decoder then reports it)."""
    value = 0
    for i in range(5):
        if pos + i >= len(data):
            return None
        b = data[pos + i]
        if i == 0 and b == 0x80:
            return None
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            return (value, pos + i + 1) if value < 1 << 30 else None  # libbpg's cap
    return None


def bpg_size(data):
    """(width, height) from a BPG file's header, or None if it does not parse that far."""
    if len(data) < 7 or bytes(data[:4]) != b"BPG\xfb":
        return None
    width = read_ue7(data, 6)
    if width is None:
        return None
    height = read_ue7(data, width[1])
    if height is None:
        return None
    return width[0], height[0]


# -- any of them --------------------------------------------------------------------------------
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_size(data):
    """(width, height) from the header of PNG, JPEG or BPG bytes; None for anything else."""
    data = bytes(data[:1 << 20]) if len(data) > 1 << 20 else bytes(data)
    if data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    frame = jpeg_frame(data)
    if frame is not None:
        return frame["width"], frame["height"]
    return bpg_size(data)
