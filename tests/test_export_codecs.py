"""Export of the learned codecs: hiding-jpeg / hiding-bpg SavedModels (compress, decompress)
against the CLI's bytes and pixels, JPD-SE's generator and decompress graph, `export --format
all --check` for every kind, n/a reasons, custom ops in the manifest, and a REST + gRPC round
trip through `tfcomp serve`. Small registered test models keep it fast."""

import base64
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcomp import export as E
from tfcomp import models
from tfcomp.cli import main
from tfcomp.codecs import bpg, get_codec

HIDING, JPDSE = "tiny-hiding-export-test", "tiny-jpdse-export-test"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _randomise(model, seed):
    """Non-trivial weights: the encoder's zero-initialised output conv would make E the identity."""
    rng = np.random.default_rng(seed)
    for v in model.variables:
        if "alpha" in v.name:
            v.assign(rng.uniform(0.05, 0.3, v.shape).astype(np.float32))
        elif "kernel" in v.name and not np.any(v.numpy()):
            v.assign(rng.normal(0, 0.02, v.shape).astype(np.float32))
        elif "bias" in v.name:
            v.assign(rng.normal(0, 0.01, v.shape).astype(np.float32))


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A tiny hiding-jpeg model and a tiny JPD-SE generator in the registry (weights in temp
    files, given as absolute paths so the CLI loads them too)."""
    from tfcomp.hiding.model import build_hiding
    from tfcomp.jpdse.model import build_generator
    folder = tmp_path_factory.mktemp("weights")
    tf.keras.utils.set_random_seed(5)
    hiding_kwargs = {"codec": "jpeg", "quality": 50, "width": 8, "depth": 3,
                     "decoder_widths": (8, 8, 8, 8)}
    hiding = build_hiding(**hiding_kwargs)
    _randomise(hiding, 5)
    hiding.save_weights(str(folder / "hiding.weights.h5"))
    generator = build_generator("tiny")
    _randomise(generator, 6)
    generator.save_weights(str(folder / "jpdse.weights.h5"))
    specs = [
        models.ModelSpec(name=HIDING, kind="hiding", description="test",
                         builder="tfcomp.hiding.model:build_hiding", builder_kwargs=hiding_kwargs,
                         weights=str(folder / "hiding.weights.h5"), quality_min=40,
                         quality_max=60, quality_default=50, codec="hiding-jpeg"),
        models.ModelSpec(name=JPDSE, kind="semantic", description="test",
                         builder="tfcomp.jpdse.model:build_generator",
                         builder_kwargs={"config": "tiny"}, weights=str(folder / "jpdse.weights.h5"),
                         quality_min=0, quality_max=51, quality_default=36,
                         codec_settings={"label_scale": 4})]
    for spec in specs:
        models.register(spec)
    try:
        yield {"hiding": models.load_model(HIDING), "jpdse": models.load_model(JPDSE)}
    finally:
        for spec in specs:
            models._REGISTRY.pop(spec.name, None)
            models._LOADED.pop(spec.name, None)


def _cli(*argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def exported(registered, tmp_path_factory):
    """`tfcomp export --format all --check` of both tiny models into one folder."""
    out = tmp_path_factory.mktemp("exported")
    runs = {name: _cli("export", "--model", name, "--format", "all", "--out", out, "--check")
            for name in (HIDING, JPDSE)}
    for name, (_, text) in runs.items():  # kept for reading after a failure
        (out / f"{name}.check.txt").write_text(text)
    return {"out": str(out), "runs": runs}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two photo crops (one of odd size) as PNG files, and the CLI's hiding-jpeg files of them."""
    tmp = tmp_path_factory.mktemp("images")
    crops = [E.photo_crops(48, 64)[0][1], E.photo_crops(37, 53, seed=3)[2][1]]
    paths = []
    for i, crop in enumerate(crops):
        Image.fromarray(crop).save(tmp / f"in{i}.png")
        paths.append(tmp / f"in{i}.png")
    return {"tmp": tmp, "crops": crops, "paths": paths}


@pytest.fixture(scope="module")
def cli_files(registered, images):
    """`tfcomp compress` / `decompress` of the crops with the tiny hiding model: (file, png)."""
    out = []
    for i, path in enumerate(images["paths"]):
        jpg, png = images["tmp"] / f"c{i}.jpg", images["tmp"] / f"d{i}.png"
        assert _cli("compress", path, "-o", jpg, "--codec", "hiding-jpeg", "--model", HIDING,
                    "--quality", 50)[0] == 0
        assert _cli("decompress", jpg, "-o", png, "--codec", "hiding-jpeg", "--model",
                    HIDING)[0] == 0
        out.append((jpg.read_bytes(), np.asarray(Image.open(png))))
    return out


def test_export_all_check_exits_0_for_hiding_and_jpdse(exported):
    out = exported["out"]
    for name, nets in ((HIDING, ("-encoder", "-decoder")), (JPDSE, ("",))):
        code, text = exported["runs"][name]
        assert code == 0, text
        assert "FAIL" not in text and "parity against TF" in text
        for net in nets:
            for f in (f"{name}{net}-float32.tflite", f"{name}{net}-float16.tflite",
                      f"{name}{net}.onnx"):
                assert os.path.isfile(os.path.join(out, f)), f
        assert os.path.isfile(os.path.join(out, name, "1", "saved_model.pb"))
    hiding, jpdse = exported["runs"][HIDING][1], exported["runs"][JPDSE][1]
    assert "n/a: tflite compress/decompress: the JPEG coder" in hiding
    assert re.search(r"\b(\d+)/\1 files byte-identical", hiding), hiding
    for runtime in ("compress", "decompress", "tf.lite", "ai-edge-litert", "onnxruntime"):
        assert runtime in hiding
    assert "n/a: savedmodel compress: the side information is LZMA2" in jpdse
    assert "tf.saved_model" in jpdse and "decompress" in jpdse
    assert "needs custom ops" in jpdse and "needs custom ops" not in hiding
    config = open(os.path.join(out, "models.config")).read()
    assert HIDING in config and JPDSE in config


def test_manifests_record_custom_ops(exported):
    h = E.read_manifest(os.path.join(exported["out"], HIDING, "1"))
    j = E.read_manifest(os.path.join(exported["out"], JPDSE, "1"))
    assert h["custom_ops"] == [] and h["kind"] == "hiding"
    assert set(h["signatures"]) == {"compress", "decompress"}
    assert j["custom_ops"] == ["assets.extra/_bpg_ops.so"] and j["kind"] == "semantic"
    assert os.path.isfile(os.path.join(exported["out"], JPDSE, "1", "assets.extra", "_bpg_ops.so"))
    assert "tf.load_op_library" in j["load"]
    assert set(j["signatures"]) == {"serving_default", "decompress"}


def test_savedmodel_compress_decompress_equal_the_cli(exported, images, cli_files):
    """Byte-identical files (the graph JPEG gets Pillow's JFIF density bytes and comment) and
    identical pixels, both directions."""
    sm = tf.saved_model.load(os.path.join(exported["out"], HIDING, "1"))
    for crop, (file, png) in zip(images["crops"], cli_files):
        out = sm.signatures["compress"](image=tf.constant(crop), quality=tf.constant(50))
        data = out["jpeg_bytes"].numpy()
        assert data == file
        assert b"tfcomp-hiding:" + HIDING.encode() in data
        # `hidden` is the image the file codes: Pillow's JPEG of it is the same file
        comment = E.get_exporter(HIDING).comment()
        assert comment.startswith(b"tfcomp-hiding:" + HIDING.encode())
        assert get_codec("jpeg").jpeg_bytes(out["hidden"].numpy(), 50, comment=comment) == data
        image = sm.signatures["decompress"](jpeg_bytes=tf.constant(file))["image"].numpy()
        np.testing.assert_array_equal(image, png)
    with pytest.raises(tf.errors.InvalidArgumentError, match="trained for 40..60"):
        sm.signatures["compress"](image=tf.constant(images["crops"][0]), quality=tf.constant(90))
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a JPEG"):
        sm.signatures["decompress"](jpeg_bytes=tf.constant(b"\x89PNG not a jpeg"))


def test_hiding_savedmodel_runs_in_a_tensorflow_only_process(exported, images, cli_files):
    """Stock TF only (no tfcomp): the JPEG graph needs no custom op."""
    tmp = images["tmp"]
    (tmp / "c.jpg").write_bytes(cli_files[0][0])
    script = ("import sys, numpy as np, tensorflow as tf\n"
              "m = tf.saved_model.load(sys.argv[1])\n"
              "y = m.signatures['decompress'](jpeg_bytes=tf.constant(open(sys.argv[2], 'rb')"
              ".read()))['image']\n"
              "np.save(sys.argv[3], y.numpy())\n"
              "print('MODULES', sorted(k for k in sys.modules if k.split('.')[0] == 'tfcomp'))\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    r = subprocess.run([sys.executable, "-I", "-c", script,
                        os.path.join(exported["out"], HIDING, "1"), str(tmp / "c.jpg"),
                        str(tmp / "y.npy")], capture_output=True, text=True, env=env,
                       cwd=str(tmp), timeout=180)
    assert r.returncode == 0, r.stderr
    assert "MODULES []" in r.stdout
    np.testing.assert_array_equal(np.load(tmp / "y.npy"), cli_files[0][1])


def test_jpdse_decompress_matches_the_cli_decode_steps(registered, exported):
    from tfcomp.jpdse.semantic import encode_side_info, pack_jpdse
    from tfcomp.jpdse.export import JpdseExporter, decompress_inputs, synthetic_labels
    exporter = E.get_exporter(JPDSE)
    assert isinstance(exporter, JpdseExporter)
    sm = tf.saved_model.load(os.path.join(exported["out"], JPDSE, "1"))
    crop = E.photo_crops(29, 42)[1][1]  # not a multiple of 4: the graph pads like the codec
    side = encode_side_info(synthetic_labels(crop), None, scale=4)
    data = pack_jpdse(bpg.encode(crop, 38), side, 29, 42, 38, 1)
    inputs, name = decompress_inputs(data)
    assert name == "jpdse-bpg-p3" and inputs["labels"].shape == (29, 42)
    got = sm.signatures["decompress"](**{k: tf.constant(v) for k, v in inputs.items()})
    want = exporter.reference_decode(bpg.decode(inputs["bpg_bytes"].item()), inputs["labels"],
                                     inputs["edges"].astype(np.float32))
    np.testing.assert_array_equal(got["image"].numpy(), want)
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels must have"):
        sm.signatures["decompress"](bpg_bytes=tf.constant(inputs["bpg_bytes"].item()),
                                    labels=tf.zeros([3, 3], tf.uint8),
                                    edges=tf.constant(inputs["edges"]))


def test_jpdse_savedmodel_decodes_cli_files(registered, exported, tmp_path, monkeypatch):
    """`tfcomp compress --codec jpdse-bpg` -> SavedModel decompress (the container parsed by
    decompress_inputs) equals `tfcomp decompress` (the tiny generator stands in as model id 1)."""
    from tfcomp.jpdse import codec as jpdse_codec
    from tfcomp.jpdse.export import decompress_inputs, synthetic_labels
    monkeypatch.setattr(jpdse_codec, "MODEL_IDS", {1: JPDSE})
    crop = E.photo_crops(40, 58)[0][1]
    Image.fromarray(crop).save(tmp_path / "in.png")
    Image.fromarray(synthetic_labels(crop)).save(tmp_path / "labels.png")
    assert _cli("compress", tmp_path / "in.png", "-o", tmp_path / "f.jpdse", "--codec",
                "jpdse-bpg", "--labels", tmp_path / "labels.png", "--quality", 36)[0] == 0
    assert _cli("decompress", tmp_path / "f.jpdse", "-o", tmp_path / "out.png")[0] == 0
    sm = tf.saved_model.load(os.path.join(exported["out"], JPDSE, "1"))
    inputs, name = decompress_inputs((tmp_path / "f.jpdse").read_bytes())
    assert name == JPDSE
    got = sm.signatures["decompress"](**{k: tf.constant(v) for k, v in inputs.items()})
    np.testing.assert_array_equal(got["image"].numpy(), np.asarray(Image.open(tmp_path / "out.png")))


def test_formats_that_cannot_exist_are_reported(registered, tmp_path, capsys):
    # cwic: "export pending" until tfcomp/cwic/export.py lands, then TFLite of the whole codec
    # (range coding) is n/a unless its exporter gives networks; one line either way
    code = main(["export", "--model", "cwic-2", "--format", "tflite", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    if code:
        assert err.count("\n") == 1 and ("export pending" in err or "not applicable" in err
                                         or "cwic" in err), err
        assert not os.listdir(tmp_path)
    hiding = E.get_exporter(HIDING)
    assert set(hiding.formats().values()) == {None}
    assert [w for w, _ in E.not_applicable(hiding, "onnx")] == ["onnx compress/decompress"]


def test_hiding_bpg_exporter_records_the_op_library(registered):
    from tfcomp.hiding.export import HidingExporter
    from tfcomp.hiding.model import build_hiding
    model = build_hiding(codec="bpg", quality=30, width=8, depth=2, decoder_widths=(8, 8, 8, 8))
    exporter = HidingExporter(model)
    assert exporter.custom_ops == ("assets.extra/_bpg_ops.so",)
    assert exporter.assets() == {"assets.extra/_bpg_ops.so": bpg.LIBRARY_PATH}
    assert exporter.bytes_name == "bpg_bytes"
    if not bpg.library_present():
        pytest.skip("the BPG op is not built")
    crop = E.photo_crops(24, 32)[0][1]
    out = exporter.signatures()["compress"](tf.constant(crop), tf.constant(30))
    codec = exporter.cli_codec()
    assert out["bpg_bytes"].numpy() == codec.encode(crop, 30)
    image = exporter.signatures()["decompress"](out["bpg_bytes"])["image"].numpy()
    np.testing.assert_array_equal(image, codec.decode(out["bpg_bytes"].numpy()))


# -- serving ---------------------------------------------------------------------------------------
CWIC = "tiny-cwic-export-test"


@pytest.fixture(scope="module")
def cwic_model(exported):
    """A tiny CWIC with fitted context tables, exported next to the others (CwicExporter)."""
    from imagegen import natural_rgb
    from tfcomp.cwic.codec import analyse
    from tfcomp.cwic.coding import ContextTables
    from tfcomp.cwic.export import CwicExporter
    from tfcomp.cwic.model import build_cwic
    tf.keras.utils.set_random_seed(1)
    model = build_cwic("tiny")
    tables = ContextTables(model.n, model.levels)
    for seed in (11, 12):
        tables.accumulate(*analyse(model, natural_rgb(64, 80, seed)))
    model.set_tables(tables, rate=5)
    exporter = CwicExporter(model)
    exporter.name, exporter.kind = CWIC, "learned"
    E.export_savedmodel(exporter, exported["out"])
    return model


@pytest.fixture(scope="module")
def server(exported, cwic_model):
    from tfcomp.serving import ModelServer
    srv = ModelServer(os.path.join(exported["out"], "models.config"), rest_port=0, grpc_port=0,
                      host="127.0.0.1").start()
    try:
        yield srv
    finally:
        srv.stop()


def _rest(srv, model, body):
    req = urllib.request.Request(f"http://127.0.0.1:{srv.rest_port}/v1/models/{model}:predict",
                                 data=json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def test_rest_compress_decompress_round_trip_equals_the_cli(server, images, cli_files):
    for crop, (file, png) in zip(images["crops"], cli_files):
        out = _rest(server, HIDING, {"signature_name": "compress",
                                     "inputs": {"image": crop.tolist(), "quality": 50}})["outputs"]
        data = base64.b64decode(out["jpeg_bytes"]["b64"])
        assert data == file
        assert np.array_equal(np.asarray(out["hidden"], np.uint8).shape, crop.shape)
        out = _rest(server, HIDING, {"signature_name": "decompress",
                                     "inputs": {"jpeg_bytes": {"b64": base64.b64encode(data)
                                                               .decode()}}})["outputs"]
        np.testing.assert_array_equal(np.asarray(out, np.uint8), png)


def test_grpc_round_trip_through_the_official_stub(server, images, cli_files):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        req = predict_pb2.PredictRequest()
        req.model_spec.name, req.model_spec.signature_name = HIDING, "compress"
        req.inputs["image"].CopyFrom(tf.make_tensor_proto(images["crops"][1]))
        req.inputs["quality"].CopyFrom(tf.make_tensor_proto(50, dtype=tf.int32))
        data = tf.make_ndarray(stub.Predict(req, timeout=120).outputs["jpeg_bytes"]).item()
        assert data == cli_files[1][0]
        req = predict_pb2.PredictRequest()
        req.model_spec.name, req.model_spec.signature_name = HIDING, "decompress"
        req.inputs["jpeg_bytes"].CopyFrom(tf.make_tensor_proto(data))
        image = tf.make_ndarray(stub.Predict(req, timeout=120).outputs["image"])
        np.testing.assert_array_equal(image, cli_files[1][1])


def test_server_loads_the_bpg_op_from_the_manifest(server, registered):
    """The JPD-SE SavedModel (BPG op) is served: decompress over REST."""
    from tfcomp.jpdse.export import synthetic_labels
    from tfcomp.jpdse.semantic import receiver_semantics
    crop = E.photo_crops(24, 32)[2][1]
    labels, edges = receiver_semantics(synthetic_labels(crop), None, scale=4)
    stream = bpg.encode(crop, 36)
    out = _rest(server, JPDSE, {"signature_name": "decompress", "inputs": {
        "bpg_bytes": {"b64": base64.b64encode(stream).decode()}, "labels": labels.tolist(),
        "edges": (edges > 0.5).astype(np.uint8).tolist()}})["outputs"]
    exporter = E.get_exporter(JPDSE)
    np.testing.assert_array_equal(np.asarray(out, np.uint8),
                                  exporter.reference_decode(bpg.decode(stream), labels, edges))


def test_rest_round_trip_of_cwic_equals_the_codec(server, cwic_model):
    """CWIC's SavedModel (tensorflow-compression's ops, imported from the manifest) over REST:
    the same file and pixels as the codec's own path (what `tfcomp compress --codec cwic`
    runs)."""
    from tfcomp.cwic.codec import compress_array, decompress_array
    crop = E.photo_crops(32, 48)[1][1]
    want = compress_array(cwic_model, cwic_model.tables, 5, crop)
    out = _rest(server, CWIC, {"signature_name": "compress",
                               "inputs": {"image": crop.tolist()}})["outputs"]
    data = base64.b64decode(out["cwic_bytes"]["b64"])
    assert data == want
    image = _rest(server, CWIC, {"signature_name": "decompress", "inputs": {
        "cwic_bytes": {"b64": base64.b64encode(data).decode()}}})["outputs"]
    np.testing.assert_array_equal(np.asarray(image, np.uint8),
                                  decompress_array(cwic_model, cwic_model.tables, data))


def _rest_status(srv, model, body):
    """(HTTP status, JSON body) of a predict request, errors included."""
    req = urllib.request.Request(f"http://127.0.0.1:{srv.rest_port}/v1/models/{model}:predict",
                                 data=json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_served_codec_signatures_answer_bad_input_with_4xx(server, images, cli_files):
    """Garbage, truncated and forged files and malformed images sent to the codec signatures
    get a 4xx with an {"error"}; a valid request still succeeds afterwards."""
    file, png = cli_files[0]
    b64 = lambda data: {"b64": base64.b64encode(data).decode()}  # noqa: E731
    bad = [
        (HIDING, {"signature_name": "decompress", "inputs": {"jpeg_bytes": b64(b"not a jpeg")}}),
        (HIDING, {"signature_name": "decompress", "inputs": {"jpeg_bytes": b64(file[:40])}}),
        (HIDING, {"signature_name": "decompress", "inputs": {"jpeg_bytes": "no-b64"}}),
        (HIDING, {"signature_name": "compress", "inputs": {"image": [[1, 2], [3]],
                                                           "quality": 50}}),
        (HIDING, {"signature_name": "compress", "inputs": {"image": images["crops"][0].tolist()}}),
        (CWIC, {"signature_name": "decompress",
                "inputs": {"cwic_bytes": b64(b"CWIC\x03" + bytes(40))}}),
        (HIDING, {"signature_name": "nope", "inputs": {"jpeg_bytes": b64(file)}}),
    ]
    for model, body in bad:
        status, reply = _rest_status(server, model, body)
        assert 400 <= status < 500 and "error" in reply, (model, body["signature_name"], status)
    out = _rest(server, HIDING, {"signature_name": "decompress",
                                 "inputs": {"jpeg_bytes": b64(file)}})["outputs"]
    np.testing.assert_array_equal(np.asarray(out, np.uint8), png)
