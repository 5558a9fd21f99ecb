"""Tests for tfcomp.imageio: decoding, mode conversions, errors and atomic writes."""

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from tfcomp import imageio, limits
from tfcomp.errors import InputError
from tfcomp.imageio import (
    image_from_bytes,
    read_image,
    read_image_with_info,
    to_float,
    to_uint8,
    write_bytes,
    write_image,
)


def _rgb(h=12, w=20, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _smooth_rgb(h=32, w=48):
    y, x = np.mgrid[0:h, 0:w]
    r = x * 255 // (w - 1)
    g = y * 255 // (h - 1)
    b = (x + y) * 255 // (h + w - 2)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def _save(img, path, **kw):
    img.save(path, **kw)
    return path


def _assert_one_line(exc_info, *parts):
    msg = str(exc_info.value)
    assert "\n" not in msg
    for part in parts:
        assert part in msg, (part, msg)


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


# ----------------------------------------------------------------- reading


def test_rgb_round_trip(tmp_path):
    arr = _rgb()
    p = tmp_path / "a.png"
    write_image(p, arr)
    out = read_image(p)
    assert out.dtype == np.uint8 and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable and out.flags.c_contiguous
    np.testing.assert_array_equal(read_image(str(p), mode="any"), arr)
    arr2, info = read_image_with_info(p, "rgb")
    np.testing.assert_array_equal(arr2, arr)
    assert info == {"mode": "RGB", "size": (20, 12), "format": "PNG"}


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".tiff", ".ppm"])
def test_write_formats_round_trip(tmp_path, ext):
    arr = _rgb(seed=1)
    p = tmp_path / ("x" + ext)
    write_image(p, arr)
    np.testing.assert_array_equal(read_image(p), arr)
    gray = arr[..., 0]
    p2 = tmp_path / ("g" + ext)
    write_image(p2, gray[..., None])  # HxWx1
    np.testing.assert_array_equal(read_image(p2, mode="any"), gray)
    np.testing.assert_array_equal(read_image(p2, mode="gray"), gray)


def test_rgba_composited_on_white(tmp_path):
    arr = np.zeros((4, 5, 4), np.uint8)
    arr[..., :3] = (10, 100, 200)
    arr[0, 0, 3] = 0  # fully transparent
    arr[1, 1, 3] = 255  # opaque
    arr[2, 2, 3] = 128
    p = tmp_path / "rgba.png"
    write_image(p, arr)  # HxWx4 written as RGBA
    assert Image.open(p).mode == "RGBA"
    out = read_image(p)
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(out[1, 1], [10, 100, 200])
    expected = [round((c * 128 + 255 * 127) / 255) for c in (10, 100, 200)]
    np.testing.assert_array_equal(out[2, 2], expected)
    assert read_image(p, mode="any").shape == (4, 5, 3)


def test_la_composited_on_white(tmp_path):
    la = np.zeros((3, 4, 2), np.uint8)
    la[..., 0] = 40
    la[0, 0, 1] = 0
    la[1, 1, 1] = 255
    p = _save(Image.fromarray(la, "LA"), tmp_path / "la.png")
    gray = read_image(p, mode="gray")
    assert gray.shape == (3, 4)
    assert gray[0, 0] == 255 and gray[1, 1] == 40
    rgb = read_image(p)
    np.testing.assert_array_equal(rgb[1, 1], [40, 40, 40])


def test_gray_l(tmp_path):
    g = _rgb(seed=2)[..., 1]
    p = _save(Image.fromarray(g, "L"), tmp_path / "l.png")
    np.testing.assert_array_equal(read_image(p, mode="gray"), g)
    np.testing.assert_array_equal(read_image(p, mode="any"), g)
    rgb = read_image(p)
    assert rgb.shape == g.shape + (3,)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], g)


def test_bilevel(tmp_path):
    bits = np.zeros((6, 9), bool)
    bits[::2, ::3] = True
    p = _save(Image.fromarray(bits), tmp_path / "b.png")
    assert Image.open(p).mode == "1"
    out = read_image(p, mode="any")
    assert out.shape == (6, 9)
    np.testing.assert_array_equal(out, np.where(bits, 255, 0))


def _palette_image():
    idx = np.arange(24, dtype=np.uint8).reshape(4, 6) % 4
    img = Image.fromarray(idx, "P")
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 7, 8, 9] + [0] * (256 * 3 - 12))
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [7, 8, 9]], np.uint8)
    return img, idx, colors


def test_palette_without_transparency(tmp_path):
    img, idx, colors = _palette_image()
    p = _save(img, tmp_path / "p.png")
    assert Image.open(p).mode == "P"
    out = read_image(p)
    np.testing.assert_array_equal(out, colors[idx])
    assert read_image(p, mode="any").shape == (4, 6, 3)
    gray = read_image(p, mode="gray")
    np.testing.assert_array_equal(gray, np.array(Image.fromarray(colors[idx]).convert("L")))


@pytest.mark.parametrize("fmt", ["png", "gif"])
def test_palette_with_transparency(tmp_path, fmt):
    img, idx, colors = _palette_image()
    p = _save(img, tmp_path / f"pt.{fmt}", transparency=1)  # index 1 (green) transparent
    reopened = Image.open(p)
    assert reopened.mode == "P" and "transparency" in reopened.info
    out = read_image(p)
    expected = colors[idx].copy()
    expected[idx == 1] = 255
    np.testing.assert_array_equal(out, expected)


def test_rgb_color_key_transparency(tmp_path):
    arr = np.full((2, 3, 3), 50, np.uint8)
    arr[0, 0] = (1, 2, 3)
    p = _save(Image.fromarray(arr), tmp_path / "ck.png", transparency=(1, 2, 3))
    out = read_image(p)
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(out[1, 1], [50, 50, 50])


@pytest.mark.parametrize("pil_mode", ["I;16", "I"])
def test_16bit_gray_png(tmp_path, pil_mode):
    k = np.arange(0, 256, 5, dtype=np.uint32)
    vals = np.concatenate([257 * k, [65535, 0, 128, 129, 257 * 10 + 128, 257 * 10 + 129]])
    arr = vals.reshape(1, -1)
    img = Image.fromarray(arr.astype(np.uint16 if pil_mode == "I;16" else np.int32), pil_mode)
    p = _save(img, tmp_path / "g16.png")
    assert Image.open(p).mode in ("I", "I;16")  # Pillow version dependent
    out = read_image(p, mode="any")
    assert out.shape == arr.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, : len(k)], k)
    np.testing.assert_array_equal(out[0, len(k):], [255, 0, 0, 1, 10, 11])
    np.testing.assert_array_equal(out, np.round(arr / 257).astype(np.uint8))
    assert read_image(p).shape == arr.shape + (3,)


@pytest.mark.parametrize("pil_mode", ["I;16B", "I;16L"])
def test_16bit_endianness_modes(pil_mode):
    vals = np.array([[0, 257, 65535, 257 * 7]], np.uint16)
    raw = vals.astype(">u2" if pil_mode.endswith("B") else "<u2").tobytes()
    img = Image.frombytes(pil_mode, (4, 1), raw)
    np.testing.assert_array_equal(imageio._natural_array(img)[0], [[0, 1, 255, 7]])


def test_int32_and_float_tiff_clipped(tmp_path):
    ints = np.array([[-5, 0, 257, 70000, 65535]], np.int32)
    p = _save(Image.fromarray(ints, "I"), tmp_path / "i.tif")
    np.testing.assert_array_equal(read_image(p, "any"), [[0, 0, 1, 255, 255]])
    floats = np.array([[-1.0, 257.0 * 3, 1e9, np.nan]], np.float32)
    p = _save(Image.fromarray(floats, "F"), tmp_path / "f.tif")
    np.testing.assert_array_equal(read_image(p, "any"), [[0, 3, 255, 0]])


def test_cmyk_jpeg(tmp_path):
    arr = _smooth_rgb()
    p = _save(Image.fromarray(arr).convert("CMYK"), tmp_path / "c.jpg", quality=95)
    assert Image.open(p).mode == "CMYK"
    out = read_image(p)
    assert out.shape == arr.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - arr.astype(int)).mean() < 4


def test_other_color_spaces(tmp_path):
    lab = Image.new("LAB", (3, 2), (255, 128, 128))  # L=100, a=b=0: white
    p = _save(lab, tmp_path / "lab.tif")
    assert Image.open(p).mode == "LAB"
    out = read_image(p)
    assert out.shape == (2, 3, 3) and (out >= 250).all()
    hsv = Image.new("HSV", (3, 2), (0, 255, 255))  # pure red
    np.testing.assert_array_equal(imageio._natural_array(hsv)[0][0, 0], [255, 0, 0])
    ycc = Image.fromarray(_smooth_rgb()).convert("YCbCr")
    out, gray = imageio._natural_array(ycc)
    assert not gray and out.shape == (32, 48, 3)
    assert np.abs(out.astype(int) - _smooth_rgb().astype(int)).max() <= 3


def test_gray_mode_of_color_image_is_bt601(tmp_path):
    arr = _rgb(seed=3)
    p = tmp_path / "c.png"
    write_image(p, arr)
    gray = read_image(p, mode="gray")
    assert gray.shape == arr.shape[:2]
    luma = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
    assert np.abs(gray - luma).max() <= 1.0
    np.testing.assert_array_equal(gray, np.array(Image.fromarray(arr).convert("L")))


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation(tmp_path, orientation):
    h, w = 40, 64
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:16, :16] = (255, 0, 0)  # red block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = _save(Image.fromarray(arr), tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    out = read_image(p)
    assert out.shape == (w, h, 3)
    # 6: rotate 90 degrees clockwise, top-left goes to top-right; 8: counter-clockwise, to bottom-left.
    corner = out[2, -3] if orientation == 6 else out[-3, 2]
    assert corner[0] > 200 and corner[1] < 60 and corner[2] < 60
    assert read_image(p, mode="gray").shape == (w, h)


def test_multiframe_gif_uses_first_frame(tmp_path):
    f1 = Image.new("RGB", (5, 4), (255, 0, 0))
    f2 = Image.new("RGB", (5, 4), (0, 0, 255))
    p = tmp_path / "anim.gif"
    f1.save(p, save_all=True, append_images=[f2])
    assert Image.open(p).n_frames == 2
    out = read_image(p)
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])


def test_multipage_tiff_uses_first_page(tmp_path):
    p = tmp_path / "pages.tif"
    Image.new("L", (3, 3), 10).save(p, save_all=True, append_images=[Image.new("L", (3, 3), 200)])
    np.testing.assert_array_equal(read_image(p, "any"), np.full((3, 3), 10))


def test_image_from_bytes():
    arr = _rgb(seed=4)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    data = buf.getvalue()
    np.testing.assert_array_equal(image_from_bytes(data), arr)
    np.testing.assert_array_equal(image_from_bytes(bytearray(data)), arr)
    np.testing.assert_array_equal(image_from_bytes(memoryview(data)), arr)
    assert image_from_bytes(data, mode="gray").shape == arr.shape[:2]
    with pytest.raises(InputError) as ei:
        image_from_bytes(data[: len(data) // 2], name="request.png")
    _assert_one_line(ei, "request.png", "truncated")
    with pytest.raises(InputError) as ei:
        image_from_bytes(b"")
    _assert_one_line(ei, "<bytes>", "empty")
    with pytest.raises(InputError) as ei:
        image_from_bytes(b"hello world")
    _assert_one_line(ei, "not an image Pillow can read")
    with pytest.raises(TypeError):
        image_from_bytes("not bytes")


def test_invalid_mode(tmp_path):
    p = tmp_path / "a.png"
    write_image(p, _rgb())
    with pytest.raises(InputError):
        read_image(p, mode="rgba")
    assert read_image(p, mode="RGB").shape == (12, 20, 3)


# ----------------------------------------------------------------- read errors


def test_missing_file(tmp_path):
    p = tmp_path / "nope.png"
    with pytest.raises(InputError) as ei:
        read_image(p)
    _assert_one_line(ei, str(p), "no such file")


def test_directory(tmp_path):
    with pytest.raises(InputError) as ei:
        read_image(tmp_path)
    _assert_one_line(ei, str(tmp_path), "directory")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(InputError) as ei:
        read_image(p)
    _assert_one_line(ei, str(p), "empty")


def test_text_file_renamed_png(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("this is not an image\n" * 10)
    with pytest.raises(InputError) as ei:
        read_image(p)
    _assert_one_line(ei, str(p), "not an image Pillow can read")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_fifo_not_opened(tmp_path):
    p = tmp_path / "fifo.png"
    os.mkfifo(p)
    with pytest.raises(InputError) as ei:
        read_image(p)
    _assert_one_line(ei, "not a regular file")


def test_control_characters_in_name_stay_one_line(tmp_path):
    p = tmp_path / "bad\nname.png"
    with pytest.raises(InputError) as ei:
        read_image(p)
    _assert_one_line(ei, "no such file", "\\n")


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("JPEG", "jpg")])
def test_truncated_files(tmp_path, fmt, ext):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64, seed=5)).save(buf, fmt)
    data = buf.getvalue()
    p = tmp_path / f"cut.{ext}"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as ei:
        read_image(p)
    _assert_one_line(ei, str(p), "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupted_png_crc(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_rgb(16, 16, seed=6)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[len(data) // 2] ^= 0xFF  # inside IDAT
    p = tmp_path / "crc.png"
    p.write_bytes(bytes(data))
    with pytest.raises(InputError) as ei:
        read_image(p)
    _assert_one_line(ei, str(p))


def test_huge_header_decompression_bomb(tmp_path):
    p = tmp_path / "huge.png"
    p.write_bytes(_png_header_only(100000, 100000))
    with pytest.raises(InputError) as ei:
        read_image(p)
    _assert_one_line(ei, str(p), "too large")


def test_huge_header_checked_before_decoding(tmp_path, monkeypatch):
    # With Pillow's own bomb check off, the pixel budget must still refuse before any decode.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)

    def no_load(self):
        raise AssertionError("decoded despite the size limit")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_load)
    p = tmp_path / "huge.png"
    p.write_bytes(_png_header_only(100000, 100000))
    with pytest.raises(InputError) as ei:
        read_image(p)
    _assert_one_line(ei, str(p), "too large", "100000x100000")


def test_pixel_budget_applies_to_the_reader(tmp_path):
    p = tmp_path / "a.png"
    write_image(p, _rgb(10, 10))
    with limits.pixel_budget(99):
        with pytest.raises(InputError) as ei:
            read_image(p)
    _assert_one_line(ei, "too large", "10x10", "budget of 99")
    with limits.pixel_budget(100):
        assert read_image(p).shape == (10, 10, 3)


def test_eps_not_opened(tmp_path):
    p = tmp_path / "x.eps"
    p.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(InputError) as ei:
        read_image(p)
    _assert_one_line(ei, "not an image Pillow can read")


# ----------------------------------------------------------------- writing


def test_write_float_array_refused(tmp_path):
    p = tmp_path / "f.png"
    with pytest.raises(InputError) as ei:
        write_image(p, np.zeros((4, 4, 3), np.float32))
    _assert_one_line(ei, str(p), "uint8", "to_uint8")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "arr",
    [
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((4,), np.uint8),
        np.zeros((2, 4, 4, 3), np.uint8),
        np.zeros((0, 4, 3), np.uint8),
        np.zeros((4, 4), np.int64),
        np.zeros((4, 4), bool),
    ],
)
def test_write_bad_arrays_refused(tmp_path, arr):
    with pytest.raises(InputError):
        write_image(tmp_path / "x.png", arr)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["x.jpg", "x.gif", "x.webp", "x"])
def test_write_extension_refused(tmp_path, name):
    with pytest.raises(InputError) as ei:
        write_image(tmp_path / name, _rgb())
    _assert_one_line(ei, "extension")
    assert list(tmp_path.iterdir()) == []


def test_write_ppm_alpha_refused(tmp_path):
    with pytest.raises(InputError):
        write_image(tmp_path / "x.ppm", np.zeros((2, 2, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_write_non_contiguous(tmp_path):
    arr = _rgb(10, 10)[::2, ::-1]
    p = tmp_path / "nc.png"
    write_image(p, arr)
    np.testing.assert_array_equal(read_image(p), arr)


def test_write_missing_parent(tmp_path):
    p = tmp_path / "no" / "such" / "out.png"
    with pytest.raises(InputError) as ei:
        write_image(p, _rgb())
    _assert_one_line(ei, "does not exist")
    with pytest.raises(InputError):
        write_bytes(p, b"abc")
    assert list(tmp_path.iterdir()) == []


def test_write_onto_directory_refused(tmp_path):
    d = tmp_path / "d.png"
    d.mkdir()
    with pytest.raises(InputError):
        write_image(d, _rgb())
    assert list(tmp_path.iterdir()) == [d] and list(d.iterdir()) == []


def test_atomic_write_success_leaves_no_temp(tmp_path):
    p = tmp_path / "out.png"
    write_image(p, _rgb())
    write_image(p, _rgb(seed=9))  # overwrite
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.png"]
    np.testing.assert_array_equal(read_image(p), _rgb(seed=9))
    umask = os.umask(0)
    os.umask(umask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~umask)
    q = tmp_path / "c.bin"
    write_bytes(q, b"\x00\x01compressed")
    write_bytes(q, bytearray(b"xyz"))
    write_bytes(q, memoryview(b"final"))
    assert q.read_bytes() == b"final"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.bin", "out.png"]


def test_atomic_write_failure_in_replace(tmp_path, monkeypatch):
    seen = []

    def failing_replace(src, dst):
        seen.append(os.path.basename(src))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    p = tmp_path / "out.png"
    with pytest.raises(InputError) as ei:
        write_image(p, _rgb())
    _assert_one_line(ei, str(p), "No space left")
    with pytest.raises(InputError):
        write_bytes(tmp_path / "c.bin", b"abc")
    assert list(tmp_path.iterdir()) == []
    assert seen[0].startswith(".out.png") and seen[0].endswith(".tmp")


def test_atomic_write_failure_keeps_old_target(tmp_path, monkeypatch):
    p = tmp_path / "out.png"
    write_image(p, _rgb(seed=1))
    before = p.read_bytes()

    def failing_save(self, fp, format=None, **params):
        fp.write(b"partial")
        raise OSError("encoder exploded")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(InputError):
        write_image(p, _rgb(seed=2))
    assert p.read_bytes() == before
    assert [x.name for x in tmp_path.iterdir()] == ["out.png"]


def test_atomic_write_interrupt_cleans_up_and_propagates(tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_bytes(tmp_path / "c.bin", b"abc")
    assert list(tmp_path.iterdir()) == []


def test_write_bytes_type_checked(tmp_path):
    with pytest.raises(TypeError):
        write_bytes(tmp_path / "c.bin", "text")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- conversions


def test_to_float_to_uint8():
    arr = np.arange(256, dtype=np.uint8).reshape(16, 16)
    f = to_float(arr)
    assert f.dtype == np.float32 and f.min() == 0.0 and f.max() == 1.0
    np.testing.assert_array_equal(to_uint8(f), arr)
    np.testing.assert_array_equal(
        to_uint8(np.array([-0.5, 0.0, 0.5 / 255, 1.4 / 255, 1.6 / 255, 1.0, 2.0, np.nan, np.inf])),
        [0, 0, 0, 1, 2, 255, 255, 0, 255],
    )
    assert to_uint8(arr).dtype == np.uint8
    with pytest.raises(InputError):
        to_float(np.zeros(3, np.float32))
    with pytest.raises(InputError):
        to_uint8(np.zeros(3, np.int32))
