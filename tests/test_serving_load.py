"""`tfcomp serve` under load and bad input: several threads send valid, malformed, oversized,
over-budget and slow (trickled) requests to a live REST server on 127.0.0.1; valid requests keep
succeeding, client errors get 4xx, slow clients are cut off, and memory returns near its start.
Bounded: a fixed number of requests per thread and a wall-clock cap."""

import base64
import concurrent.futures
import gc
import http.client
import io
import json
import os
import socket
import struct
import time

import numpy as np
import pytest
from PIL import Image

from tfcomp import export as E
from tfcomp import limits
from tfcomp.restorer.model import build_restorer
from tfcomp.serving import ModelServer

BODY_LIMIT = 256 << 10
TIMEOUT = 1.0  # the server's request timeout in this test
BUDGET = 32 * 32  # the pixel budget in this test
ROUNDS = 12  # requests per thread and kind
WALL = 90.0  # seconds the whole load may take


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import tensorflow as tf
    tf.keras.utils.set_random_seed(3)
    out = str(tmp_path_factory.mktemp("models"))
    E.export_savedmodel(build_restorer(channels=3, widths=(8, 8, 8, 8), name="tiny"), out, "m")
    srv = ModelServer(os.path.join(out, "models.config"), rest_port=0, grpc_port=None,
                      max_body_bytes=BODY_LIMIT, rest_threads=4, request_timeout=TIMEOUT,
                      max_connections=24).start()
    try:
        with limits.pixel_budget(BUDGET):
            yield srv
    finally:
        srv.stop()


def post(port, body, path="/v1/models/m:predict"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def image_body(h, w, seed=0):
    x = np.random.default_rng(seed).uniform(0, 1, (1, h, w, 3)).round(3)
    return json.dumps({"instances": x.tolist()})


def forged_jpeg_body():
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    struct.pack_into(">HH", data, data.find(b"\xff\xc0") + 5, 12000, 12000)
    return json.dumps({"signature_name": "restore_bytes",
                       "instances": [{"b64": base64.b64encode(bytes(data)).decode()}]})


def oversized(port):
    """A Content-Length over the limit: 413 from the header alone."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Length: "
                  + str(BODY_LIMIT * 8).encode() + b"\r\n\r\n")
        return int(s.recv(200).split(b" ")[1])


def trickled(port):
    """Headers one byte every 0.2 s, never finished: the server answers 408 and closes."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /v1/models/m:predict HTTP/1.1\r\n")
        reply = b""
        for byte in b"Content-Type: application/json\r\nX-Slow: " + b"a" * 200:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
            s.settimeout(0.01)
            try:
                reply = s.recv(200)
            except socket.timeout:
                continue
            finally:
                s.settimeout(30)
            break
        if not reply:
            reply = s.recv(200)
    return int(reply.split(b" ")[1]) if reply else 0, time.monotonic() - start


def silent(port):
    """Connects and sends nothing: closed after the timeout, without a reply."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        return s.recv(100), time.monotonic() - start


def valid_round(port, i):
    status, body = post(port, image_body(8, 8, seed=i))
    assert status == 200, body
    assert np.asarray(json.loads(body)["predictions"]).shape == (1, 8, 8, 3)
    return "valid"


def client_error_round(port, i):
    cases = [("{not json", 400), ('{"instances": [[0.5]]}', 400), (image_body(40, 40), 413),
             (forged_jpeg_body(), 413)]
    body, want = cases[i % len(cases)]
    status, reply = post(port, body)
    assert status == want, (status, reply[:200])
    assert "error" in json.loads(reply)
    status, _ = post(port, body, "/v1/models/nope:predict")
    assert status == 404
    assert oversized(port) == 413
    return "4xx"


def slow_round(port, i):
    if i % 2:
        data, seconds = silent(port)
        assert data == b"" and seconds < TIMEOUT + 5
    else:
        status, seconds = trickled(port)
        assert status == 408 and seconds < TIMEOUT + 5
    return "slow"


def test_server_survives_a_mixed_load(server):
    port = server.rest_port
    for i in range(5):  # warm up: the first predictions trace the functions
        valid_round(port, i)
    gc.collect()
    before = rss_mb()
    kinds = [valid_round] * 3 + [client_error_round] * 2 + [slow_round] * 2
    start = time.monotonic()
    done = {"valid": 0, "4xx": 0, "slow": 0}
    with concurrent.futures.ThreadPoolExecutor(len(kinds)) as pool:
        futures = [pool.submit(kind, port, i) for i in range(ROUNDS) for kind in kinds]
        for future in concurrent.futures.as_completed(futures, timeout=WALL):
            done[future.result()] += 1
    assert done == {"valid": 3 * ROUNDS, "4xx": 2 * ROUNDS, "slow": 2 * ROUNDS}
    assert time.monotonic() - start < WALL
    valid_round(port, 99)  # still serving
    gc.collect()
    time.sleep(0.5)
    assert rss_mb() - before < 150, (before, rss_mb())


def test_connections_over_the_cap_get_503(server):
    port = server.rest_port
    held = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(24)]
    try:
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as extra:
            assert extra.recv(100).split(b"\r\n")[0].endswith(b"503 Service Unavailable")
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 10
    while True:  # the held connections' threads end and free their slots
        try:
            valid_round(port, 0)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
