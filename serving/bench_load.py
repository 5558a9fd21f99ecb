#!/usr/bin/env python3
"""Load benchmark of a TF-Serving-compatible server: N concurrent clients for a bounded time,
over REST and gRPC; requests/s, p50/p99 latency, errors, server RSS before/after.

    # start `tfcomp serve` on free 127.0.0.1 ports, benchmark it, stop it:
    python serving/bench_load.py --model-config exported/models.config --model restorer-blind \
        --clients 4 --seconds 10 --size 128

    # or benchmark a server that is already running (pass its pid for the RSS columns):
    python serving/bench_load.py --rest-url http://127.0.0.1:8501 --grpc-target 127.0.0.1:8500 \
        --model restorer-blind --server-pid 1234

The request is a JPEG-compressed (q20) crop of scikit-image's astronaut photo, sent to the
`restore_bytes` signature (b64 JPEG in, PNG out) or, with --signature serving_default, as
float pixels. Every client keeps one connection (HTTP keep-alive / one gRPC channel).
"""

import argparse
import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import numpy as np


def rss_mb(pid):
    """Resident set size of a process in MiB (Linux /proc), None if unknown."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_request(size, quality=20):
    """(JPEG bytes, float32 [size, size, 3] of the decoded JPEG)."""
    from tfcomp.codecs import get_codec
    from skimage import data
    img = data.astronaut()[100:100 + size, 150:150 + size]
    codec = get_codec("jpeg")
    jpeg = codec.encode(np.ascontiguousarray(img), quality)
    return jpeg, codec.decode(jpeg).astype(np.float32) / 255.0


# -- clients ------------------------------------------------------------------------------------
class RestClient:
    def __init__(self, url, model, signature, jpeg, pixels):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.path = f"/v1/models/{model}:predict"
        if signature == "restore_bytes":
            body = {"signature_name": signature,
                    "instances": [{"b64": base64.b64encode(jpeg).decode("ascii")}]}
        else:
            body = {"signature_name": signature, "instances": [pixels.tolist()]}
        self.body = json.dumps(body).encode()
        self.conn = None

    def __call__(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            self.conn.request("POST", self.path, self.body, {"Content-Type": "application/json"})
            resp = self.conn.getresponse()
            resp.read()
            return resp.status == 200
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            return False

    def close(self):
        if self.conn is not None:
            self.conn.close()


class GrpcClient:
    def __init__(self, target, model, signature, jpeg, pixels):
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
        self.grpc = grpc
        self.channel = grpc.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", -1)])
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.req = predict_pb2.PredictRequest()
        self.req.model_spec.name = model
        self.req.model_spec.signature_name = signature
        if signature == "restore_bytes":
            self.req.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([jpeg]))
        else:
            self.req.inputs["image"].CopyFrom(tf.make_tensor_proto(pixels[None]))

    def __call__(self):
        try:
            self.stub.Predict(self.req, timeout=120)
            return True
        except self.grpc.RpcError:
            return False

    def close(self):
        self.channel.close()


def run_load(make_client, clients, seconds, warmup=1):
    """Runs `clients` threads, each calling its own client until the deadline.

    Returns {"requests", "errors", "rps", "p50_ms", "p99_ms", "seconds"}.
    """
    workers = [make_client() for _ in range(clients)]
    for w in workers:  # warm-up (connection set-up, first-call tracing) is not measured
        for _ in range(warmup):
            w()
    latencies = [[] for _ in workers]
    errors = [0] * len(workers)
    start = time.perf_counter()
    deadline = start + seconds

    def loop(i):
        w = workers[i]
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            ok = w()
            latencies[i].append(time.perf_counter() - t)
            errors[i] += not ok

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for w in workers:
        w.close()
    lat = np.array([x for per in latencies for x in per]) * 1000
    n = int(lat.size)
    return {"requests": n, "errors": int(sum(errors)), "seconds": elapsed,
            "rps": n / elapsed if elapsed else 0.0,
            "p50_ms": float(np.percentile(lat, 50)) if n else float("nan"),
            "p99_ms": float(np.percentile(lat, 99)) if n else float("nan")}


# -- server -------------------------------------------------------------------------------------
def start_server(model_config, model, timeout=180):
    """Starts `tfcomp serve` on free 127.0.0.1 ports; returns (process, rest_url, grpc_target)."""
    rest, grpc_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "tfcomp", "serve", "--model-config", model_config,
           "--rest-port", str(rest), "--grpc-port", str(grpc_port), "--host", "127.0.0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{rest}"
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"bench_load: the server exited: {proc.stderr.read().strip()}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models/{model}", timeout=2) as r:
                if r.status == 200:
                    return proc, url, f"127.0.0.1:{grpc_port}"
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit("bench_load: the server did not become ready")


def stop_server(proc, timeout=30):
    proc.terminate()  # SIGTERM: graceful shutdown
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def format_table(rows):
    headers = ["protocol", "signature", "clients", "seconds", "requests", "req/s", "p50 ms",
               "p99 ms", "errors", "RSS before MiB", "RSS after MiB"]
    cells = [headers] + [[r["protocol"], r["signature"], str(r["clients"]), f"{r['seconds']:.1f}",
                          str(r["requests"]), f"{r['rps']:.1f}", f"{r['p50_ms']:.1f}",
                          f"{r['p99_ms']:.1f}", str(r["errors"]), _mb(r["rss_before"]),
                          _mb(r["rss_after"])] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in
                       enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _mb(v):
    return "-" if v is None else f"{v:.0f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-config", help="start `tfcomp serve` on this config (free ports)")
    p.add_argument("--rest-url", help="REST base URL of a running server")
    p.add_argument("--grpc-target", help="gRPC host:port of a running server")
    p.add_argument("--server-pid", type=int, help="pid of the running server (RSS columns)")
    p.add_argument("--model", default="restorer-blind")
    p.add_argument("--signature", default="restore_bytes",
                   choices=("restore_bytes", "serving_default"))
    p.add_argument("--protocols", nargs="+", default=["rest", "grpc"], choices=("rest", "grpc"))
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    p.add_argument("--seconds", type=float, default=10.0, help="per protocol (default 10)")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args(argv)
    if not args.model_config and not (args.rest_url or args.grpc_target):
        p.error("give --model-config (start a server) or --rest-url/--grpc-target")
    if args.clients < 1 or args.seconds <= 0 or not 8 <= args.size <= 4096:
        p.error("--clients >= 1, --seconds > 0, --size in 8..4096")
    jpeg, pixels = sample_request(args.size)
    proc = None
    rest_url, grpc_target, pid = args.rest_url, args.grpc_target, args.server_pid
    if args.model_config:
        proc, rest_url, grpc_target = start_server(args.model_config, args.model)
        pid = proc.pid
    rows = []
    try:
        for proto in args.protocols:
            if proto == "rest" and rest_url:
                make = lambda: RestClient(rest_url, args.model, args.signature, jpeg, pixels)
            elif proto == "grpc" and grpc_target:
                make = lambda: GrpcClient(grpc_target, args.model, args.signature, jpeg, pixels)
            else:
                continue
            before = rss_mb(pid)
            r = run_load(make, args.clients, args.seconds)
            r.update(protocol=proto, signature=args.signature, clients=args.clients,
                     rss_before=before, rss_after=rss_mb(pid))
            rows.append(r)
    finally:
        if proc is not None:
            code = stop_server(proc)
            if code != 0:
                print(f"bench_load: server exit status {code}", file=sys.stderr)
    print(f"{args.model}, {args.size}x{args.size} JPEG q20 crop, {os.cpu_count()} CPUs:")
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
