"""Deployment export: SavedModel (TF Serving layout, stock-TF loadable, saved_model_cli),
TFLite float32/float16/int8 (dynamic and tile), ONNX, models.config, parity against TF."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfcomp import export as E
from tfcomp import models
from tfcomp.cli import main
from tfcomp.codecs import get_codec
from tfcomp.restorer.model import build_restorer
from tfcomp.restorer.restore import restore_array

NAME = "tiny-export-test"
BIN = os.path.dirname(sys.executable)


def tiny_restorer(seed=3, channels=3):
    """The restorer architecture at widths 8 with non-zero biases and distinct PReLU slopes."""
    tf.keras.utils.set_random_seed(seed)
    model = build_restorer(channels=channels, widths=(8, 8, 8, 8), name="tiny")
    rng = np.random.default_rng(seed)
    for v in model.variables:
        if "bias" in v.name:
            v.assign(rng.normal(0, 0.05, v.shape).astype(np.float32))
        elif "alpha" in v.name:
            v.assign(rng.uniform(0.05, 0.3, v.shape).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A tiny restorer registered as a ModelSpec (weights in a temp file) for the CLI."""
    folder = tmp_path_factory.mktemp("weights")
    model = tiny_restorer()
    weights = str(folder / "tiny.weights.h5")
    model.save_weights(weights)
    spec = models.ModelSpec(name=NAME, kind="restorer", description="test", builder=
                            "tfcomp.restorer.model:build_restorer",
                            builder_kwargs={"channels": 3, "widths": (8, 8, 8, 8)},
                            weights="absent.weights.h5")
    models.register(spec)
    try:
        yield model, weights
    finally:
        models._REGISTRY.pop(NAME, None)


@pytest.fixture(scope="module")
def exported(registered, tmp_path_factory):
    """`tfcomp export --format all --check` of the registered tiny model."""
    model, weights = registered
    out = str(tmp_path_factory.mktemp("exported"))
    check_json = str(tmp_path_factory.mktemp("check") / "parity.json")
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["export", "--model", NAME, "--format", "all", "--out", out,
                     "--weights", weights, "--check", "--check-json", check_json])
    return {"model": model, "weights": weights, "out": out, "code": code, "stdout": buf.getvalue(),
            "sm": os.path.join(out, NAME, "1"), "check_json": check_json}


@pytest.fixture(scope="module")
def subprocesses(exported, tmp_path_factory):
    """saved_model_cli show/run and a tensorflow-only loader, started together (each imports TF)."""
    tmp = tmp_path_factory.mktemp("sub")
    x = E.parity_images(40, 56)[0][3].astype(np.float32)[None] / 255.0
    np.save(tmp / "x.npy", x)
    jpeg = E.parity_images(40, 56)[1][2]
    (tmp / "in.jpg").write_bytes(jpeg)
    loader = (
        "import sys, numpy as np, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "y = m.signatures['serving_default'](image=tf.constant(np.load(sys.argv[2])))['restored']\n"
        "np.save(sys.argv[3], y.numpy())\n"
        "png = m.signatures['restore_bytes'](image_bytes=tf.constant([open(sys.argv[4], 'rb')"
        ".read()]))['restored_bytes'].numpy()[0]\n"
        "open(sys.argv[5], 'wb').write(png)\n"
        "print('MODULES', sorted(k for k in sys.modules if k.split('.')[0] in "
        "('tfcomp', 'tensorflow_compression', 'tensorflow_addons')))\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    procs = {
        "show": [os.path.join(BIN, "saved_model_cli"), "show", "--dir", exported["sm"], "--all"],
        "run": [os.path.join(BIN, "saved_model_cli"), "run", "--dir", exported["sm"], "--tag_set",
                "serve", "--signature_def", "serving_default", "--inputs",
                f"image={tmp / 'x.npy'}", "--outdir", str(tmp / "cli_out")],
        "tfonly": [sys.executable, "-I", "-c", loader, exported["sm"], str(tmp / "x.npy"),
                   str(tmp / "y.npy"), str(tmp / "in.jpg"), str(tmp / "out.png")],
    }
    started = {k: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=env, cwd=str(tmp)) for k, cmd in procs.items()}
    results = {}
    for k, p in started.items():
        out, err = p.communicate(timeout=180)
        results[k] = (p.returncode, out, err)
    return {"tmp": tmp, "x": x, "jpeg": jpeg, "results": results}


def test_export_all_with_check(exported):
    assert exported["code"] == 0, exported["stdout"]
    out, text = exported["out"], exported["stdout"]
    for f in [f"{NAME}-float32.tflite", f"{NAME}-float16.tflite",
              f"{NAME}.onnx", "models.config", f"{NAME}/1/saved_model.pb"]:
        assert os.path.isfile(os.path.join(out, f)), f
    # int8 misses its tolerance on the shipped restorers: only written when asked for
    assert not os.path.exists(os.path.join(out, f"{NAME}-int8.tflite"))
    assert "parity against TF" in text and "FAIL" not in text
    for runtime in ("tf.saved_model", "restore_bytes", "tf.lite", "ai-edge-litert", "onnxruntime"):
        assert runtime in text
    assert not [f for f in os.listdir(out) if f.startswith(".")]  # no temp files left


def test_savedmodel_layout_manifest_and_models_config(exported):
    sm = exported["sm"]
    assert os.path.isdir(os.path.join(sm, "variables"))
    with open(os.path.join(sm, "assets.extra", "tfcomp.json")) as f:
        manifest = json.load(f)
    assert manifest["custom_ops"] == [] and manifest["kind"] == "restorer"
    assert manifest["version"] == 1 and manifest["model"] == NAME
    assert set(manifest["signatures"]) == {"serving_default", "restore_bytes"}
    from tfcomp.serving.config import read_config
    entries = read_config(os.path.join(exported["out"], "models.config"))
    assert [(e.name, e.base_path, e.policy) for e in entries] == [
        (NAME, os.path.join(exported["out"], NAME), "all")]


def test_parity_tolerances_per_quantisation(exported, tmp_path):
    int8 = E.export_tflite(exported["model"], str(tmp_path), NAME, quantize="int8")
    done = [("savedmodel", "float32", exported["sm"])] + [
        ("tflite", q, os.path.join(exported["out"], f"{NAME}-{q}.tflite"))
        for q in E.ALL_QUANTIZATIONS] + [("tflite", "int8", int8)] + [
        ("onnx", "float32", os.path.join(exported["out"], f"{NAME}.onnx"))]
    rows = E.parity(exported["model"], artifacts=done, name=NAME)
    by = {(r["format"], r["quantization"], r["runtime"]): r for r in rows}
    assert {k[2] for k in by} >= {"tf.lite", "ai-edge-litert", "onnxruntime", "tf.saved_model"}
    assert all(r["ok"] for r in rows), E.format_parity(rows)
    assert by[("savedmodel", "float32", "tf.saved_model")]["max_abs"] == 0.0
    assert by[("savedmodel", "uint8", "restore_bytes")]["max_abs"] <= 1 / 255 + 1e-9
    for rt in ("tf.lite", "ai-edge-litert"):
        assert by[("tflite", "float32", rt)]["max_abs"] <= 1e-5
        assert by[("tflite", "float16", rt)]["max_abs"] <= 1e-2
        assert by[("tflite", "float16", rt)]["delta_db"] <= 0.1
        assert by[("tflite", "int8", rt)]["delta_db"] <= 1.0
        assert by[("tflite", "int8", rt)]["psnr_vs_tf"] >= 30.0
        assert by[("tflite", "int8", rt)]["max_abs"] > 0  # really quantised
    assert by[("onnx", "float32", "onnxruntime")]["max_abs"] <= 1e-5
    # the network ran on the JPEG and was scored against the original crop (not the reverse)
    for row in rows:
        assert 20 < row["psnr_in"] < 40 and row["psnr_tf"] < 60, E.format_parity(rows)
    # the two TFLite runtimes agree exactly
    for q in E.QUANTIZATIONS:
        assert by[("tflite", q, "tf.lite")]["max_abs"] == by[("tflite", q, "ai-edge-litert")][
            "max_abs"]


def test_tile_variants_are_static_and_match(exported, tmp_path):
    model = exported["model"]
    done = [("tflite", "float32", E.export_tflite(model, str(tmp_path), NAME, tile=32)),
            ("onnx", "float32", E.export_onnx(model, str(tmp_path), NAME, tile=32, opset=13))]
    assert os.path.basename(done[0][2]) == f"{NAME}-tile32-float32.tflite"
    interp = tf.lite.Interpreter(model_path=done[0][2])
    assert list(interp.get_input_details()[0]["shape_signature"]) == [1, 32, 32, 3]
    import onnx
    proto = onnx.load(done[1][2])
    assert proto.opset_import[0].version == 13
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 32, 32, 3]
    assert proto.graph.input[0].name == "image" and proto.graph.output[0].name == "restored"
    # a one-slope PReLU is exported per channel: tf.lite's XNNPACK gets a [1,1,1] slope wrong
    rows = E.parity(model, artifacts=done)
    assert all(r["ok"] and r["max_abs"] <= 1e-5 for r in rows), E.format_parity(rows)
    with pytest.raises(E.InputError):
        E.TFLiteRunner(done[0][2])(np.zeros((1, 40, 32, 3), np.float32))
    # serving/litert_restore.py: LiteRT only, overlapping tiles = one whole-image pass
    import importlib.util
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(
        "litert_restore", os.path.join(root, "serving", "litert_restore.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    case = E.parity_images(50, 70)[1]
    from PIL import Image
    Image.fromarray(case[3]).save(tmp_path / "in.png")
    assert script.main([str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model",
                        done[0][2], "--margin", "8"]) == 0
    got = np.asarray(Image.open(tmp_path / "out.png"))
    assert np.abs(got.astype(int) - restore_array(model, case[3])).max() <= 1


def test_dynamic_tflite_takes_any_size(exported):
    path = os.path.join(exported["out"], f"{NAME}-float32.tflite")
    runner = E.TFLiteRunner(path, "litert")
    assert runner.fixed_shape is None
    for h, w in [(17, 23), (40, 8)]:
        x = np.random.default_rng(h).uniform(0, 1, (1, h, w, 3)).astype(np.float32)
        want = np.clip(exported["model"](x).numpy(), 0, 1)
        np.testing.assert_allclose(runner(x), want, atol=1e-5)


def test_saved_model_cli_show_and_run(subprocesses, exported):
    code, out, err = subprocesses["results"]["show"]
    assert code == 0, err
    assert "signature_def['serving_default']" in out and "signature_def['restore_bytes']" in out
    assert "inputs['image'] tensor_info" in out and "outputs['restored_bytes']" in out
    assert "DT_STRING" in out and "(-1, -1, -1, 3)" in out
    code, out, err = subprocesses["results"]["run"]
    assert code == 0, err
    y = np.load(subprocesses["tmp"] / "cli_out" / "restored.npy")
    want = np.clip(exported["model"](subprocesses["x"]).numpy(), 0, 1)
    np.testing.assert_allclose(y, want, atol=1e-6)


def test_savedmodel_runs_in_a_tensorflow_only_process(subprocesses, exported):
    code, out, err = subprocesses["results"]["tfonly"]
    assert code == 0, err
    assert "MODULES []" in out  # neither tfcomp nor tensorflow_compression / addons needed
    y = np.load(subprocesses["tmp"] / "y.npy")
    want = np.clip(exported["model"](subprocesses["x"]).numpy(), 0, 1)
    np.testing.assert_allclose(y, want, atol=1e-6)
    png = tf.io.decode_png((subprocesses["tmp"] / "out.png").read_bytes()).numpy()
    ref = restore_array(exported["model"], get_codec("jpeg").decode(subprocesses["jpeg"]))
    assert png.shape == ref.shape and np.abs(png.astype(int) - ref).max() <= 1


def test_bytes_signature_decodes_png_and_jpeg_and_refuses_junk(exported):
    fn = tf.saved_model.load(exported["sm"]).signatures["restore_bytes"]
    case = E.parity_images(24, 40)[2]
    png = tf.io.encode_png(case[3]).numpy()
    outs = fn(image_bytes=tf.constant([case[2], png]))["restored_bytes"].numpy()
    ref = restore_array(exported["model"], case[3])
    for out in outs:  # the JPEG (INTEGER_ACCURATE = Pillow's decode) and its PNG agree
        assert np.abs(tf.io.decode_png(out).numpy().astype(int) - ref).max() <= 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a PNG or JPEG"):
        fn(image_bytes=tf.constant([b"GIF89a not an image"]))
    big = bytearray(png)
    big[16:24] = (100000).to_bytes(4, "big") + (100000).to_bytes(4, "big")  # forged IHDR
    with pytest.raises(tf.errors.InvalidArgumentError, match="too large"):
        fn(image_bytes=tf.constant([bytes(big)]))


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_export_user_errors_are_one_line(capsys, registered, exported, tmp_path):
    _, weights = registered
    cases = [
        (["--format", "savedmodel", "--quantize", "int8"], "--quantize applies to --format tflite"),
        (["--format", "savedmodel", "--tile", "64"], "--tile applies to tflite and onnx"),
        (["--format", "tflite", "--tile", "3"], "tile must be an integer in 8..4096"),
        (["--format", "onnx", "--opset", "9"], "opset must be in 13..17"),
        (["--format", "savedmodel", "--version", "0"], "--version must be a positive integer"),
    ]
    for extra, message in cases:
        code, _, err = run_cli(capsys, "export", "--model", NAME, "--weights", weights,
                               "--out", tmp_path, *extra)
        assert code == 1 and message in err and err.count("\n") == 1, err
    code, _, err = run_cli(capsys, "export", "--model", "no-such-model", "--format", "onnx",
                           "--out", tmp_path)
    assert code == 1 and "unknown model 'no-such-model'" in err
    code, _, err = run_cli(capsys, "export", "--model", NAME, "--format", "onnx", "--out", tmp_path)
    assert code == 1 and "has no weights installed" in err
    code, _, err = run_cli(capsys, "export", "--model", NAME, "--weights", weights, "--format",
                           "savedmodel", "--out", exported["out"])
    assert code == 1 and "already exists" in err and "--force" in err
    assert not [f for f in os.listdir(tmp_path)]  # nothing written by failed commands


def _record_rows(path):
    """The rows of a `--check-json` file, strictly parsed, with "inf" / null back as floats."""
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")
    with open(path) as f:
        record = json.load(f, parse_constant=refuse)
    num = {"inf": float("inf"), "-inf": float("-inf"), None: float("nan")}
    return record, [{k: num.get(v, v) if k.startswith("psnr") else v for k, v in r.items()}
                    for r in record["rows"]]


def test_check_json_holds_the_printed_rows_and_settings(exported):
    from tfcomp.zoo import weights_digest
    record, rows = _record_rows(exported["check_json"])
    table = E.format_parity(rows).splitlines()
    printed = exported["stdout"].splitlines()
    start = printed.index(table[0])
    assert printed[start:start + len(table)] == table  # same rows, same numbers
    assert len(rows) == len(table) - 2 == 7  # header and rule; SavedModel 2, TFLite 4, ONNX 1
    assert f"{exported['check_json']}: the parity rows as JSON" in exported["stdout"]
    assert record["model"] == record["name"] == NAME and record["check_quality"] == 20
    assert record["check_size"] == [96, 128] and record["format"] == "all"
    assert record["weights"] == os.path.abspath(exported["weights"])
    assert record["weights_sha256"] == weights_digest(exported["weights"])
    assert all(r["ok"] and r["images"] == 3 and r["size"] == [96, 128] for r in rows)
    assert rows[0]["psnr_vs_tf"] == float("inf") and rows[0]["tolerance"] == E.TOLERANCES[
        "float32"]


def test_check_json_needs_check_and_is_written_when_a_row_fails(capsys, registered, tmp_path,
                                                               monkeypatch):
    _, weights = registered
    out, check_json = tmp_path / "out", tmp_path / "parity.json"
    args = ("export", "--model", NAME, "--weights", weights, "--format", "tflite", "--out", out,
            "--check-json", check_json)
    code, stdout, err = run_cli(capsys, *args)
    assert code == 2 and err == "tfcomp export: error: --check-json needs --check\n", err
    assert not stdout and not os.path.exists(out) and not os.path.exists(check_json)
    monkeypatch.setitem(E.TOLERANCES["float32"], "max_abs", -1.0)  # every float32 row fails
    code, stdout, err = run_cli(capsys, *args, "--check")
    assert code == 1 and "parity outside tolerance" in err and "FAIL" in stdout
    record, rows = _record_rows(check_json)
    assert record["format"] == "tflite" and record["quantize"] is None
    assert [(r["runtime"], r["ok"]) for r in rows] == [("tf.lite", False),
                                                        ("ai-edge-litert", False)]
    assert E.format_parity(rows) in stdout
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".")] == []  # no temp file


def test_versions_force_and_models_config_keeps_hand_edits(registered, tmp_path):
    import shutil
    model, _ = registered
    out = tmp_path / "out"
    E.export_savedmodel(model, str(out), "a", version=1)
    other = tmp_path / "elsewhere"
    config = out / "models.config"
    config.write_text(  # a hand-edited version policy and a model stored elsewhere
        'model_config_list {\n'
        f'  config {{ name: "a" base_path: "{out / "a"}" model_platform: "tensorflow"\n'
        '           model_version_policy { specific { versions: 1 } } }\n'
        f'  config {{ name: "kept" base_path: "{other}" model_platform: "tensorflow" }}\n'
        '}\n')
    shutil.copytree(out / "a" / "1", out / "a" / "2")  # layouts only: no need to re-export
    shutil.copytree(out / "a" / "1", out / "b" / "1")
    E.update_models_config(str(out))
    text = config.read_text()
    assert 'name: "b"' in text and str(out / "b") in text
    E.update_models_config(str(out), serving_base="/models")
    pb = (out / "a" / "2" / "saved_model.pb").stat().st_mtime_ns
    E.export_savedmodel(model, str(out), "a", version=2, force=True)
    assert (out / "a" / "2" / "saved_model.pb").stat().st_mtime_ns != pb
    assert E.find_savedmodels(str(out)) == {"a": [1, 2], "b": [1]}
    from tfcomp.serving.config import parse_config_text
    parsed = parse_config_text(config.read_text())
    entries = {c.name: c for c in parsed.model_config_list.config}
    assert set(entries) == {"a", "b", "kept"}
    assert list(entries["a"].model_version_policy.specific.versions) == [1]  # hand edit kept
    assert entries["b"].base_path == "/models/b" and entries["kept"].base_path == str(other)
    shutil.rmtree(out / "b")
    E.update_models_config(str(out), serving_base="/models")
    entries = parse_config_text(config.read_text()).model_config_list.config
    assert [(c.name, c.base_path) for c in entries] == [("a", "/models/a"), ("kept", str(other))]


def test_a_new_model_needs_only_its_registry_entry(registered, tmp_path):
    """custom_ops and exporter come from the ModelSpec; the manifest tells loaders to import."""
    _, weights = registered
    spec = models.ModelSpec(name="tiny-custom-ops", kind="restorer", description="test",
                            builder="tfcomp.restorer.model:build_restorer",
                            builder_kwargs={"channels": 3, "widths": (8, 8, 8, 8)},
                            weights="absent.weights.h5", custom_ops=("tensorflow_compression",),
                            exporter="tfcomp.export:ImageToImageExporter")
    models.register(spec)
    try:
        path = E.export_savedmodel("tiny-custom-ops", str(tmp_path), weights=weights,
                                   update_config=False)
    finally:
        models._REGISTRY.pop("tiny-custom-ops", None)
    with open(os.path.join(path, "assets.extra", "tfcomp.json")) as f:
        manifest = json.load(f)
    assert manifest["custom_ops"] == ["tensorflow_compression"]
    assert "import tensorflow_compression" in manifest["load"]
    assert manifest["weights"] == os.path.abspath(weights)


def test_quality_gated_restorer_exports_with_parity(tmp_path):
    """The blind model's quality gate (block-DCT statistics, dense layers, blend) survives
    SavedModel, TFLite and ONNX export: float outputs equal TF's."""
    tf.keras.utils.set_random_seed(4)
    model = build_restorer(widths=(8, 8, 8, 8), name="tiny", quality_gate=True)
    dense = model.get_layer("gate_dense2")  # a gate that really varies with the image
    dense.set_weights([np.random.default_rng(1).normal(0, 1, dense.kernel.shape)
                       .astype(np.float32), np.zeros(3, np.float32)])
    out = str(tmp_path)
    done = [("savedmodel", "float32", E.export_savedmodel(model, out, "gated",
                                                          update_config=False)),
            ("tflite", "float32", E.export_tflite(model, out, "gated")),
            ("onnx", "float32", E.export_onnx(model, out, "gated", opset=13))]
    rows = E.parity(model, artifacts=done)
    assert all(r["ok"] for r in rows), E.format_parity(rows)
    assert all(r["max_abs"] <= 1e-5 for r in rows if "max_abs" in r), E.format_parity(rows)
