"""`tfcomp serve`: TF Serving's REST and gRPC APIs on a live in-process server (127.0.0.1, free
ports), several models and versions, the same numbers as TF, clean 4xx errors, the clients,
the load benchmark, and graceful SIGTERM shutdown of the CLI."""

import base64
import concurrent.futures
import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from tfcomp import export as E
from tfcomp.errors import InputError
from tfcomp.restorer.model import build_restorer
from tfcomp.restorer.restore import restore_array
from tfcomp.serving import ModelServer
from tfcomp.serving.config import read_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT = 1 << 20  # request body limit of the test server


def tiny(seed, channels=3):
    tf.keras.utils.set_random_seed(seed)
    model = build_restorer(channels=channels, widths=(8, 8, 8, 8), name=f"tiny{seed}")
    rng = np.random.default_rng(seed)
    for v in model.variables:
        if "bias" in v.name or "alpha" in v.name:
            v.assign(rng.uniform(0.0, 0.2, v.shape).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("models"))
    m1, m2, gray = tiny(1), tiny(2), tiny(5, channels=1)
    E.export_savedmodel(m1, out, "restorer", version=1)
    E.export_savedmodel(m2, out, "restorer", version=2)
    E.export_savedmodel(gray, out, "gray", version=7)
    srv = ModelServer(os.path.join(out, "models.config"), rest_port=0, grpc_port=0,
                      host="127.0.0.1", max_body_bytes=LIMIT).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}")
    try:
        yield {"srv": srv, "url": f"http://127.0.0.1:{srv.rest_port}", "models": {1: m1, 2: m2},
               "gray": gray, "out": out, "channel": channel}
    finally:
        channel.close()
        srv.stop()


def rest(server, path, body=None, raw=None, method=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(server["url"] + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def image(h=12, w=10, seed=0, c=3):
    return np.random.default_rng(seed).uniform(0, 1, (1, h, w, c)).astype(np.float32)


def tf_out(model, x):
    return np.clip(model(x).numpy(), 0, 1)


def jpeg_case(h=20, w=28):
    case = E.parity_images(h, w, quality=20)[0]
    return case[2], case[3]  # JPEG bytes, Pillow's decode


# -- REST ---------------------------------------------------------------------------------------
def test_rest_status_and_metadata(server):
    code, body = rest(server, "/v1/models/restorer")
    assert code == 200
    assert [(s["version"], s["state"], s["status"]["error_code"])
            for s in body["model_version_status"]] == [("1", "AVAILABLE", "OK"),
                                                        ("2", "AVAILABLE", "OK")]
    code, body = rest(server, "/v1/models/restorer/versions/1")
    assert code == 200 and [s["version"] for s in body["model_version_status"]] == ["1"]
    code, body = rest(server, "/v1/models/gray/metadata")
    assert code == 200 and body["model_spec"] == {"name": "gray", "version": "7",
                                                  "signature_name": ""}
    sigs = body["metadata"]["signature_def"]["signature_def"]
    image_in = sigs["serving_default"]["inputs"]["image"]
    assert image_in["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in image_in["tensor_shape"]["dim"]] == ["-1", "-1", "-1", "1"]
    assert sigs["restore_bytes"]["outputs"]["restored_bytes"]["dtype"] == "DT_STRING"


def test_rest_predict_row_and_columnar_match_tf(server):
    x = image()
    for version, model in server["models"].items():
        want = tf_out(model, x)
        code, body = rest(server, f"/v1/models/restorer/versions/{version}:predict",
                          {"instances": x.tolist()})
        assert code == 200
        np.testing.assert_array_equal(np.array(body["predictions"], np.float32), want)
        code, body = rest(server, f"/v1/models/restorer/versions/{version}:predict",
                          {"signature_name": "serving_default", "inputs": {"image": x.tolist()}})
        assert code == 200
        np.testing.assert_array_equal(np.array(body["outputs"], np.float32), want)
    # no version: the latest (2); two instances in one row-format request
    x2 = np.concatenate([x, image(seed=1)])
    code, body = rest(server, "/v1/models/restorer:predict", {"instances": [{"image": v} for v in
                                                                            x2.tolist()]})
    assert code == 200 and len(body["predictions"]) == 2
    np.testing.assert_array_equal(np.array(body["predictions"], np.float32),
                                  tf_out(server["models"][2], x2))
    g = image(c=1)
    code, body = rest(server, "/v1/models/gray:predict", {"inputs": g.tolist()})
    assert code == 200
    np.testing.assert_array_equal(np.array(body["outputs"], np.float32), tf_out(server["gray"], g))


def test_rest_bytes_signature_round_trip_b64(server):
    jpeg, decoded = jpeg_case()
    code, body = rest(server, "/v1/models/restorer/versions/1:predict", {
        "signature_name": "restore_bytes",
        "instances": [{"b64": base64.b64encode(jpeg).decode()}]})
    assert code == 200
    png = base64.b64decode(body["predictions"][0]["b64"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    got = tf.io.decode_png(png).numpy()
    want = restore_array(server["models"][1], decoded)
    assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 1
    code, body = rest(server, "/v1/models/restorer/versions/1:predict", {
        "signature_name": "restore_bytes",
        "inputs": {"image_bytes": [{"b64": base64.b64encode(jpeg).decode()}]}})
    assert code == 200 and base64.b64decode(body["outputs"][0]["b64"]) == png


@pytest.mark.parametrize("path,body,status,fragment", [
    ("/v1/models/restorer:predict", b"{not json", 400, "JSON Parse error"),
    ("/v1/models/restorer:predict", b"[1, 2]", 400, "must be a JSON object"),
    ("/v1/models/restorer:predict", b'{"instances": [[0.5, 0.5, 0.5]]}', 400, "must have shape"),
    ("/v1/models/restorer:predict", b'{"inputs": [[[["a", "b", "c"]]]]}', 400, "expected float"),
    ("/v1/models/restorer:predict", b'{"instances": [[[[1]]], [[[1, 2]]]]}', 400, "shape"),
    ("/v1/models/restorer:predict", b'{"instances": [], "signature_name": 3}', 400, "must be"),
    ("/v1/models/restorer:predict", b'{"instances": [1], "inputs": [1]}', 400, "exactly one"),
    ("/v1/models/restorer:predict", b'{"signature_name": "nope", "instances": [1]}', 400,
     'signature key "nope" not found'),
    ("/v1/models/restorer:predict", b'{"signature_name": "restore_bytes", "instances": '
     b'[{"b64": "@@@"}]}', 400, "invalid base64"),
    ("/v1/models/restorer:predict", b'{"signature_name": "restore_bytes", "instances": '
     b'[{"b64": "R0lGODlh"}]}', 400, "not a PNG or JPEG"),
    ("/v1/models/restorer/versions/9:predict", b'{"instances": [1]}', 404, "Specific(restorer, 9)"),
    ("/v1/models/nope:predict", b'{"instances": [1]}', 404, "Servable not found"),
    ("/v1/models/restorer/labels/stable:predict", b'{"instances": [1]}', 404, "label"),
    ("/v1/models/restorer:classify", b'{"instances": [1]}', 501, "only :predict"),
    ("/v2/whatever", b"{}", 404, "Malformed request"),
])
def test_rest_client_errors_then_keeps_serving(server, path, body, status, fragment):
    code, reply = rest(server, path, raw=body)
    assert code == status and set(reply) == {"error"} and fragment in reply["error"], reply
    code, _ = rest(server, "/v1/models/restorer:predict", {"instances": image(4, 4).tolist()})
    assert code == 200


def test_rest_unknown_model_and_version_status(server):
    assert rest(server, "/v1/models/nope")[0] == 404
    assert rest(server, "/v1/models/restorer/versions/3")[0] == 404
    assert rest(server, "/v1/models/restorer/versions/3/metadata")[0] == 404


def test_rest_body_limit_413_and_length_required(server):
    port = server["srv"].rest_port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest("POST", "/v1/models/restorer:predict")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(LIMIT + 1))
    conn.endheaders()  # the body is never sent: the server answers from the header
    resp = conn.getresponse()
    assert resp.status == 413 and "exceeds the limit" in json.loads(resp.read())["error"]
    conn.close()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /v1/models/restorer:predict HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100).split(b"\r\n")[0].endswith(b"411 Length Required")
    # Expect: 100-continue is refused before the upload
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest("POST", "/v1/models/restorer:predict")
    conn.putheader("Content-Length", str(10 * LIMIT))
    conn.putheader("Expect", "100-continue")
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    # a real over-limit body (a big float image) sent in full
    big = json.dumps({"instances": image(160, 160).tolist()}).encode()
    assert len(big) > LIMIT
    try:
        code, _ = rest(server, "/v1/models/restorer:predict", raw=big)
        assert code == 413
    except (ConnectionError, urllib.error.URLError):
        pass  # the server may close before the client finished sending
    assert rest(server, "/v1/models/restorer:predict",
                {"instances": image(4, 4).tolist()})[0] == 200


def test_keep_alive_connection_serves_several_requests(server):
    conn = http.client.HTTPConnection("127.0.0.1", server["srv"].rest_port, timeout=30)
    for i in range(3):
        body = json.dumps({"instances": image(5, 5, seed=i).tolist()})
        conn.request("POST", "/v1/models/restorer:predict", body)
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
    conn.request("POST", "/v1/models/restorer:predict", "{bad")
    resp = conn.getresponse()
    assert resp.status == 400
    resp.read()
    conn.request("GET", "/v1/models/gray")
    assert conn.getresponse().status == 200
    conn.close()


# -- gRPC ---------------------------------------------------------------------------------------
def predict_request(name, x=None, version=None, signature=None, key="image"):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    if version is not None:
        req.model_spec.version.value = version
    if signature:
        req.model_spec.signature_name = signature
    if x is not None:
        req.inputs[key].CopyFrom(tf.make_tensor_proto(x))
    return req


def test_grpc_predict_metadata_status(server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server["channel"])
    x = image(9, 13)
    for version, model in server["models"].items():
        resp = stub.Predict(predict_request("restorer", x, version), timeout=30)
        assert resp.model_spec.version.value == version
        assert resp.model_spec.signature_name == "serving_default"
        np.testing.assert_array_equal(tf.make_ndarray(resp.outputs["restored"]),
                                      tf_out(model, x))
    jpeg, decoded = jpeg_case()
    resp = stub.Predict(predict_request("restorer", np.array([jpeg], dtype=object),
                                        signature="restore_bytes", key="image_bytes"), timeout=30)
    assert resp.model_spec.version.value == 2
    got = tf.io.decode_png(resp.outputs["restored_bytes"].string_val[0]).numpy()
    assert np.abs(got.astype(int) - restore_array(server["models"][2], decoded)).max() <= 1
    req = get_model_metadata_pb2.GetModelMetadataRequest()
    req.model_spec.name = "gray"
    req.metadata_field.append("signature_def")
    meta = stub.GetModelMetadata(req, timeout=30)
    sigmap = get_model_metadata_pb2.SignatureDefMap()
    meta.metadata["signature_def"].Unpack(sigmap)
    assert meta.model_spec.version.value == 7
    assert {"serving_default", "restore_bytes"} <= set(sigmap.signature_def)
    status_stub = model_service_pb2_grpc.ModelServiceStub(server["channel"])
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "restorer"
    status = status_stub.GetModelStatus(req, timeout=30)
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE),
        (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]


@pytest.mark.parametrize("req,code,fragment", [
    (predict_request("nope", image(4, 4)), grpc.StatusCode.NOT_FOUND, "Servable not found"),
    (predict_request("restorer", image(4, 4), version=5), grpc.StatusCode.NOT_FOUND, "Specific"),
    (predict_request("restorer", image(4, 4).astype(np.float64)), grpc.StatusCode.INVALID_ARGUMENT,
     "must be float32"),
    (predict_request("restorer", image(4, 4)[0]), grpc.StatusCode.INVALID_ARGUMENT, "shape"),
    (predict_request("restorer", image(4, 4), key="x"), grpc.StatusCode.INVALID_ARGUMENT,
     "missing ['image']"),
    (predict_request("restorer", image(4, 4), signature="nope"),
     grpc.StatusCode.FAILED_PRECONDITION, "not found"),
])
def test_grpc_errors_then_keeps_serving(server, req, code, fragment):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server["channel"])
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(req, timeout=30)
    assert e.value.code() == code and fragment in e.value.details()
    assert stub.Predict(predict_request("restorer", image(4, 4)), timeout=30).outputs["restored"]


def test_grpc_refuses_a_splat_tensor_of_huge_declared_shape(server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server["channel"])
    req = predict_request("restorer")
    proto = req.inputs["image"]
    proto.dtype = tf.float32.as_datatype_enum
    for d in (1, 100000, 100000, 3):
        proto.tensor_shape.dim.add().size = d
    proto.float_val.append(0.5)  # one value "splatted" over 3e10 elements
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(req, timeout=30)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_concurrent_rest_and_grpc_requests(server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server["channel"])
    xs = [image(6 + i % 3, 7, seed=i) for i in range(12)]

    def call(i):
        x = xs[i]
        if i % 2:
            out = tf.make_ndarray(stub.Predict(predict_request("restorer", x, 1), timeout=60)
                                  .outputs["restored"])
        else:
            code, body = rest(server, "/v1/models/restorer/versions/1:predict",
                              {"instances": x.tolist()})
            assert code == 200
            out = np.array(body["predictions"], np.float32)
        return np.array_equal(out, tf_out(server["models"][1], x))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert all(pool.map(call, range(len(xs))))


# -- clients, benchmark, config, CLI --------------------------------------------------------------
def load_script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "serving", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rest_and_grpc_clients_write_the_restored_png(server, tmp_path, capsys):
    jpeg, decoded = jpeg_case()
    src = tmp_path / "in.jpg"
    src.write_bytes(jpeg)
    want = restore_array(server["models"][1], decoded)
    rest_client, grpc_client = load_script("rest_client"), load_script("grpc_client")
    assert rest_client.main([str(src), "-o", str(tmp_path / "r.png"), "--url", server["url"],
                             "--model", "restorer", "--version", "1"]) == 0
    assert rest_client.main([str(src), "-o", str(tmp_path / "f.png"), "--url", server["url"],
                             "--model", "restorer", "--version", "1", "--float"]) == 0
    assert grpc_client.main([str(src), "-o", str(tmp_path / "g.png"), "--target",
                             f"127.0.0.1:{server['srv'].grpc_port}", "--model", "restorer",
                             "--version", "1", "--status"]) == 0
    for f in ("r.png", "f.png", "g.png"):
        got = tf.io.decode_png((tmp_path / f).read_bytes()).numpy()
        assert np.abs(got.astype(int) - want).max() <= 1, f
    assert rest_client.main([str(src), "-o", str(tmp_path / "x.png"), "--url", server["url"],
                             "--model", "nope"]) == 1
    assert grpc_client.main([str(src), "-o", str(tmp_path / "x.png"), "--target",
                             f"127.0.0.1:{server['srv'].grpc_port}", "--model", "nope"]) == 1
    err = capsys.readouterr().err
    assert "HTTP 404" in err and "NOT_FOUND" in err and not (tmp_path / "x.png").exists()


def test_load_benchmark_runs_both_protocols(server):
    bench = load_script("bench_load")
    jpeg, pixels = bench.sample_request(32)
    rss = bench.rss_mb(os.getpid())
    assert rss and rss > 10
    for make in (lambda: bench.RestClient(server["url"], "restorer", "restore_bytes", jpeg, pixels),
                 lambda: bench.GrpcClient(f"127.0.0.1:{server['srv'].grpc_port}", "restorer",
                                          "serving_default", jpeg, pixels)):
        r = bench.run_load(make, clients=2, seconds=0.5)
        assert r["errors"] == 0 and r["requests"] >= 2 and r["p99_ms"] >= r["p50_ms"] > 0
    r = bench.run_load(lambda: bench.RestClient(server["url"], "nope", "restore_bytes", jpeg,
                                                pixels), clients=1, seconds=0.2, warmup=0)
    assert r["errors"] == r["requests"] > 0


def test_models_config_errors(tmp_path, server):
    cases = {
        "model_config_list { config { name: 'x' base_path: '/nonexistent' } ": "not a TF Serving",
        "model_config_list { }": "lists no models",
        "model_config_list { config { name: 'x' base_path: '%s' model_platform: 'pytorch' } }"
        % server["out"]: "model_platform",
        "model_config_list { config { name: 'x' base_path: '%s' } }"
        % os.path.join(server["out"], "restorer") + "model_config_list { }": "not a TF Serving",
    }
    for text, fragment in cases.items():
        path = tmp_path / "bad.config"
        path.write_text(text)
        with pytest.raises(InputError, match=fragment):
            read_config(str(path))
    path = tmp_path / "v.config"
    path.write_text("model_config_list { config { name: 'r' base_path: '%s' model_version_policy "
                    "{ specific { versions: 4 } } } }" % os.path.join(server["out"], "restorer"))
    with pytest.raises(InputError, match=r"versions \[4\] not found"):
        ModelServer(str(path), rest_port=None, grpc_port=None)
    # relative base_path (against the config's folder), latest policy, labels
    path = tmp_path / "rel.config"
    os.symlink(server["out"], tmp_path / "m")
    path.write_text("model_config_list { config { name: 'r' base_path: 'm/restorer' "
                    "version_labels { key: 'stable' value: 2 } } }")
    srv = ModelServer(str(path), rest_port=None, grpc_port=None)
    assert srv.registry.describe() == {"r": [2]}
    assert srv.registry.get("r", label="stable").version == 2


def test_serve_cli_starts_and_stops_on_sigterm(server):
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    config = os.path.join(server["out"], "models.config")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "serving", "serve.py"),
                             "--model-config", config,
                             "--rest-port", str(ports[0]), "--grpc-port", str(ports[1])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    try:
        url = f"http://127.0.0.1:{ports[0]}/v1/models/gray"
        deadline = time.time() + 240
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.time() < deadline
                time.sleep(0.3)
        conn = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=30)  # idle keep-alive
        conn.request("GET", "/v1/models/gray")
        conn.getresponse().read()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "serving gray versions [7]" in out and "ready in" in out and "stopped" in err
    bad = subprocess.run([sys.executable, "-m", "tfcomp", "serve", "--model-config",
                          "/nonexistent/models.config"], capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        "tfcomp serve: error: /nonexistent/models.config: no such model config file"]


# -- the TFLite browser demo (serving/web) in headless Chromium -----------------------------------
WEB = os.path.join(ROOT, "serving", "web")
CHROMIUM = next((p for p in ("chromium", "chromium-browser") if shutil.which(p)), None)


@pytest.mark.skipif(CHROMIUM is None or not os.path.isdir(
    os.path.join(WEB, "node_modules", "@tensorflow", "tfjs-tflite")),
    reason="needs Debian's chromium and `npm ci` in serving/web")
def test_browser_demo_in_headless_chromium(tmp_path):
    import http.server
    import threading
    from PIL import Image
    model = tiny(3)
    E.export_tflite(model, str(tmp_path), "demo", tile=32)
    case = E.parity_images(40, 56)[0]  # 40x56: several overlapping 32x32 tiles
    Image.fromarray(case[3]).save(tmp_path / "in.png")
    reports, got = [], threading.Event()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path):
            path = path.split("?", 1)[0]
            for prefix, folder in (("/web/", WEB), ("/data/", str(tmp_path))):
                if path.startswith(prefix) and ".." not in path:
                    return os.path.join(folder, path[len(prefix):])
            return os.path.join(str(tmp_path), "nonexistent")

        def do_POST(self):
            reports.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()
            got.set()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = (f"http://127.0.0.1:{httpd.server_address[1]}/web/index.html?model=/data/"
           "demo-tile32-float32.tflite&image=/data/in.png&report=/report&margin=8")
    proc = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                             "--no-first-run", "--no-default-browser-check",
                             f"--user-data-dir={tmp_path / 'profile'}", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        assert got.wait(120), "the page reported nothing"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # chromium and its own child processes
        except ProcessLookupError:
            pass
        proc.wait(30)
        httpd.shutdown()
        httpd.server_close()
    report = reports[0]
    assert report["ok"], report
    rgb = np.frombuffer(base64.b64decode(report["rgb"]), np.uint8).reshape(40, 56, 3)
    assert np.abs(rgb.astype(int) - restore_array(model, case[3])).max() <= 1
