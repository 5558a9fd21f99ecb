"""Tests for the classical codecs (tfcomp.codecs), the codec registry and the graph JPEG."""

import itertools

import numpy as np
import pytest
from PIL import ImageFile

from imagegen import natural_gray, natural_rgb
from tfcomp.codecs import codec_for_bytes, codec_names, describe_all, get_codec
from tfcomp.errors import BitstreamError, InputError
from tfcomp.metrics import psnr

CLASSICAL = ("jpeg", "webp", "jpeg2000")
# Three values of each codec's quality knob, from worst to best (JPEG 2000's knob is a
# compression ratio: lower is better).
QUALITY_LADDER = {"jpeg": (10, 50, 90), "webp": (10, 50, 90), "jpeg2000": (96, 24, 8)}
# Lower PSNR bound (dB) at each codec's default quality on the test image.
MIN_PSNR_AT_DEFAULT = {"jpeg": 30.0, "webp": 30.0, "jpeg2000": 30.0}


def colourful_rgb(h=64, w=64, seed=2):
    """Saturated colour blocks of 2x2 pixels: chroma detail that 4:2:0 throws away."""
    rng = np.random.default_rng(seed)
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0],
                        [255, 0, 255], [0, 255, 255]], dtype=np.uint8)
    idx = rng.integers(0, len(palette), size=((h + 1) // 2, (w + 1) // 2))
    return np.repeat(np.repeat(palette[idx], 2, axis=0), 2, axis=1)[:h, :w]


@pytest.fixture(scope="module")
def rgb():
    return natural_rgb()


@pytest.fixture(scope="module")
def gray():
    return natural_gray()


@pytest.fixture(scope="module")
def encoded(rgb):
    """One file per codec at its default quality."""
    return {name: get_codec(name).encode(rgb) for name in CLASSICAL}


def test_registry_lists_the_classical_codecs():
    assert set(CLASSICAL) <= set(codec_names())


# -- round trips -------------------------------------------------------------------

@pytest.mark.parametrize("name", CLASSICAL)
def test_round_trip_rgb(name, rgb):
    codec = get_codec(name)
    data = codec.encode(rgb)
    assert isinstance(data, bytes) and len(data) > 0
    out = codec.decode(data)
    assert out.shape == rgb.shape
    assert out.dtype == np.uint8
    value = psnr(rgb, out)
    assert MIN_PSNR_AT_DEFAULT[name] < value < 60.0


@pytest.mark.parametrize("name", CLASSICAL)
def test_round_trip_gray(name, gray):
    codec = get_codec(name)
    # JPEG 2000's ratio counts raw bits: 24 is 1 bpp on RGB but 1/3 bpp on gray; 8 is 1 bpp.
    out = codec.decode(codec.encode(gray, 8 if name == "jpeg2000" else None))
    assert out.dtype == np.uint8
    assert out.shape[:2] == gray.shape
    if name == "webp":
        # WebP has no gray mode: the decoder returns 3 (nearly equal) channels.
        assert out.shape[2] == 3
        ref = np.repeat(gray[:, :, None], 3, axis=2)
    else:
        assert out.shape == gray.shape + (1,)
        ref = gray[:, :, None]
    assert psnr(ref, out) > 30.0


@pytest.mark.parametrize("name", CLASSICAL)
def test_round_trip_gray_hwx1(name, gray):
    codec = get_codec(name)
    a = codec.decode(codec.encode(gray))
    b = codec.decode(codec.encode(gray[:, :, None]))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", CLASSICAL)
def test_psnr_increases_with_quality(name, rgb):
    codec = get_codec(name)
    sizes, values = [], []
    for q in QUALITY_LADDER[name]:
        data = codec.encode(rgb, q)
        sizes.append(len(data))
        values.append(psnr(rgb, codec.decode(data)))
    assert values == sorted(values) and len(set(values)) == len(values), values
    assert sizes == sorted(sizes), sizes


def test_jpeg_444_beats_420_on_colourful_image():
    img = colourful_rgb()
    p420 = psnr(img, get_codec("jpeg", chroma="420").decode(get_codec("jpeg", chroma="420").encode(img, 90)))
    p444 = psnr(img, get_codec("jpeg", chroma="444").decode(get_codec("jpeg", chroma="444").encode(img, 90)))
    assert p444 > p420 + 1.0, (p420, p444)


def _astronaut():
    from skimage import data
    return data.astronaut()  # 512x512 natural photo that ships with scikit-image


def test_jpeg2000_rate_control_hits_its_ratio():
    img = _astronaut()
    codec = get_codec("jpeg2000")
    for ratio in (24, 48, 96):
        bpp = 8 * len(codec.encode(img, ratio)) / (img.shape[0] * img.shape[1])
        assert bpp == pytest.approx(24 / ratio, rel=0.05), (ratio, bpp)


def test_jpeg2000_beats_jpeg_at_equal_bytes_near_half_a_bit():
    """With OpenJPEG's colour transform (opj_compress's default) JPEG 2000 is well ahead of
    JPEG at ~0.5 bpp; coding R, G and B separately (the old setting) put it behind."""
    img = _astronaut()
    j2k = get_codec("jpeg2000")
    data = j2k.encode(img, 48)  # ~0.5 bpp
    jpeg = get_codec("jpeg")
    # the lowest JPEG quality with at least as many bytes
    q = next(q for q in range(1, 101) if len(jpeg.encode(img, q)) >= len(data))
    p_j2k = psnr(img, j2k.decode(data))
    p_jpeg = psnr(img, jpeg.decode(jpeg.encode(img, q)))
    assert p_j2k > p_jpeg + 1.0, (p_j2k, p_jpeg, q)


def test_jpeg_default_chroma_is_420(rgb):
    assert get_codec("jpeg").encode(rgb, 80) == get_codec("jpeg", chroma="420").encode(rgb, 80)
    assert get_codec("jpeg").encode(rgb, 80) != get_codec("jpeg", chroma="444").encode(rgb, 80)


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (7, 5), (5, 7), (1, 9)])
def test_odd_sizes(name, shape):
    img = natural_rgb(*shape, seed=3)
    codec = get_codec(name)
    out = codec.decode(codec.encode(img))
    assert out.shape == img.shape and out.dtype == np.uint8


@pytest.mark.parametrize("name", CLASSICAL)
def test_decode_accepts_bytearray_and_memoryview(name, encoded):
    codec = get_codec(name)
    data = encoded[name]
    ref = codec.decode(data)
    np.testing.assert_array_equal(codec.decode(bytearray(data)), ref)
    np.testing.assert_array_equal(codec.decode(memoryview(data)), ref)


# -- format detection ----------------------------------------------------------------

@pytest.mark.parametrize("name", CLASSICAL)
def test_codec_for_bytes(name, encoded):
    codec = codec_for_bytes(encoded[name])
    assert codec.name == name


@pytest.mark.parametrize("name", CLASSICAL)
def test_sniff_only_own_format(name, encoded):
    codec = get_codec(name)
    for other, data in encoded.items():
        assert codec.sniff(data) == (other == name)


@pytest.mark.parametrize("data", [b"", b"\x00" * 16, b"GIF89a" + b"\x00" * 20],
                         ids=["empty", "zeros", "gif"])
def test_codec_for_bytes_unknown_format(data):
    with pytest.raises(BitstreamError):
        codec_for_bytes(data)


# -- argument errors -----------------------------------------------------------------

@pytest.mark.parametrize("name,quality", [
    ("jpeg", 0), ("jpeg", 101), ("jpeg", -5),
    ("webp", -1), ("webp", 101),
    ("jpeg2000", 1), ("jpeg2000", 501), ("jpeg2000", 0),
    ("jpeg", float("nan")),
])
def test_quality_out_of_range(name, quality, rgb):
    with pytest.raises(InputError):
        get_codec(name).encode(rgb, quality)


@pytest.mark.parametrize("name", CLASSICAL)
def test_quality_range_ends_are_valid(name):
    codec = get_codec(name)
    img = natural_rgb(16, 16)
    for q in (codec.quality_min, codec.quality_max):
        assert codec.decode(codec.encode(img, q)).shape == img.shape


def test_unknown_codec_name():
    with pytest.raises(InputError):
        get_codec("no-such-codec")


def test_unknown_option():
    with pytest.raises(InputError):
        get_codec("jpeg", subsampling="444")
    with pytest.raises(InputError):
        get_codec("webp", chroma="444")


def test_bad_option_value():
    with pytest.raises(InputError):
        get_codec("jpeg", chroma="422")


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize("bad", [
    np.zeros((8, 8, 3), np.float32),
    np.zeros((8, 8, 3), np.float64),
    np.zeros((8, 8, 3), np.uint16),
    np.zeros((8, 8, 4), np.uint8),
    np.zeros((8, 8, 2), np.uint8),
    np.zeros((8,), np.uint8),
    np.zeros((2, 8, 8, 3), np.uint8),
    np.zeros((0, 8, 3), np.uint8),
], ids=["float32", "float64", "uint16", "hwx4", "hwx2", "1d", "4d", "empty"])
def test_bad_input_image(name, bad):
    with pytest.raises(InputError):
        get_codec(name).encode(bad)


@pytest.mark.parametrize("name", CLASSICAL)
def test_decode_non_bytes(name):
    with pytest.raises(InputError):
        get_codec(name).decode("not bytes")


# -- corrupted bitstreams: always exactly BitstreamError ---------------------------------

@pytest.mark.parametrize("name", CLASSICAL)
def test_decode_empty(name):
    with pytest.raises(BitstreamError):
        get_codec(name).decode(b"")


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize("fraction", [0.5, 0.9], ids=["half", "most"])
def test_decode_truncated(name, fraction, encoded):
    # With LOAD_TRUNCATED_IMAGES on, Pillow would decode half a JPEG 2000 file silently.
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = encoded[name]
    with pytest.raises(BitstreamError):
        get_codec(name).decode(data[:int(len(data) * fraction)])


@pytest.mark.parametrize("name", CLASSICAL)
def test_decode_header_only(name, encoded):
    with pytest.raises(BitstreamError):
        get_codec(name).decode(encoded[name][:24])


@pytest.mark.parametrize("name", CLASSICAL)
def test_decode_random_bytes(name):
    data = np.random.default_rng(7).integers(0, 256, 500, dtype=np.uint8).tobytes()
    with pytest.raises(BitstreamError):
        get_codec(name).decode(data)


@pytest.mark.parametrize("name,other", list(itertools.permutations(CLASSICAL, 2)))
def test_decode_file_of_another_codec(name, other, encoded):
    with pytest.raises(BitstreamError):
        get_codec(name).decode(encoded[other])


@pytest.mark.parametrize("name", CLASSICAL)
def test_decode_corrupted_bytes_raise_only_bitstream_error(name, encoded):
    """Random byte changes either decode to an image of the right shape or raise BitstreamError."""
    rng = np.random.default_rng(11)
    codec = get_codec(name)
    data = encoded[name]
    for _ in range(25):
        bad = bytearray(data)
        for pos in rng.integers(0, len(bad), size=3):
            bad[pos] = int(rng.integers(0, 256))
        try:
            out = codec.decode(bytes(bad))
        except BitstreamError:
            continue
        assert out.dtype == np.uint8 and out.ndim == 3


# -- describe --------------------------------------------------------------------------

@pytest.mark.parametrize("name", CLASSICAL)
def test_describe(name):
    d = get_codec(name).describe()
    assert {"name", "kind", "quality", "qualities", "weights"} <= set(d)
    assert d["name"] == name
    assert d["kind"] == "classical"
    assert set(d["quality"]) == {"min", "max", "default"}
    q = d["quality"]
    assert q["min"] <= q["default"] <= q["max"]
    assert d["qualities"] == list(range(q["min"], q["max"] + 1))
    assert all(isinstance(v, int) for v in d["qualities"])
    assert d["weights"] is True


def test_describe_all_follows_the_interface():
    kinds = {"classical", "learned", "hiding", "semantic", "restorer"}
    entries = describe_all()
    names = [e["name"] for e in entries]
    assert set(CLASSICAL) <= set(names)
    assert len(names) == len(set(names))
    for e in entries:
        assert isinstance(e["name"], str)
        assert e["kind"] in kinds
        assert set(e["quality"]) == {"min", "max", "default"}
        assert isinstance(e["qualities"], list) and e["qualities"]
        assert e["quality"]["default"] in e["qualities"]
        assert isinstance(e["weights"], bool)


# -- graph JPEG ------------------------------------------------------------------------

@pytest.mark.parametrize("quality", [10, 50, 90])
@pytest.mark.parametrize("shape", [(48, 64, 3), (37, 29, 3), (48, 64, 1), (7, 5, 1)],
                         ids=["rgb", "rgb-odd", "gray", "gray-odd"])
def test_graph_jpeg_matches_pillow(quality, shape):
    from tfcomp.codecs.graph_jpeg import jpeg_roundtrip
    img = natural_rgb(shape[0], shape[1], seed=quality)
    if shape[2] == 1:
        img = natural_gray(shape[0], shape[1], seed=quality)[:, :, None]
    codec = get_codec("jpeg")
    expected = codec.decode(codec.encode(img, quality))
    got = jpeg_roundtrip(img, quality).numpy()
    assert got.dtype == np.uint8
    assert got.shape == img.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_graph_jpeg_tensor_quality_in_tf_function():
    import tensorflow as tf

    from tfcomp.codecs.graph_jpeg import jpeg_roundtrip

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                  tf.TensorSpec([], tf.int32)])
    def roundtrip(image, quality):
        return jpeg_roundtrip(image, quality)

    img = natural_rgb()
    codec = get_codec("jpeg")
    for q in (20, 70):
        got = roundtrip(tf.constant(img), tf.constant(q)).numpy()
        np.testing.assert_array_equal(got, codec.decode(codec.encode(img, q)))
    assert roundtrip.experimental_get_tracing_count() == 1
