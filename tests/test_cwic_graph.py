"""CWIC's in-graph coding: the same files as the numpy reference, model identity, SavedModel."""

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf

from imagegen import natural_rgb
from tfcomp import models
from tfcomp import registry as registry_module
from tfcomp.cwic import codec as cwic_codec
from tfcomp.cwic.coding import ContextTables, decode_streams, encode_streams
from tfcomp.cwic.model import CWIC, _Res, build_cwic
from tfcomp.errors import BitstreamError, TfcompError

# Odd sizes, a single block, and one side over codec.TILE (the networks run in tiles).
SIZES = [(37, 29), (1, 1), (8, 8), (48, 64), (24, 530)]


def fitted(model, seeds=(11, 12)):
    tables = ContextTables(model.n, model.levels)
    for seed in seeds:
        tables.accumulate(*cwic_codec.analyse(model, natural_rgb(64, 80, seed)))
    return tables


@pytest.fixture(scope="module")
def tiny():
    tf.keras.utils.set_random_seed(1)
    model = build_cwic("tiny")
    return model.set_tables(fitted(model), rate=5)


def numpy_file(model, image, model_id=None):
    """The numpy reference: analyse + coding.encode_streams + codec.pack."""
    bits, q = cwic_codec.analyse(model, image)
    streams = encode_streams(bits, q, model.tables)
    return cwic_codec.pack(model.rate, image.shape[0], image.shape[1], *streams, model_id)


def numpy_decode(model, data):
    parsed = cwic_codec.unpack(data)
    h, w = parsed.height, parsed.width
    bits, q = decode_streams(parsed.map_stream, parsed.bit_stream, -(-h // 8), -(-w // 8),
                             model.tables)
    return cwic_codec.synthesise(model, bits, q, h, w)


def with_crc(data, header=26):
    """A file whose CRC is recomputed after editing (version 3 layout)."""
    return data[:header - 4] + struct.pack(">I", zlib.crc32(data[header:])) + data[header:]


@pytest.mark.parametrize("size", SIZES)
def test_graph_files_equal_numpy_files_both_ways(tiny, size):
    image = natural_rgb(*size, seed=sum(size))
    out = tiny.compress(image)
    data = out["cwic_bytes"].numpy()
    assert data == numpy_file(tiny, image, tiny.model_id)
    assert data == cwic_codec.pack(tiny.rate, *size, out["map_bytes"].numpy(),
                                   out["bits_bytes"].numpy(), tiny.model_id)
    assert list(out["image_shape"].numpy()) == list(size)
    assert list(out["grid_shape"].numpy()) == [-(-size[0] // 8), -(-size[1] // 8)]
    decoded = tiny.decompress(data).numpy()
    np.testing.assert_array_equal(decoded, numpy_decode(tiny, data))
    # Version 2 (rate index only) files of the numpy path decode in the graph too.
    np.testing.assert_array_equal(tiny.decompress(numpy_file(tiny, image)).numpy(), decoded)


def test_shipped_cwic2_on_a_photo_crop():
    from skimage import data as skdata
    if not models.is_available("cwic-2"):
        pytest.skip("cwic-2 is not installed")
    model = models.load_model("cwic-2")
    assert model.rate == 2 and model.tables is not None
    image = np.ascontiguousarray(skdata.astronaut()[40:136, 200:328])
    data = model.compress(image)["cwic_bytes"].numpy()
    assert data == numpy_file(model, image, model.model_id)
    assert data == cwic_codec.compress_array(model, model.tables, 2, image)
    np.testing.assert_array_equal(model.decompress(data).numpy(), numpy_decode(model, data))
    assert cwic_codec.unpack(data).model_id == model.model_id


def test_codec_path_is_the_graph(tiny):
    image = natural_rgb(40, 56, seed=3)
    data = cwic_codec.compress_array(tiny, tiny.tables, 5, image)
    assert data == tiny.compress(image)["cwic_bytes"].numpy()
    np.testing.assert_array_equal(cwic_codec.decompress_array(tiny, tiny.tables, data),
                                  tiny.decompress(data).numpy())


def test_other_weights_or_tables_are_refused(tiny):
    image = natural_rgb(24, 32, seed=4)
    data = tiny.compress(image)["cwic_bytes"].numpy()
    tf.keras.utils.set_random_seed(2)
    other = build_cwic("tiny")
    other.set_tables(tiny.tables, rate=4)
    assert other.model_id != tiny.model_id
    with pytest.raises(BitstreamError, match="made by model " + tiny.model_id.hex()):
        cwic_codec.decompress_array(other, tiny.tables, data)
    with pytest.raises(tf.errors.InvalidArgumentError, match="made by model"):
        other.decompress(data)  # the SavedModel's own check
    # A version-2 file names only its rate index: another rate model refuses it in the graph.
    with pytest.raises(tf.errors.InvalidArgumentError, match="rate model"):
        other.decompress(numpy_file(tiny, image))
    retabled = build_cwic("tiny")
    retabled.set_weights(tiny.get_weights())
    retabled.set_tables(fitted(retabled, seeds=(13,)), rate=5)
    assert retabled.model_id != tiny.model_id  # the same weights, other tables


def test_forged_streams_decode_to_their_size_or_fail_cleanly(tiny):
    """A changed byte under a recomputed CRC: some other picture of the header's size (any
    byte string is some range-coded stream), or a BitstreamError; never a crash."""
    data = tiny.compress(natural_rgb(40, 48, seed=5))["cwic_bytes"].numpy()
    for at in range(26, len(data), max(1, (len(data) - 26) // 6)):
        forged = bytearray(data)
        forged[at] ^= 0x24
        try:
            out = cwic_codec.decompress_array(tiny, tiny.tables, with_crc(bytes(forged)))
        except BitstreamError:
            continue
        assert out.shape == (40, 48, 3)


@pytest.mark.parametrize("damage", ["flip-body", "truncate", "huge-size", "version",
                                    "short", "bits-cut"])
def test_damaged_files_give_bitstream_errors(tiny, damage):
    data = bytearray(tiny.compress(natural_rgb(40, 48, seed=5))["cwic_bytes"].numpy())
    map_len = struct.unpack(">I", data[18:22])[0]
    if damage == "flip-body":       # the CRC notices
        data[26 + map_len // 2] ^= 0x24
    elif damage == "truncate":
        data = data[:-3]
    elif damage == "huge-size":     # a few bytes claiming a large image
        data[14:18] = struct.pack(">HH", 4000, 4000)
        data = with_crc(bytes(data))
    elif damage == "version":
        data[4] = 4
    elif damage == "short":
        data = data[:20]
    else:                           # the map intact, the bit stream gone
        data = with_crc(bytes(data[:26 + map_len]))
    with pytest.raises(BitstreamError):
        cwic_codec.decompress_array(tiny, tiny.tables, bytes(data))
    if damage != "short":
        with pytest.raises(tf.errors.InvalidArgumentError):
            tiny.decompress(bytes(data))


def test_graph_crc_is_zlibs():
    from tfcomp.cwic.graph import crc32
    fn = tf.function(crc32, input_signature=[tf.TensorSpec([], tf.string)])
    rng = np.random.default_rng(0)
    for size in (0, 1, 3, 4, 5, 511, 512, 513, 3000):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert int(fn(tf.constant(data))) == zlib.crc32(data), size


def test_model_needs_tables_and_matching_ones():
    model = build_cwic("tiny")
    with pytest.raises(TfcompError, match="set_tables"):
        model.compress(natural_rgb(8, 8))
    with pytest.raises(TfcompError, match="do not fit"):
        model.set_tables(ContextTables(64, 16))
    with pytest.raises(TfcompError, match="context family"):
        model.set_tables(ContextTables(16, 4, family="channel"))


def test_keras_config_round_trips():
    res = _Res(8, 4, name="r")
    clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(res))
    assert isinstance(clone, _Res) and clone.get_config() == res.get_config()
    model = CWIC("tiny", target=0.5, gamma=0.2, distortion="ms-ssim", mse_weight=3.0)
    again = CWIC.from_config(model.get_config())
    assert again.get_config() == model.get_config()
    assert tf.keras.utils.get_registered_object("tfcomp>CWIC") is CWIC
    assert tf.keras.utils.get_registered_object("tfcomp>CwicRes") is _Res


_FRESH = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_compression  # the range-coding ops; nothing of tfcomp
path, image_path, file_path, out = sys.argv[1:]
loaded = tf.saved_model.load(path)
image = np.load(image_path)
data = open(file_path, "rb").read()
made = loaded.signatures["compress"](image=tf.constant(image))
decoded = loaded.signatures["decompress"](cwic_bytes=tf.constant(data))["image"]
np.save(out, decoded.numpy())
try:
    loaded.decompress(tf.constant(data[:-2]))
    refused = False
except tf.errors.InvalidArgumentError:
    refused = True
print(json.dumps({"same_bytes": made["cwic_bytes"].numpy() == data, "refused": refused,
                  "tfcomp": [m for m in sys.modules if m.startswith("tfcomp")]}))
"""


@pytest.fixture
def registry(tiny, tmp_path, monkeypatch):
    """The registry with one cwic rate model, "cwic-5" = the tiny model (weights on disk)."""
    monkeypatch.setattr(models, "WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(registry_module, "WEIGHTS_DIR", str(tmp_path))  # ModelSpec paths
    monkeypatch.setattr(models, "_LOADED", {"cwic-5": tiny})  # its functions are traced
    tiny.save_weights(str(tmp_path / "t.weights.h5"))
    tiny.tables.save(str(tmp_path / "t.ctx.npz"))
    for name in [n for n in models.model_names("learned") if n.startswith("cwic-")]:
        monkeypatch.delitem(models._REGISTRY, name)
    monkeypatch.setitem(models._REGISTRY, "cwic-5", models.ModelSpec(
        name="cwic-5", kind="learned", description="test", builder="tfcomp.cwic.model:build_cwic",
        builder_kwargs={"config": "tiny"}, weights="t.weights.h5", tables="t.ctx.npz",
        quality_min=5, quality_max=5, quality_default=5, codec="cwic"))
    return tmp_path


def test_two_rate_sets_share_the_format_and_decode_from_either(tiny, registry, monkeypatch):
    """cwic-mse's models write their set's rate id (base 16 + rate index) into the header, so
    any .cwic file names the model that decodes it, whichever codec of the format reads it."""
    from tfcomp.codecs import codec_for_bytes, get_codec
    tf.keras.utils.set_random_seed(8)
    other = build_cwic("tiny")
    other.set_tables(fitted(other, seeds=(21,)), rate=21)
    other.save_weights(str(registry / "m.weights.h5"))
    other.tables.save(str(registry / "m.ctx.npz"))
    models._LOADED["cwic-mse-5"] = other
    monkeypatch.setitem(models._REGISTRY, "cwic-mse-5", models.ModelSpec(
        name="cwic-mse-5", kind="learned", description="test", builder="tfcomp.cwic.model:build_cwic",
        builder_kwargs={"config": "tiny"}, weights="m.weights.h5", tables="m.ctx.npz",
        quality_min=5, quality_max=5, quality_default=5, codec="cwic-mse",
        codec_settings={"rate_id": 21}))
    mse, ssim = get_codec("cwic-mse"), get_codec("cwic")
    assert mse.qualities == [5] and ssim.qualities == [5]
    img = natural_rgb(40, 48, seed=9)
    a, b = ssim.encode(img, 5), mse.encode(img, 5)
    assert (a[5], b[5]) == (5, 21)  # the rate byte after magic and version
    assert cwic_codec.unpack(b).model_id == other.model_id
    for data, model in ((a, tiny), (b, other)):
        want = model.decompress(data).numpy()
        for codec in (ssim, mse, codec_for_bytes(data)):
            np.testing.assert_array_equal(codec.decode(data), want)
    forged = bytearray(b)
    forged[5] = 22
    with pytest.raises(BitstreamError, match="id 22"):
        mse.decode(with_crc(bytes(forged)))


def test_shipped_rate_ids_are_unique_and_in_their_sets_range():
    from tfcomp.cwic.specs import CODECS, MODELS, RATE_BASE
    ids = [s.codec_settings["rate_id"] for s in MODELS]
    assert len(set(ids)) == len(ids)
    for s in MODELS:
        assert s.codec in CODECS
        assert s.codec_settings["rate_id"] == RATE_BASE[s.codec] + s.quality_min < RATE_BASE[s.codec] + 16


def test_cli_weights_of_your_own(registry, capsys):
    """--weights DIR codes with another model; its files need it to decode (clear error)."""
    from PIL import Image
    from tfcomp.cli import main
    tf.keras.utils.set_random_seed(3)
    mine = build_cwic("tiny")
    folder = registry / "mine"
    folder.mkdir()
    mine.save_weights(str(folder / "mine.weights.h5"))
    fitted(mine, seeds=(14,)).save(str(folder / "mine.ctx.npz"))
    Image.fromarray(natural_rgb(24, 40, seed=7)).save(registry / "in.png")
    cwic = ["--codec", "cwic", "--quality", "5"]
    assert main(["compress", str(registry / "in.png"), "-o", str(registry / "m.cwic"), *cwic,
                 "--weights", str(folder)]) == 0
    capsys.readouterr()
    assert main(["decompress", str(registry / "m.cwic"), "-o", str(registry / "o.png")]) == 1
    assert "made by model" in capsys.readouterr().err and not (registry / "o.png").exists()
    assert main(["decompress", str(registry / "m.cwic"), "-o", str(registry / "o.png"),
                 "--weights", str(folder / "mine.weights.h5"),
                 "--tables", str(folder / "mine.ctx.npz")]) == 0
    assert main(["decompress", str(registry / "m.cwic"), "-o", str(registry / "o.png"),
                 "--weights", str(folder / "mine.weights.h5")]) == 1
    assert "--tables" in capsys.readouterr().err


def test_savedmodel_runs_in_a_tf_only_process(tiny, registry):
    """The CLI's file decodes in `python -I` with only TF + tfc, to the CLI's pixels; the
    SavedModel's compress writes the CLI's bytes."""
    from PIL import Image
    from tfcomp.cli import main
    from tfcomp.cwic.export import save_savedmodel
    tmp_path = registry
    image = natural_rgb(33, 41, seed=6)
    Image.fromarray(image).save(tmp_path / "in.png")
    assert main(["compress", str(tmp_path / "in.png"), "-o", str(tmp_path / "x.cwic"),
                 "--codec", "cwic", "--quality", "5"]) == 0
    assert main(["decompress", str(tmp_path / "x.cwic"), "-o", str(tmp_path / "y.png")]) == 0
    save_savedmodel(tiny, str(tmp_path / "sm"))
    np.save(tmp_path / "image.npy", image)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    run = subprocess.run([sys.executable, "-I", "-c", _FRESH, str(tmp_path / "sm"),
                          str(tmp_path / "image.npy"), str(tmp_path / "x.cwic"),
                          str(tmp_path / "out.npy")], capture_output=True, text=True,
                         timeout=300, env=env, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result == {"same_bytes": True, "refused": True, "tfcomp": []}
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"),
                                  np.asarray(Image.open(tmp_path / "y.png")))


def test_networks_export_to_tflite_and_onnx_with_parity(tiny, tmp_path):
    """`tfcomp export` of the encoder and decoder alone (no coding ops) in TFLite and ONNX:
    each within its tolerance of TF in the generic parity check, and the exported encoder
    gives the same masked bits (what the range coder codes) as TF."""
    from tfcomp import export as E
    from tfcomp.cwic.export import CwicExporter, masked_bits
    exporter = CwicExporter(tiny)
    exporter.name = "tiny-cwic"
    assert exporter.formats() == {"savedmodel": None, "tflite": None, "onnx": None}
    artifacts = [a for fmt, q in (("tflite", "float32"), ("tflite", "float16"), ("onnx", None))
                 for a in E.export(exporter, fmt, str(tmp_path), quantize=q,
                                   update_config=False)]
    names = sorted(os.path.basename(p) for _, _, p in artifacts)
    assert names == ["tiny-cwic-decoder-float16.tflite", "tiny-cwic-decoder-float32.tflite",
                     "tiny-cwic-decoder.onnx", "tiny-cwic-encoder-float16.tflite",
                     "tiny-cwic-encoder-float32.tflite", "tiny-cwic-encoder.onnx"]
    rows = E.parity(exporter, artifacts, size=(32, 48), runtimes=("tf",))
    assert {(r["network"], r["format"], r["quantization"]) for r in rows} == {
        (n, f, q) for n in ("encoder", "decoder")
        for f, q in (("tflite", "float32"), ("tflite", "float16"), ("onnx", "float32"))}
    assert all(r["ok"] for r in rows), E.format_parity(rows)
    decoder_rows = [r for r in rows if r["network"] == "decoder"]
    assert all(r["psnr_tf"] == r["psnr_tf"] for r in decoder_rows)  # scored against the crop
    x = natural_rgb(32, 48, seed=8)[None].astype(np.float32) / 255.0
    want = masked_bits(tiny, exporter.networks()["encoder"].model(x).numpy())
    for _, quant, path in artifacts:
        if "encoder" in path and quant == "float32":
            got = E.run_onnx(path, x) if path.endswith(".onnx") else E.run_tflite(path, x)
            np.testing.assert_array_equal(masked_bits(tiny, got), want)
