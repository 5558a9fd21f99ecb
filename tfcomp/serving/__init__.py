"""A TF-Serving-compatible model server in Python (`tfcomp serve`).

It serves the SavedModels listed in a TF Serving ``models.config`` (as written by
``tfcomp export``) with TF Serving's REST API and its gRPC PredictionService/ModelService, so
clients written for ``tensorflow_model_server`` work unchanged, and the same export folder
runs under the real server where it can be installed (see serving/README.md).

    server = ModelServer("exported/models.config", rest_port=0, grpc_port=0).start()
    ... server.rest_port, server.grpc_port ...
    server.stop()
"""

import os
import signal
import sys
import threading
import time

__all__ = ["ModelServer", "serve"]


class ModelServer:
    """Loads every servable of a models.config and runs the REST and gRPC front ends.

    Ports: an integer (0 = any free port, read back from ``rest_port``/``grpc_port`` after
    ``start()``) or None for no such front end. ``host`` is the listening address.
    REST bounds: ``request_timeout`` seconds for a client to send a whole request (and for
    an idle keep-alive wait), ``max_connections`` open connections. Every request's images
    are checked against the pixel budget (tfcomp.limits) before the model runs.
    """

    def __init__(self, model_config, rest_port=8501, grpc_port=8500, host="127.0.0.1",
                 max_body_bytes=64 << 20, rest_threads=16, grpc_workers=8, verbose=False,
                 request_timeout=60.0, max_connections=64):
        from .servables import ModelRegistry
        self.registry = ModelRegistry(model_config)
        self.host = host
        self._rest_port, self._grpc_port = rest_port, grpc_port
        self.max_body_bytes = max_body_bytes
        self.rest_threads, self.grpc_workers = rest_threads, grpc_workers
        self.verbose = verbose
        self.request_timeout, self.max_connections = request_timeout, max_connections
        self.rest = self.grpc = None
        self.rest_port = self.grpc_port = None
        self._thread = None

    def start(self):
        from ..errors import InputError
        from .grpc_service import create_server
        from .rest import RestServer
        try:
            if self._rest_port is not None:
                try:
                    self.rest = RestServer(self.registry, self.host, self._rest_port,
                                           self.max_body_bytes, self.rest_threads, self.verbose,
                                           request_timeout=self.request_timeout,
                                           max_connections=self.max_connections)
                except OSError as e:
                    raise InputError(f"cannot listen for REST on {self.host}:{self._rest_port}: "
                                     f"{e.strerror or e}") from None
                self.rest_port = self.rest.port
                self._thread = threading.Thread(target=self.rest.serve_forever,
                                                kwargs={"poll_interval": 0.2},
                                                name="rest", daemon=True)
                self._thread.start()
            if self._grpc_port is not None:
                self.grpc, self.grpc_port = create_server(
                    self.registry, self.host, self._grpc_port, self.max_body_bytes,
                    self.grpc_workers)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, grace=10.0):
        """Stops accepting, lets in-flight requests finish (up to ``grace`` s for gRPC)."""
        done = None
        if self.grpc is not None:
            done = self.grpc.stop(grace)
        if self.rest is not None:
            self.rest.stop()
            if self._thread is not None:
                self._thread.join()
        if done is not None:
            done.wait(grace)
        self.rest = self.grpc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def serve(model_config, rest_port=8501, grpc_port=8500, host="127.0.0.1",
          max_body_bytes=64 << 20, rest_threads=16, grpc_workers=8, request_timeout=60.0,
          max_connections=64):
    """`tfcomp serve`: runs until SIGTERM/SIGINT, then shuts down gracefully. Port 0 = off
    (as in tensorflow_model_server)."""
    from ..errors import InputError
    if not rest_port and not grpc_port:
        raise InputError("both ports are 0: nothing to serve")
    for p in (rest_port, grpc_port):
        if not 0 <= p <= 65535:
            raise InputError(f"invalid port {p}")
    if rest_port and rest_port == grpc_port:
        raise InputError("--rest-port and --grpc-port must differ")
    if not request_timeout > 0:
        raise InputError(f"--request-timeout must be positive, got {request_timeout}")
    if max_connections < 1:
        raise InputError(f"--max-connections must be at least 1, got {max_connections}")
    t0 = time.time()
    server = ModelServer(model_config, rest_port or None, grpc_port or None, host,
                         max_body_bytes, rest_threads, grpc_workers,
                         request_timeout=request_timeout, max_connections=max_connections)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        for name, versions in server.registry.describe().items():
            print(f"serving {name} versions {versions}", flush=True)
        if server.rest_port:
            print(f"REST on http://{host}:{server.rest_port}/v1/models/<name>", flush=True)
        if server.grpc_port:
            print(f"gRPC on {host}:{server.grpc_port}", flush=True)
        print(f"ready in {time.time() - t0:.1f}s (pid {os.getpid()}); SIGTERM or Ctrl-C stops",
              flush=True)
        while not stop.wait(0.5):
            pass
        print("shutting down: finishing in-flight requests", file=sys.stderr, flush=True)
    finally:
        server.stop()
        for s, h in previous.items():
            signal.signal(s, h)
    print("stopped", file=sys.stderr, flush=True)
    return 0
