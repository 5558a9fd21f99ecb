"""The C-backed BPG codec (tfcomp/csrc/bpg + the BpgEncode/BpgDecode TF ops).

Round trips, the file format read back by an independent parser, thread safety, tf.data,
hostile files (truncated, bit-flipped, forged sizes, fuzzer findings) and the CLI.
"""

import concurrent.futures
import os

import numpy as np
import pytest
from PIL import Image

from imagegen import natural_gray, natural_rgb
from tfcomp.codecs import bpg, codec_for_bytes, get_codec
from tfcomp.errors import BitstreamError, InputError
from tfcomp.metrics import psnr

REGRESSIONS = os.path.join(os.path.dirname(__file__), "data", "bpg_fuzz_regressions")


@pytest.fixture(scope="module", autouse=True)
def ops():
    """The op library must be built (`make`, or .venv/bin/python tfcomp/csrc/build.py)."""
    return bpg.load_ops()


def colour_blocks(h=40, w=40, seed=2):
    """Saturated 2x2 colour blocks: chroma detail that 4:2:0 throws away."""
    rng = np.random.default_rng(seed)
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]],
                       dtype=np.uint8)
    idx = rng.integers(0, len(palette), size=((h + 1) // 2, (w + 1) // 2))
    return np.repeat(np.repeat(palette[idx], 2, axis=0), 2, axis=1)[:h, :w]


# -- an independent reader of the BPG header (docs/bpg-format.md section 1) ------------------
def parse_header(data):
    assert data[:4] == b"\x42\x50\x47\xfb"
    pos = 6

    def ue7():
        nonlocal pos
        value = 0
        for i in range(5):
            byte = data[pos]
            pos += 1
            assert not (i == 0 and byte == 0x80), "non-canonical ue7"
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                return value
        raise AssertionError("ue7 longer than 5 bytes")

    h = {"pixel_format": data[4] >> 5, "alpha1": (data[4] >> 4) & 1,
         "bit_depth": (data[4] & 15) + 8, "color_space": data[5] >> 4,
         "extension": (data[5] >> 3) & 1, "alpha2": (data[5] >> 2) & 1,
         "limited_range": (data[5] >> 1) & 1, "animation": data[5] & 1}
    h["width"], h["height"], h["picture_data_length"] = ue7(), ue7(), ue7()
    assert not h["extension"]
    headers = []
    for _ in range(2 if h["alpha1"] or h["alpha2"] else 1):
        n = ue7()
        headers.append(bytes(data[pos:pos + n]))
        pos += n
    h["hevc_headers"] = headers
    h["hevc_data"] = bytes(data[pos:])
    return h


def exp_golomb_fields(header_bits):
    """The first fields of a compact hevc_header (5 ue(v), then 4 flags without PCM)."""
    bits = "".join(f"{b:08b}" for b in header_bits)
    pos = 0

    def ue():
        nonlocal pos
        zeros = 0
        while bits[pos] == "0":
            zeros += 1
            pos += 1
        pos += 1
        value = int(bits[pos:pos + zeros] or "0", 2) + (1 << zeros) - 1
        pos += zeros
        return value

    f = {name: ue() for name in ("log2_min_cb_m3", "log2_diff_cb", "log2_min_tb_m2",
                                 "log2_diff_tb", "max_tu_depth")}
    for name in ("sao", "pcm", "strong_intra_smoothing", "extension"):
        f[name] = int(bits[pos])
        pos += 1
    return f


def ue7_bytes(v):
    out = [v & 0x7F]
    v >>= 7
    while v:
        out.insert(0, 0x80 | (v & 0x7F))
        v >>= 7
    return bytes(out)


def replace_size(data, width_bytes, height_bytes):
    """A copy of a valid file with its picture_width/height fields replaced."""
    h = parse_header(data)
    rest = data[6 + len(ue7_bytes(h["width"])) + len(ue7_bytes(h["height"])):]
    return data[:6] + width_bytes + height_bytes + rest


@pytest.fixture(scope="module")
def rgb():
    return natural_rgb()


@pytest.fixture(scope="module")
def encoded(rgb):
    return bpg.encode(rgb, 30)


# -- round trips ----------------------------------------------------------------------------
def test_psnr_rises_as_qp_falls(rgb):
    files = [bpg.encode(rgb, qp) for qp in (42, 32, 22)]
    results = [(len(d), psnr(rgb, bpg.decode(d))) for d in files]
    sizes, psnrs = zip(*results)
    assert sizes[0] < sizes[1] < sizes[2]
    assert psnrs[0] < psnrs[1] < psnrs[2]
    assert psnrs[2] > 36.0 and psnrs[1] > 31.0


def test_444_keeps_chroma_detail_that_420_loses():
    img = colour_blocks()
    p420 = psnr(img, bpg.decode(bpg.encode(img, 24, chroma="420")))
    p444 = psnr(img, bpg.decode(bpg.encode(img, 24, chroma="444")))
    assert p444 > p420 + 3.0
    assert parse_header(bpg.encode(img, 24, chroma="444"))["pixel_format"] == 3


@pytest.mark.parametrize("image", [natural_rgb(33, 41), colour_blocks(21, 19)],
                         ids=["natural", "synthetic"])
def test_lossless_is_bit_exact(image):
    data = bpg.encode(image, lossless=True)
    h = parse_header(data)
    assert (h["pixel_format"], h["color_space"], h["bit_depth"]) == (3, 1, 8)  # 4:4:4, RGB
    np.testing.assert_array_equal(bpg.decode(data), image)


def test_lossless_gray_and_alpha_are_bit_exact():
    gray = natural_gray(19, 23)
    np.testing.assert_array_equal(bpg.decode(bpg.encode(gray, lossless=True))[:, :, 0], gray)
    rgba = np.dstack([natural_rgb(20, 30), natural_gray(20, 30, seed=5)])
    np.testing.assert_array_equal(bpg.decode(bpg.encode(rgba, lossless=True), alpha=True), rgba)


@pytest.mark.parametrize("h,w", [(1, 1), (2, 2), (5, 7), (9, 8), (17, 40), (333, 501)])
def test_sizes(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)),
                    (xx + yy) * 127 // max(w + h - 2, 1)], axis=-1).astype(np.uint8)
    level = 1 if h * w > 10000 else 8
    for chroma in ("420", "444"):
        data = bpg.encode(img, 20, chroma=chroma, level=level)
        hdr = parse_header(data)
        assert (hdr["width"], hdr["height"]) == (w, h)
        out = bpg.decode(data)
        assert out.shape == (h, w, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img).max() <= 24  # 4:4:4 (4:2:0 cannot keep 2x2 colours)
    np.testing.assert_array_equal(bpg.decode(bpg.encode(img, lossless=True)), img)


def test_gray_input_gives_a_grayscale_file():
    gray = natural_gray()
    for image in (gray, gray[:, :, None]):
        data = bpg.encode(image, 25)
        h = parse_header(data)
        assert (h["pixel_format"], h["color_space"], h["alpha1"]) == (0, 0, 0)
        out = bpg.decode(data)
        assert out.shape == gray.shape + (1,)
        assert psnr(gray, out[:, :, 0]) > 38.0
    rgb = bpg.bpg_decode(data, channels=3).numpy()  # the op replicates gray into RGB
    assert rgb.shape == gray.shape + (3,)
    np.testing.assert_array_equal(rgb, np.repeat(out, 3, axis=2))


def test_rgba_codes_alpha_as_an_alpha_plane():
    rgb = natural_rgb(40, 50)
    alpha = np.tile(np.linspace(0, 255, 50).astype(np.uint8), (40, 1))
    data = bpg.encode(np.dstack([rgb, alpha]), 26)
    h = parse_header(data)
    assert (h["alpha1"], h["alpha2"], len(h["hevc_headers"])) == (1, 0, 2)
    assert h["hevc_data"][:2] == b"\x44\x09"  # alpha PPS first, nuh_layer_id 1, no start code
    out = bpg.decode(data)
    assert out.shape == (40, 50, 3) and psnr(rgb, out) > 33.0
    out4 = bpg.decode(data, alpha=True)
    assert out4.shape == (40, 50, 4)
    np.testing.assert_array_equal(out4[:, :, :3], out)
    assert psnr(alpha, out4[:, :, 3]) > 35.0
    assert bpg.decode(bpg.encode(rgb, 26), alpha=True).shape == (40, 50, 3)  # no alpha plane


def test_premultiplied_alpha_and_w_plane_are_decoded_like_bpgdec():
    """Flags our encoder never sets: alpha2 = 1 (premultiplied) and alpha1 = 0 (W plane)."""
    rgb = natural_rgb(24, 32)
    alpha = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (24, 1))
    data = bytearray(bpg.encode(np.dstack([rgb, alpha]), 20))
    decoded = bpg.decode(bytes(data), alpha=True).astype(np.int64)
    colour, a = decoded[:, :, :3], decoded[:, :, 3:]
    premul = bytearray(data)
    premul[5] |= 0x04  # alpha2: the colour planes are premultiplied by alpha
    out = bpg.decode(bytes(premul), alpha=True).astype(np.int64)
    np.testing.assert_array_equal(out[:, :, 3:], a)
    inv = np.where(a > 0, ((255 << 16) + a // 2 + 128) // np.maximum(a, 1), 0)
    expected = np.where(a == 0, 255, np.where(colour >= a, 255, (colour * inv + (1 << 15)) >> 16))
    np.testing.assert_array_equal(out[:, :, :3], expected)
    np.testing.assert_array_equal(bpg.decode(bytes(premul)), colour)  # RGB: as stored
    w_plane = bytearray(data)
    w_plane[4] &= ~0x10
    w_plane[5] |= 0x04  # alpha1 = 0, alpha2 = 1: the extra plane multiplies the colour
    out = bpg.decode(bytes(w_plane), alpha=True)
    assert out.shape == (24, 32, 3)
    np.testing.assert_array_equal(out, (colour * a + 128) >> 8)


def test_registry_codec_takes_1_or_3_channels(rgb, encoded):
    codec = get_codec("bpg")
    assert (codec.name, codec.kind, codec.extension) == ("bpg", "classical", ".bpg")
    assert (codec.quality_min, codec.quality_max, codec.quality_default) == (0, 51, 30)
    assert codec.higher_is_better is False and codec.sweep == (22, 27, 32, 37, 42, 47)
    assert codec.options == {"chroma": ("420", "444"), "level": tuple(range(1, 10))} and codec.weights_present
    assert codec.encode(rgb) == encoded  # quality default = QP 30, chroma 420
    assert codec.sniff(encoded) and not codec.sniff(b"\xff\xd8\xff")
    assert codec_for_bytes(encoded).name == "bpg"
    out = codec.decode(encoded)
    assert out.shape == rgb.shape
    assert parse_header(get_codec("bpg", chroma="444").encode(rgb, 30))["pixel_format"] == 3
    d = codec.describe()
    assert d["weights"] is True and d["quality"] == {"min": 0, "max": 51, "default": 30}
    with pytest.raises(InputError):
        codec.encode(rgb, 52)
    with pytest.raises(InputError):
        get_codec("bpg", chroma="422")


# -- the file format --------------------------------------------------------------------------
def test_header_fields_follow_the_spec():
    img = natural_rgb(70, 200)
    data = bpg.encode(img, 30)
    h = parse_header(data)
    assert data[6:8] == b"\x81\x48" and data[8] == 70  # ue7(200), ue7(70)
    assert h == {**h, "pixel_format": 1, "alpha1": 0, "bit_depth": 8, "color_space": 0,
                 "extension": 0, "alpha2": 0, "limited_range": 0, "animation": 0,
                 "width": 200, "height": 70, "picture_data_length": 0}
    # compact header as x265 writes it (docs: 03 92 47 40): min CB 8, CTB 64, TB 4..32,
    # intra TU depth 2, SAO on, PCM off, strong intra smoothing on, no extension
    assert data[9] == 0 and data[10:14] == b"\x03\x92\x47\x40"
    assert exp_golomb_fields(h["hevc_headers"][0]) == {
        "log2_min_cb_m3": 0, "log2_diff_cb": 3, "log2_min_tb_m2": 0, "log2_diff_tb": 3,
        "max_tu_depth": 2, "sao": 1, "pcm": 0, "strong_intra_smoothing": 1, "extension": 0}
    nal = h["hevc_data"]
    assert (nal[0] >> 1) & 0x3F == 34 and nal[1] == 1  # PPS first, without start code
    assert b"\x00\x00\x01\x40" not in nal and b"\x00\x00\x01\x42" not in nal  # no VPS/SPS
    assert b"\x00\x00\x01\x28\x01" in nal or b"\x00\x00\x01\x26\x01" in nal  # IDR slice
    assert parse_header(bpg.encode(natural_rgb(333, 501), 40, level=1))["width"] == 501


def test_small_pictures_use_a_smaller_ctu():
    """x265 3.x needs one whole CTU: small images use 32 or 16 (a side <= 8: min CB 16)."""
    f32 = exp_golomb_fields(parse_header(bpg.encode(natural_rgb(40, 40), 30))["hevc_headers"][0])
    assert (f32["log2_min_cb_m3"], f32["log2_diff_cb"]) == (0, 2)
    f16 = exp_golomb_fields(parse_header(bpg.encode(natural_rgb(5, 7), 30))["hevc_headers"][0])
    assert (f16["log2_min_cb_m3"], f16["log2_diff_cb"]) == (1, 0)


def test_encoder_options_through_op_attrs(ops):
    """422, MPEG2 chroma siting, 10/12-bit, limited range, other colour spaces, MD5 SEI."""
    img = natural_rgb(32, 40)
    cases = [
        (dict(chroma_format="422"), dict(pixel_format=2)),
        (dict(chroma_format="420", mpeg2_chroma_siting=True), dict(pixel_format=4)),
        (dict(chroma_format="422", mpeg2_chroma_siting=True), dict(pixel_format=5)),
        (dict(chroma_format="420", bit_depth=10), dict(bit_depth=10)),
        (dict(chroma_format="444", bit_depth=12), dict(bit_depth=12, pixel_format=3)),
        (dict(chroma_format="420", limited_range=True), dict(limited_range=1)),
        (dict(chroma_format="420", color_space="ycgco"), dict(color_space=2)),
        (dict(chroma_format="444", color_space="bt709"), dict(color_space=3)),
        (dict(chroma_format="420", color_space="bt2020", hash=True), dict(color_space=4)),
        (dict(chroma_format="420", color_space="rgb"), dict(color_space=1, pixel_format=3)),
    ]
    for kwargs, expected in cases:
        data = ops.bpg_encode(image=img, qp=22, level=1, lossless=False, **kwargs).numpy()
        h = parse_header(data)
        assert {k: h[k] for k in expected} == expected, kwargs
        assert psnr(img, bpg.decode(data)) > 33.0, kwargs
    gray10 = ops.bpg_encode(image=img[:, :, :1], qp=22, chroma_format="420", level=1,
                            lossless=False, bit_depth=10).numpy()
    assert parse_header(gray10)["bit_depth"] == 10
    assert psnr(img[:, :, :1], bpg.decode(gray10)) > 35.0


# -- threads and tf.data ----------------------------------------------------------------------
def test_eight_threads_give_identical_bytes(rgb, encoded):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        files = list(pool.map(lambda _: bpg.encode(rgb, 30), range(8)))
        images = list(pool.map(bpg.decode, files))
    assert all(f == encoded for f in files)
    assert all(np.array_equal(im, images[0]) for im in images)


def test_ops_in_tf_data_parallel_map_and_tf_function():
    import tensorflow as tf
    images = np.stack([natural_rgb(24, 40, seed=s) for s in range(6)])
    ds = tf.data.Dataset.from_tensor_slices(images).map(
        lambda x: bpg.bpg_roundtrip(x, qp=30, level=1), num_parallel_calls=4)
    for (decoded, nbytes), image in zip(ds.as_numpy_iterator(), images):
        data = bpg.encode(image, 30, level=1)
        assert nbytes == len(data)
        np.testing.assert_array_equal(decoded, bpg.decode(data))

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                  tf.TensorSpec([], tf.int32)])
    def roundtrip(image, qp):
        decoded, _ = bpg.bpg_roundtrip(image, qp=qp, chroma="444", level=1)
        return decoded

    out = roundtrip(images[0], tf.constant(20))
    assert out.shape == images[0].shape and psnr(images[0], out.numpy()) > 38.0


# -- hostile input ------------------------------------------------------------------------------
def assert_bitstream_error(data):
    with pytest.raises(BitstreamError):
        bpg.decode(data)


def test_empty_wrong_magic_and_garbage(encoded):
    assert_bitstream_error(b"")
    assert_bitstream_error(b"BPG")
    assert_bitstream_error(b"\x89PNG" + encoded[4:])
    assert_bitstream_error(bytes(range(256)))
    with pytest.raises(InputError):
        bpg.decode("not bytes")


def test_truncated_files_are_rejected(encoded):
    n = len(encoded)
    for cut in list(range(0, 40)) + [n // 4, n // 3, n // 2, 2 * n // 3, 3 * n // 4, n - 9]:
        assert_bitstream_error(encoded[:cut])


def test_bit_flips_never_crash(encoded):
    rng = np.random.default_rng(0)
    header_len = len(encoded) - len(parse_header(encoded)["hevc_data"])
    positions = list(range(header_len * 8)) + list(
        rng.integers(header_len * 8, len(encoded) * 8, 60))
    for bit in positions:
        data = bytearray(encoded)
        data[bit // 8] ^= 0x80 >> (bit % 8)
        try:
            out = bpg.decode(bytes(data))
        except BitstreamError:
            continue
        assert out.ndim == 3 and out.dtype == np.uint8 and out.shape[2] in (1, 3)
    for bit in range(32):  # the magic
        data = bytearray(encoded)
        data[bit // 8] ^= 0x80 >> (bit % 8)
        assert_bitstream_error(bytes(data))


def test_forged_sizes_and_malformed_ue7(encoded):
    for width, height in ((100000, 100000), (65535, 65535), (65536, 1), (0, 10), (10, 0)):
        with pytest.raises(BitstreamError):
            bpg.decode(replace_size(encoded, ue7_bytes(width), ue7_bytes(height)))
    with pytest.raises(BitstreamError, match="pixel budget"):
        bpg.decode(replace_size(encoded, ue7_bytes(100000), ue7_bytes(100000)))
    with pytest.raises(BitstreamError, match="non-canonical"):
        bpg.decode(replace_size(encoded, b"\x80\x40", ue7_bytes(48)))
    with pytest.raises(BitstreamError, match="5 bytes"):
        bpg.decode(replace_size(encoded, b"\x81\x80\x80\x80\x80\x00", ue7_bytes(48)))
    with pytest.raises(BitstreamError, match="5 bytes"):  # 5 bytes but more than 32 bits
        bpg.decode(replace_size(encoded, b"\x9f\xff\xff\xff\x7f", ue7_bytes(48)))
    # a size that disagrees with the coded picture, a bad pixel format / bit depth / length
    assert_bitstream_error(replace_size(encoded, ue7_bytes(4000), ue7_bytes(3000)))
    for offset, value in ((4, 0xC0), (4, 0x27), (5, 0x50), (8, 0x7F)):
        data = bytearray(encoded)
        data[offset] = value
        assert_bitstream_error(bytes(data))


def test_extension_records_leave_the_picture_alone(rgb, encoded):
    """with_extension adds (tag, len, bytes) records after picture_data_length (spec layout,
    checked here by hand); every decoder path shows the same picture; the graph version writes
    the same bytes."""
    import tensorflow as tf
    h = parse_header(encoded)
    lengths = 6 + len(ue7_bytes(h["width"])) + len(ue7_bytes(h["height"])) + 1
    one = bpg.with_extension(encoded, 64, b"tfcomp")
    assert one[5] == encoded[5] | 0x08 and one[:5] == encoded[:5]
    assert one[6:lengths] == encoded[6:lengths]
    assert one[lengths:] == ue7_bytes(8) + b"\x40\x06tfcomp" + encoded[lengths:]
    big = bytes(range(256)) * 2
    two = bpg.with_extension(one, 200, big)
    assert bpg.extensions(encoded) == [] and bpg.extensions(one) == [(64, b"tfcomp")]
    assert bpg.extensions(two) == [(64, b"tfcomp"), (200, big)]
    want = bpg.decode(encoded)
    for data in (one, two):
        np.testing.assert_array_equal(bpg.decode(data), want)
        np.testing.assert_array_equal(get_codec("bpg").decode(data), want)
    graph = tf.function(lambda d: bpg.with_extension_graph(d, 64, b"tfcomp"))
    assert graph(tf.constant(encoded)).numpy() == one
    wide = bpg.encode(natural_rgb(9, 300), 30)  # a two-byte picture_width
    assert graph(tf.constant(wide)).numpy() == bpg.with_extension(wide, 64, b"tfcomp")
    with pytest.raises(tf.errors.InvalidArgumentError, match="without extensions"):
        graph(tf.constant(one))


def test_malformed_extension_records_are_bitstream_errors(encoded):
    one = bpg.with_extension(encoded, 64, b"tfcomp")
    h = parse_header(encoded)
    lengths = 6 + len(ue7_bytes(h["width"])) + len(ue7_bytes(h["height"])) + 1
    for forged in (one[:lengths] + ue7_bytes(1 << 20) + one[lengths + 1:],   # past the end
                   one[:lengths + 2] + b"\x7f" + one[lengths + 3:],          # record too long
                   one[:lengths + 1] + b"\x80" + one[lengths + 2:],          # bad ue7 tag
                   b"BPG\xfb\x00", b"\x89PNG" + one[4:]):
        with pytest.raises(BitstreamError):
            bpg.extensions(forged)
        with pytest.raises(BitstreamError):
            bpg.with_extension(forged, 64, b"x")


def test_op_errors_are_invalid_argument(ops, rgb):
    import tensorflow as tf
    with pytest.raises(tf.errors.InvalidArgumentError, match="magic"):
        bpg.bpg_decode(tf.constant(b"nonsense")).numpy()
    with pytest.raises(tf.errors.InvalidArgumentError, match="qp"):
        ops.bpg_encode(image=rgb, qp=60, chroma_format="420", level=8, lossless=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="chroma_format"):
        ops.bpg_encode(image=rgb, qp=30, chroma_format="411", level=8, lossless=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="channels"):
        ops.bpg_encode(image=np.zeros((4, 4, 5), np.uint8), qp=30, chroma_format="420",
                       level=8, lossless=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="grayscale"):
        ops.bpg_decode(contents=bpg.encode(rgb), channels=1)


def test_python_api_rejects_bad_arguments(rgb):
    for kwargs in (dict(qp=-1), dict(qp=52), dict(qp=True), dict(chroma="411"),
                   dict(level=0), dict(level=10), dict(lossless="yes")):
        with pytest.raises(InputError):
            bpg.encode(rgb, **kwargs)
    for image in (rgb.astype(np.float32), np.zeros((4, 4, 5), np.uint8),
                  np.zeros((0, 4, 3), np.uint8), np.zeros((4,), np.uint8)):
        with pytest.raises(InputError):
            bpg.encode(image)


def test_fuzz_regressions_are_rejected():
    files = sorted(f for f in os.listdir(REGRESSIONS) if f.endswith(".bpg"))
    assert files
    for name in files:
        with open(os.path.join(REGRESSIONS, name), "rb") as f:
            assert_bitstream_error(f.read())


# -- the CLI ------------------------------------------------------------------------------------
def test_cli_compress_decompress(tmp_path, capsys):
    from tfcomp.cli import main
    src, comp, out = tmp_path / "x.png", tmp_path / "x.bpg", tmp_path / "y.png"
    Image.fromarray(natural_rgb(48, 64)).save(src)
    assert main(["compress", str(src), "-o", str(comp), "--codec", "bpg", "--quality", "30"]) == 0
    assert comp.read_bytes()[:4] == bpg.MAGIC
    assert parse_header(comp.read_bytes())["pixel_format"] == 1
    assert main(["decompress", str(comp), "-o", str(out)]) == 0
    with Image.open(out) as im:
        assert im.size == (64, 48) and im.mode == "RGB"
    comp444 = tmp_path / "x444.bpg"
    assert main(["compress", str(src), "-o", str(comp444), "--codec", "bpg", "--quality", "30",
                 "--chroma", "444"]) == 0
    assert parse_header(comp444.read_bytes())["pixel_format"] == 3
    gray_src, gray_out = tmp_path / "g.png", tmp_path / "g_out.png"
    Image.fromarray(natural_gray(30, 20)).save(gray_src)
    assert main(["compress", str(gray_src), "-o", str(comp), "--codec", "bpg"]) == 0
    assert main(["decompress", str(comp), "-o", str(gray_out)]) == 0
    with Image.open(gray_out) as im:
        assert im.size == (20, 30) and im.mode == "L"
    bad, bad_out = tmp_path / "bad.bpg", tmp_path / "bad.png"
    bad.write_bytes(comp444.read_bytes()[:40])
    capsys.readouterr()
    assert main(["decompress", str(bad), "-o", str(bad_out)]) == 1
    assert "error" in capsys.readouterr().err and not bad_out.exists()


def test_level_option_reaches_the_encoder(tmp_path):
    """`--level` changes x265's preset: level 1 and level 8 give different files."""
    from tfcomp.cli import main
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:80]
    img = np.clip(np.stack([128 + 60 * np.sin(x / 6 + c) * np.cos(y / 5) for c in range(3)], -1)
                  + rng.normal(0, 8, (64, 80, 3)), 0, 255).astype(np.uint8)
    fast = get_codec("bpg", level=1).encode(img, 30)
    slow = get_codec("bpg", level=8).encode(img, 30)
    assert fast != slow and get_codec("bpg").encode(img, 30) == slow
    Image.fromarray(img).save(tmp_path / "in.png")
    assert main(["compress", str(tmp_path / "in.png"), "-o", str(tmp_path / "a.bpg"), "--codec",
                 "bpg", "--quality", "30", "--level", "1"]) == 0
    assert (tmp_path / "a.bpg").read_bytes() == fast
