"""The resource budget (tfcomp.limits): forged headers and decompression bombs are refused fast
and with little memory, --max-pixels moves the limit, and the small CLI contracts of issue 19
(broken pipe, mixed datasets in plot, evaluate on an empty folder)."""

import io
import json
import os
import resource
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from tfcomp import limits
from tfcomp.cli import main
from tfcomp.codecs import bpg, get_codec
from tfcomp.errors import BitstreamError, InputError
from tfcomp.imageio import image_from_bytes, read_image

from imagegen import natural_rgb

#: Address-space limit of the subprocesses that decode forged files (TensorFlow alone maps
#: about 2 GB; the forged files of issue 19 went past 8 GB).
MEMORY_LIMIT = 4 << 30


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_limited(*argv, seconds=120):
    """`python -m tfcomp ARGV` with RLIMIT_AS = MEMORY_LIMIT; (exit code, stderr, seconds)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tfcomp", *map(str, argv)], env=env,
                          preexec_fn=limit, capture_output=True, text=True, timeout=seconds)
    return proc.returncode, proc.stderr, time.monotonic() - start


def one_error_line(stderr, *fragments):
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# -- forged files ---------------------------------------------------------------------------------
def forged_jpeg(width=12000, height=12000):
    """A small real JPEG whose SOF0 claims width x height."""
    buf = io.BytesIO()
    Image.fromarray(natural_rgb(16, 16)).save(buf, "JPEG", quality=75)
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def png_bomb(width=9000, height=9000):
    """A 1-bit gray PNG of width x height: a few KB of zlib'd zero rows."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    row = b"\x00" * (1 + -(-width // 8))
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def test_jpeg_frame_header_is_read_without_decoding():
    data = forged_jpeg(300, 200)
    frame = limits.jpeg_frame(data)
    assert (frame["marker"], frame["width"], frame["height"]) == (0xC0, 300, 200)
    assert frame["components"] == [(2, 2), (1, 1), (1, 1)]
    # 4:2:0: the chroma planes have 19 x 13 blocks, two bits each at least
    assert limits.jpeg_min_bytes(frame) == 19 * 13 * 2 // 8
    assert limits.image_size(data) == (300, 200)
    assert limits.jpeg_frame(b"\xff\xd8\xff\xd9") is None and limits.jpeg_frame(b"GIF89a") is None


def test_forged_jpeg_refused_by_jpeg_decode_and_reader(tmp_path):
    data = forged_jpeg()
    with pytest.raises(BitstreamError, match="12000x12000.*pixel budget"):
        get_codec("jpeg").decode(data)
    path = tmp_path / "forged.jpg"
    path.write_bytes(data)
    with pytest.raises(InputError, match="too large"):
        read_image(path)
    # Raised over the budget, the file still cannot fill 12000 x 12000 blocks.
    with limits.pixel_budget(200_000_000):
        with pytest.raises(BitstreamError, match="only .* bytes"):
            get_codec("jpeg").decode(data)
        with pytest.raises(InputError, match="only .* bytes"):
            read_image(path)
        with pytest.raises(InputError, match="only .* bytes"):
            image_from_bytes(data)


def test_forged_jpeg_refused_by_hiding_decompress_fast_and_small(tmp_path):
    path = tmp_path / "forged.jpg"
    path.write_bytes(forged_jpeg())
    out = tmp_path / "out.png"
    code, err, seconds = run_limited("decompress", path, "-o", out, "--codec", "hiding-jpeg")
    assert code == 1 and not out.exists()
    one_error_line(err, "tfcomp decompress: error:", "12000x12000")
    assert seconds < 60


def test_forged_bpg_size_refused_before_decoding():
    data = bpg.encode(natural_rgb(16, 16), 40)
    assert limits.bpg_size(data) == (16, 16)
    forged = data[:6] + b"\x81\xdd\x60" + b"\x81\xdd\x60" + data[8:]  # 28384 x 28384
    assert limits.bpg_size(forged) == (28384, 28384)
    with pytest.raises(BitstreamError, match="pixel budget"):
        bpg.decode(forged)
    with limits.pixel_budget(255):
        with pytest.raises(BitstreamError, match="16x16 = 256 pixels"):
            bpg.decode(data)


def test_forged_bpg_within_budget_fails_cleanly_in_bounded_memory(tmp_path):
    data = bpg.encode(natural_rgb(16, 16), 40)
    path = tmp_path / "forged.bpg"
    path.write_bytes(data[:6] + b"\xbe\x40" + b"\xbe\x40" + data[8:])  # 8000 x 8000
    code, err, seconds = run_limited("decompress", path, "-o", tmp_path / "o.png")
    assert code == 1 and not (tmp_path / "o.png").exists()
    one_error_line(err, "tfcomp decompress: error: bpg")
    assert seconds < 60


@pytest.mark.parametrize("codec", ["jpeg2000", "hiding-jpeg", "hiding-bpg"])
def test_png_bomb_refused_by_compress(tmp_path, codec):
    bomb = png_bomb()
    assert len(bomb) < 20000
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    out = tmp_path / "out.bin"
    code, err, seconds = run_limited("compress", path, "-o", out, "--codec", codec)
    assert code == 1 and not out.exists()
    one_error_line(err, "tfcomp compress: error:", "too large", "9000x9000")
    assert seconds < 60


def test_max_pixels_moves_the_limit(capsys, tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(natural_rgb(40, 50)).save(src)
    out = tmp_path / "o.bpg"
    code, _, err = run(capsys, "compress", src, "-o", out, "--codec", "bpg", "--max-pixels", 1999)
    assert code == 1 and "40x50" not in err and "50x40 = 2000 pixels" in err
    assert not out.exists()
    code, _, _ = run(capsys, "compress", src, "-o", out, "--codec", "bpg", "--max-pixels", 2000)
    assert code == 0 and out.exists()
    png = tmp_path / "o.png"
    code, _, err = run(capsys, "decompress", out, "-o", png, "--max-pixels", 1000)
    assert code == 1 and "pixel budget of 1000" in err and not png.exists()
    code, _, _ = run(capsys, "decompress", out, "-o", png)
    assert code == 0 and png.exists()
    # raised over the default, a 12000x12000 JPEG header passes the budget (and is then refused
    # for being far too short for that size)
    forged = tmp_path / "forged.jpg"
    forged.write_bytes(forged_jpeg())
    code, _, err = run(capsys, "decompress", forged, "-o", png)
    assert code == 1 and "pixel budget" in err
    code, _, err = run(capsys, "decompress", forged, "-o", png, "--max-pixels", 200_000_000)
    assert code == 1 and "pixel budget" not in err and "only" in err
    # the budget of one command does not stay behind
    assert limits.max_pixels() == limits.DEFAULT_MAX_PIXELS
    code, _, err = run(capsys, "compress", src, "-o", out, "--codec", "bpg", "--max-pixels", 0)
    assert code == 1 and "positive" in err


def test_codec_encode_checks_the_budget():
    with limits.pixel_budget(100):
        for name in ("jpeg", "webp", "bpg"):
            with pytest.raises(InputError, match="pixel budget of 100"):
                get_codec(name).encode(natural_rgb(11, 10))


# -- the small ones ----------------------------------------------------------------------------
def test_closed_stdout_exits_quietly():
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "tfcomp", "codecs", "--json"], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert proc.returncode == 0 and proc.stderr == ""


def _result(codec, data, names):
    images = [{"name": n, "bpp": 1.0, "psnr": 30.0, "ms_ssim": None} for n in names]
    return {"codec": codec, "data": data, "options": {}, "points": [
        {"quality": q, "bpp": b, "psnr": p, "ms_ssim": None, "ms_ssim_db": None,
         "images": images} for q, b, p in ((10, 0.3, 28.0), (50, 0.9, 33.0), (90, 2.5, 40.0))]}


def test_plot_refuses_results_from_different_datasets(capsys, tmp_path):
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps(_result("jpeg", "data/set14", ["baboon", "lenna"])))
    b.write_text(json.dumps(_result("bpg", "data/set5", ["bird", "butterfly"])))
    c.write_text(json.dumps(_result("bpg", "/elsewhere/set14/", ["baboon", "lenna"])))
    out = tmp_path / "rd.png"
    code, _, err = run(capsys, "plot", a, b, "-o", out)
    assert code == 1 and "different datasets" in err and "set5" in err and not out.exists()
    code, _, err = run(capsys, "report", a, b)
    assert code == 1 and "different datasets" in err
    code, stdout, err = run(capsys, "plot", a, b, "-o", out, "--allow-mixed-data")
    assert code == 0 and out.exists() and "warning" in err and "BD-rate" in stdout
    out.unlink()
    code, _, err = run(capsys, "plot", a, c, "-o", out)  # same images, another path
    assert code == 0 and out.exists() and err == ""


def test_evaluate_empty_folder_is_the_first_error(capsys, tmp_path, monkeypatch):
    import tfcomp.models as models

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the images were listed")

    monkeypatch.setattr(models, "load_model", no_model)
    empty = tmp_path / "empty"
    empty.mkdir()
    for what in (["--codec", "jpeg"], ["--restorer", "restorer-blind"]):
        code, _, err = run(capsys, "evaluate", *what, "--data", empty, "--json",
                           tmp_path / "r.json", "--no-progress")
        assert code == 1 and "no images" in err and "TypeError" not in err, err
    from tfcomp.evaluate import evaluate_codec, evaluate_restorer
    with pytest.raises(InputError, match="no images"):
        evaluate_restorer("restorer-blind", [])
    with pytest.raises(InputError, match="no images"):
        evaluate_codec("jpeg", [])


# -- learned-codec containers ------------------------------------------------------------------
REGRESSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                           "py_fuzz_regressions")


def test_forged_cwic_header_refused_fast_and_small(tmp_path):
    # 27 bytes of a 16x24 image's streams under a header claiming 4096 x 4096 (issue 19:
    # past 8 GB); the range decoder would read zeros past the end and "decode" it.
    out = tmp_path / "out.png"
    code, err, seconds = run_limited(
        "decompress", os.path.join(REGRESSIONS, "cwic", "forged_size_4096x4096.cwic"), "-o", out)
    assert code == 1 and not out.exists()
    one_error_line(err, "tfcomp decompress: error: cwic")
    assert seconds < 90


def test_cwic_reference_decoder_requires_canonical_streams():
    from tfcomp import models
    from tfcomp.cwic.coding import decode_streams, encode_streams
    tables = models.load_extra("cwic-1")
    rng = np.random.default_rng(0)
    q = rng.integers(0, tables.levels, (3, 4))
    bits = rng.integers(0, 2, (3, 4, tables.n)).astype(np.uint8)
    map_stream, bit_stream = encode_streams(bits, q, tables)
    got_bits, got_q = decode_streams(map_stream, bit_stream, 3, 4, tables)
    np.testing.assert_array_equal(got_q, q)
    kept = (np.arange(tables.n) < (q[..., None] + 1) * (tables.n // tables.levels))
    np.testing.assert_array_equal(got_bits * kept, bits * kept)
    with pytest.raises(ValueError, match="corrupted"):
        decode_streams(map_stream + b"\x07", bit_stream, 3, 4, tables)
    # issue 19's file: a 16x24 image's streams claiming 4096 x 4096 (refused after the map)
    from tfcomp.cwic.codec import unpack
    with open(os.path.join(REGRESSIONS, "cwic", "forged_size_4096x4096.cwic"), "rb") as f:
        parts = unpack(f.read())
    start = time.monotonic()
    with pytest.raises(ValueError, match="too short"):
        decode_streams(parts[-2], parts[-1], 512, 512, models.load_extra("cwic-2"))
    assert time.monotonic() - start < 30


def test_forged_jpdse_headers_refused_before_decoding(capsys, tmp_path, monkeypatch):
    from tfcomp.jpdse.semantic import encode_side_info, pack_jpdse

    def no_decode(*args, **kwargs):
        raise AssertionError("the BPG stream was decoded")

    monkeypatch.setattr(bpg, "decode", no_decode)
    path = os.path.join(REGRESSIONS, "jpdse", "header_2048x2048_bpg_16x16.jpdse")
    with open(path, "rb") as f:
        with pytest.raises(BitstreamError, match="BPG stream is 16x16, header says 2048x2048"):
            get_codec("jpdse-bpg").decode(f.read())
    base = b"BPG\xfb" + bytes(40)
    side = encode_side_info(np.zeros((16, 16), np.uint8), scale=16)
    for (h, w), fragment in (((4096, 4096), "of the generator"), ((8192, 8192), "generator")):
        data = pack_jpdse(base, side, h, w, 40, 1)
        with pytest.raises(BitstreamError, match=fragment):
            get_codec("jpdse-bpg").decode(data)
    with limits.pixel_budget(1000):
        with pytest.raises(BitstreamError, match="pixel budget of 1000"):
            get_codec("jpdse-bpg").decode(pack_jpdse(base, side, 40, 40, 40, 1))
