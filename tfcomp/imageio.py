"""Pillow-based image reading and atomic image/byte writing for the CLI and evaluation."""

import glob
import io
import os
import stat
import struct
import tempfile
import warnings
import zlib

import numpy as np
from PIL import Image, ImageOps

from . import limits
from .errors import InputError

__all__ = [
    "DECODE_ERRORS",
    "pillow_allows_budget",
    "pad_to_multiple",
    "READ_MODES",
    "WRITE_FORMATS",
    "read_image",
    "read_image_with_info",
    "image_from_bytes",
    "write_image",
    "write_bytes",
    "to_float",
    "to_uint8",
    "IMAGE_EXTENSIONS",
    "list_images",
]

#: Accepted values of the ``mode`` argument of the readers.
READ_MODES = ("rgb", "gray", "any")

#: File extensions accepted by :func:`write_image` and the Pillow format written for each.
WRITE_FORMATS = {
    ".png": "PNG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".ppm": "PPM",
}

# Pillow's bomb warning (above its own limit, below twice that) is noise here: the budget check
# right after Image.open refuses or accepts those images itself.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# Bytes read to find a JPEG's frame header (its APPn segments come first).
_JPEG_HEADER_BYTES = 1 << 20

# Formats never opened: EPS is rendered by an external Ghostscript process.
_EXCLUDED_FORMATS = frozenset({"EPS"})

# Source modes that "any" returns as HxW.
_SINGLE_CHANNEL_MODES = frozenset({"1", "L", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})

# Exceptions Pillow's plugins and decoders raise on malformed input.
DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    OverflowError,
    ZeroDivisionError,
    NotImplementedError,
    struct.error,
    zlib.error,
)


def _current_umask():
    """Return the process umask (read once at import; os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _name(path):
    """Render a path for a one-line error message (repr() if it holds control characters)."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    text = str(path)
    if not text.isprintable():
        return repr(text)
    return text


def _fspath(path):
    """Return ``os.fspath(path)`` or raise InputError for something that is not a path."""
    try:
        return os.fspath(path)
    except TypeError:
        raise InputError(f"not a file path: {type(path).__name__}") from None


def _check_mode(mode):
    """Validate a read mode and return it lower-cased."""
    if not isinstance(mode, str) or mode.lower() not in READ_MODES:
        raise InputError(f"invalid image mode {mode!r}: expected one of {', '.join(READ_MODES)}")
    return mode.lower()


def _open_formats():
    """Pillow format IDs the readers may open (all registered ones except the excluded ones)."""
    Image.init()
    return [fmt for fmt in Image.ID if fmt not in _EXCLUDED_FORMATS]


# --------------------------------------------------------------------------- decoding


def _composite_on_white(img):
    """Composite an image with an alpha channel onto white; return (uint8 array, is_gray)."""
    if img.mode in ("LA", "La"):
        if img.mode == "La":
            img = img.convert("LA")
        arr = np.array(img, dtype=np.uint8)
        color, alpha, gray = arr[..., :1], arr[..., 1:2], True
    else:
        if img.mode != "RGBA":
            img = img.convert("RGBA")
        arr = np.array(img, dtype=np.uint8)
        color, alpha, gray = arr[..., :3], arr[..., 3:4], False
    c = color.astype(np.uint32)
    a = alpha.astype(np.uint32)
    out = (c * a + 255 * (255 - a) + 127) // 255
    out = out.astype(np.uint8)
    return (out[..., 0] if gray else out), gray


def _scale_to_8bit(arr):
    """Map 16-bit-range samples (clipped to 0..65535) to 0..255 with round(v / 257)."""
    if np.issubdtype(arr.dtype, np.floating):
        v = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=65535.0, neginf=0.0)
        v = np.clip(v, 0.0, 65535.0)
        return np.rint(v / 257.0).astype(np.uint8)
    v = np.clip(arr.astype(np.int64), 0, 65535)
    # 257 is odd, so v / 257 never ends in exactly .5 and this equals round(v / 257).
    return ((v + 128) // 257).astype(np.uint8)


def _natural_array(img):
    """Convert a loaded, upright image to (uint8 array, is_gray): HxW gray or HxWx3 RGB."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return _scale_to_8bit(np.array(img)), True
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        return _composite_on_white(img)
    if "transparency" in img.info and mode in ("P", "L", "RGB"):
        return _composite_on_white(img.convert("LA" if mode == "L" else "RGBA"))
    if mode == "L":
        return np.array(img, dtype=np.uint8), True
    if mode == "1":
        return np.array(img.convert("L"), dtype=np.uint8), True
    if mode == "RGB":
        return np.array(img, dtype=np.uint8), False
    # P, CMYK, YCbCr, LAB, HSV, RGBX and anything else Pillow can convert.
    return np.array(img.convert("RGB"), dtype=np.uint8), False


def _gray_to_rgb(arr):
    """Replicate an HxW array into HxWx3."""
    return np.repeat(arr[:, :, None], 3, axis=2)


def _rgb_to_gray(arr):
    """BT.601 luma of an HxWx3 uint8 array, computed by Pillow's convert("L")."""
    return np.array(Image.fromarray(arr, "RGB").convert("L"), dtype=np.uint8)


def _apply_exif_orientation(img):
    """Rotate/flip the image upright from its EXIF orientation; unreadable EXIF is ignored."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except DECODE_ERRORS:
        pass
    return img


def _check_jpeg_fill(fp, name):
    """InputError when a JPEG file is too short for the blocks its frame header claims."""
    position = fp.tell()
    try:
        fp.seek(0)
        head = fp.read(_JPEG_HEADER_BYTES)
        size = fp.seek(0, io.SEEK_END)
    finally:
        fp.seek(position)
    frame = limits.jpeg_frame(head)
    if frame is None:
        return
    needed = frame["offset"] + limits.jpeg_min_bytes(frame)
    if size < needed:
        raise InputError(f"{name}: JPEG header claims {frame['width']}x{frame['height']} but "
                         f"the file has only {size} bytes (at least {needed} needed)")


def pillow_allows_budget():
    """Raises Pillow's own bomb limit (``Image.MAX_IMAGE_PIXELS``) to the pixel budget when the
    budget is larger, so Image.open does not refuse what the budget allows. It is never
    lowered (other Pillow users in the process keep their limit): the budget itself is checked
    right after Image.open, which reads only the header."""
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limits.max_pixels():
        Image.MAX_IMAGE_PIXELS = limits.max_pixels()


def _over_budget(name):
    """The error for an image Pillow itself finds over the budget (its bomb check)."""
    return InputError(f"{name}: image is too large (over the pixel budget of "
                      f"{limits.max_pixels()}; raise it with --max-pixels)")


def _decode(fp, name, mode):
    """Decode an open binary stream into (uint8 array, info dict); raises InputError."""
    pillow_allows_budget()
    try:
        img = Image.open(fp, formats=_open_formats())
    except Image.DecompressionBombError:
        raise _over_budget(name) from None
    except DECODE_ERRORS:
        raise InputError(f"{name}: not an image Pillow can read") from None
    with img:
        width, height = img.size
        if width <= 0 or height <= 0:
            raise InputError(f"{name}: image has zero size ({width}x{height})")
        # The size comes from the header: refuse before anything is allocated.
        limits.check_pixels(width, height, f"{name}: image is too large")
        info = {"mode": img.mode, "size": (width, height), "format": img.format}
        if img.format == "JPEG":
            _check_jpeg_fill(fp, name)
            tables = getattr(img, "quantization", None) or {}
            if 0 in tables:  # the luma table, for tfcomp.restorer.quality
                info["jpeg_luma_table"] = tuple(int(v) for v in tables[0])
        try:
            img.load()  # force a full decode: truncation is detected here
        except Image.DecompressionBombError:
            raise _over_budget(name) from None
        except MemoryError:
            raise InputError(f"{name}: not enough memory to decode the image") from None
        except DECODE_ERRORS:
            raise InputError(f"{name}: image file is truncated or corrupted") from None
        try:
            _apply_exif_orientation(img)
            arr, is_gray = _natural_array(img)
        except MemoryError:
            raise InputError(f"{name}: not enough memory to decode the image") from None
        except DECODE_ERRORS:
            raise InputError(f"{name}: cannot convert image mode {info['mode']} to 8 bit") from None
        if mode == "rgb":
            if is_gray:
                arr = _gray_to_rgb(arr)
        elif mode == "gray":
            if not is_gray:
                arr = _rgb_to_gray(arr)
        elif info["mode"] not in _SINGLE_CHANNEL_MODES and is_gray:
            arr = _gray_to_rgb(arr)  # "any": e.g. LA is a two-channel source
    return np.ascontiguousarray(arr, dtype=np.uint8), info


def read_image_with_info(path, mode="rgb"):
    """Read an image file like :func:`read_image` and also return an info dict.

    The info dict holds the source's Pillow ``"mode"`` (e.g. ``"RGBA"``, ``"I;16"``),
    its stored ``"size"`` as ``(width, height)`` before EXIF orientation, and its
    Pillow ``"format"`` (e.g. ``"PNG"``); a JPEG's also ``"jpeg_luma_table"``, its 64
    luma quantisation steps in Pillow's order (:mod:`tfcomp.restorer.quality`).
    """
    mode = _check_mode(mode)
    path = _fspath(path)
    name = _name(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except NotADirectoryError:
        raise InputError(f"{name}: no such file (a parent is not a directory)") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot access file: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{name}: is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{name}: not a regular file")
    if st.st_size == 0:
        raise InputError(f"{name}: empty file")
    try:
        fp = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot open file: {exc.strerror or exc}") from None
    with fp:
        return _decode(fp, name, mode)


def read_image(path, mode="rgb"):
    """Read an image file into an upright uint8 numpy array.

    ``mode="rgb"`` returns HxWx3, ``"gray"`` HxW (colour sources are reduced with
    Pillow's BT.601 luma, ``convert("L")``), and ``"any"`` HxW for single-channel
    sources (modes 1, L, I;16*, I, F) and HxWx3 otherwise.

    Conversions: transparency (RGBA, LA, PA, and P/L/RGB with a tRNS colour key) is
    alpha-composited onto white; 16-bit and I/F samples are clipped to 0..65535 and
    mapped to 8 bit with ``round(v / 257)``; 1, P, CMYK, YCbCr, LAB and HSV go through
    Pillow's ``convert``. The EXIF orientation is applied (unreadable EXIF is
    ignored), multi-frame files yield their first frame, and EPS is never opened.

    Every failure (missing file, directory, empty, not an image, truncated or
    corrupted data, more pixels than the budget :func:`tfcomp.limits.max_pixels`, a JPEG
    too short for its frame) raises
    :class:`~tfcomp.errors.InputError` with a one-line message naming the file.
    """
    return read_image_with_info(path, mode)[0]


def image_from_bytes(data, mode="rgb", name="<bytes>"):
    """Decode an in-memory encoded image exactly like :func:`read_image`.

    ``data`` is a bytes-like object; ``name`` is used in error messages.
    """
    mode = _check_mode(mode)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"image data must be bytes-like, not {type(data).__name__}")
    name = _name(name)
    if len(memoryview(data)) == 0:
        raise InputError(f"{name}: empty data")
    return _decode(io.BytesIO(data), name, mode)[0]


# --------------------------------------------------------------------------- writing


def _atomic_write(path, writer):
    """Write a file atomically: temp file in the same directory, fsync, os.replace.

    ``writer(fileobj)`` produces the content. On any failure the temp file is
    removed and the target is left untouched; OS errors become InputError.
    """
    path = _fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    name = _name(path)
    if path == "" or path.endswith(("/", os.sep)):
        raise InputError(f"{name}: not a file name")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(directory):
        raise InputError(f"{name}: directory {_name(directory)} does not exist")
    if not os.path.isdir(directory):
        raise InputError(f"{name}: {_name(directory)} is not a directory")
    if os.path.isdir(path):
        raise InputError(f"{name}: is a directory")
    try:
        fd, tmp = tempfile.mkstemp(
            suffix=".tmp", prefix="." + os.path.basename(path) + ".", dir=directory
        )
    except OSError as exc:
        raise InputError(f"{name}: cannot create a file in {_name(directory)}: "
                         f"{exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fp:
            if hasattr(os, "fchmod"):
                os.fchmod(fp.fileno(), 0o666 & ~_UMASK)  # mkstemp creates 0600
            writer(fp)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise InputError(f"{name}: cannot write file: {exc.strerror or exc}") from None
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Best-effort fsync of a directory so a rename survives a crash (POSIX only)."""
    flags = getattr(os, "O_DIRECTORY", None)
    if flags is None:
        return
    try:
        dfd = os.open(directory, os.O_RDONLY | flags)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def write_image(path, array):
    """Atomically write a uint8 HxW, HxWx1, HxWx3 or HxWx4 array as an image file.

    The format follows the extension: .png, .bmp, .tif/.tiff or .ppm (all lossless;
    PPM cannot hold alpha). Anything else, a non-uint8 array (convert floats with
    :func:`to_uint8`), a bad shape or a missing directory raises InputError.
    No partial or temporary file remains on failure.
    """
    path = _fspath(path)
    name = _name(path)
    ext = os.path.splitext(os.fsdecode(path))[1].lower()
    fmt = WRITE_FORMATS.get(ext)
    if fmt is None:
        allowed = ", ".join(WRITE_FORMATS)
        raise InputError(f"{name}: unsupported image extension {ext or '(none)'!r}; use one of {allowed}")
    if not isinstance(array, np.ndarray):
        raise InputError(f"{name}: image must be a numpy array, not {type(array).__name__}")
    if array.dtype != np.uint8:
        hint = " (convert with tfcomp.imageio.to_uint8)" if np.issubdtype(array.dtype, np.floating) else ""
        raise InputError(f"{name}: image array must be uint8, got {array.dtype}{hint}")
    shape = array.shape
    if array.ndim == 3 and shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise InputError(f"{name}: image array must be HxW, HxWx1, HxWx3 or HxWx4, got shape {shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"{name}: image array is empty (shape {shape})")
    if fmt == "PPM" and array.ndim == 3 and array.shape[2] == 4:
        raise InputError(f"{name}: PPM cannot store an alpha channel; use .png or .tiff")
    img_mode = "L" if array.ndim == 2 else ("RGB" if array.shape[2] == 3 else "RGBA")
    img = Image.fromarray(np.ascontiguousarray(array), img_mode)

    def writer(fp):
        img.save(fp, format=fmt)

    _atomic_write(path, writer)


def write_bytes(path, data):
    """Atomically write raw bytes (e.g. a compressed file); same guarantees as write_image."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, not {type(data).__name__}")

    def writer(fp):
        fp.write(data)

    _atomic_write(path, writer)


def write_json(path, obj):
    """Atomically write `obj` as indented JSON (the layout of every tfcomp result file)."""
    import json
    write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode())


# --------------------------------------------------------------------------- conversions


def to_float(array):
    """Convert a uint8 array to float32 in [0, 1] (v / 255)."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise InputError(f"to_float expects a uint8 array, got {array.dtype}")
    return array.astype(np.float32) / np.float32(255.0)


def to_uint8(array):
    """Convert a float array in [0, 1] to uint8: clip, scale by 255, round half to even.

    NaN maps to 0; a uint8 input is returned as a copy; other dtypes raise InputError.
    """
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array.copy()
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"to_uint8 expects a float array in [0, 1], got {array.dtype}")
    v = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    return np.rint(np.clip(v, 0.0, 1.0) * 255.0).astype(np.uint8)


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def list_images(source):
    """Image paths from a directory (recursive), a glob pattern, or a list of those; sorted."""
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    paths = []
    for src in sources:
        src = os.fspath(src)
        if os.path.isdir(src):
            for root, _, files in os.walk(src):
                paths += [os.path.join(root, f) for f in files
                          if f.lower().endswith(IMAGE_EXTENSIONS)]
        elif os.path.isfile(src):
            paths.append(src)
        else:
            matches = [p for p in glob.glob(src, recursive=True)
                       if os.path.isfile(p) and p.lower().endswith(IMAGE_EXTENSIONS)]
            if not matches:
                raise InputError(f"no images found at {src!r}")
            paths += matches
    paths = sorted(set(paths))
    if not paths:
        raise InputError(f"no images found in {sources}")
    return paths


def pad_to_multiple(image, multiple):
    """Edge-replicates an HxW[xC] array down and right so both sides are multiples of `multiple`."""
    h, w = image.shape[:2]
    return np.pad(image, ((0, -h % multiple), (0, -w % multiple)) + ((0, 0),) * (image.ndim - 2),
                  mode="edge")
