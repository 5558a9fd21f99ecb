"""TF Serving's REST API (v1) over http.server: status, metadata and predict.

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            -> model_version_status
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   -> signature_def map
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict    -> predictions / outputs

Request bodies: ``{"signature_name": s, "instances": [...]}`` (row format, answered with
``{"predictions": [...]}``) or ``{"inputs": ...}`` (columnar, answered with
``{"outputs": ...}``); binary strings as ``{"b64": "..."}``; DT_STRING outputs whose name ends
in ``_bytes`` come back base64-encoded the same way. Errors: ``{"error": "..."}`` with a 4xx/5xx
status. Bodies above the size limit get 413 before they are read.

Bounds against slow or greedy clients: a request (line, headers and body) must arrive within
``request_timeout`` seconds of its first byte, else 408 and the connection closes; an idle
keep-alive connection closes after the same time; at most ``max_connections`` connections are
open (more get 503 and are closed at once); the request bodies being handled at once hold at
most four times the body limit (others wait, then get 503); bodies are parsed and run at most
``max_concurrent`` at a time.
"""

import base64
import binascii
import http.server
import io
import json
import re
import socket
import threading
import time

import numpy as np

from .servables import ServingError

__all__ = ["RestServer", "json_to_array", "array_to_json", "parse_predict_request",
           "format_predict_response"]

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)"
                   r"(?:/versions/(?P<version>-?\d+)|/labels/(?P<label>[^/:]+))?"
                   r"(?:(?P<metadata>/metadata)|:(?P<method>[A-Za-z]+))?/?$")


# -- JSON <-> numpy ------------------------------------------------------------------------------
def _decode_b64(value):
    if not isinstance(value, str):
        raise ServingError("INVALID_ARGUMENT", "a {\"b64\": ...} value must be a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ServingError("INVALID_ARGUMENT", "invalid base64 in a {\"b64\": ...} value") from None


def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _string_leaves(value, shape, depth, out):
    if isinstance(value, list):
        if len(shape) <= depth:
            shape.append(len(value))
        elif shape[depth] != len(value):
            raise ServingError("INVALID_ARGUMENT", "ragged string tensor: lists of different "
                               "lengths at the same depth")
        for v in value:
            _string_leaves(v, shape, depth + 1, out)
        return
    if len(shape) != depth:
        raise ServingError("INVALID_ARGUMENT", "ragged string tensor: mixed nesting depths")
    if _is_b64(value):
        out.append(_decode_b64(value["b64"]))
    elif isinstance(value, str):
        out.append(value.encode("utf-8"))
    else:
        raise ServingError("INVALID_ARGUMENT", f"expected a string or {{\"b64\": ...}} value, "
                           f"got {type(value).__name__}")


def json_to_array(value, dtype, what="input"):
    """A JSON value (nested lists of numbers / strings / {"b64"}) -> numpy array of ``dtype``
    (a tf.DType); ServingError INVALID_ARGUMENT when it does not fit."""
    import tensorflow as tf
    if dtype == tf.string:
        shape, leaves = [], []
        _string_leaves(value, shape, 0, leaves)
        arr = np.empty(len(leaves), dtype=object)
        arr[:] = leaves
        if len(shape) > 0 and 0 in shape:
            return np.empty(shape, dtype=object)
        return arr.reshape(shape)
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, RecursionError) as e:
        raise ServingError("INVALID_ARGUMENT", f"{what}: not a rectangular numeric tensor "
                           f"({str(e).splitlines()[0][:120]})") from None
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.float64)
    if arr.dtype.kind not in "biuf":
        raise ServingError("INVALID_ARGUMENT", f"{what}: expected {dtype.name} numbers, got "
                           f"{'strings or objects' if arr.dtype.kind in 'OUS' else arr.dtype}")
    target = dtype.as_numpy_dtype
    if dtype.is_integer and arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ServingError("INVALID_ARGUMENT", f"{what}: expected {dtype.name}, got "
                               "non-integral numbers")
    if dtype.is_integer:
        info = np.iinfo(target)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise ServingError("INVALID_ARGUMENT", f"{what}: value out of range for {dtype.name}")
    return arr.astype(target)


def _value_to_json(arr, b64):
    """numpy array -> nested lists; strings as {"b64"} if ``b64`` else UTF-8 text."""
    if arr.dtype == object or arr.dtype.kind == "S":
        def conv(x):
            if isinstance(x, np.ndarray):
                return [conv(v) for v in x]
            x = bytes(x)
            if not b64:
                try:
                    return x.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return {"b64": base64.b64encode(x).decode("ascii")}
        return conv(arr) if arr.ndim else conv(arr[()])
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float64) if arr.dtype != np.float64 else arr
    return arr.tolist()


def array_to_json(name, arr):
    """An output tensor as JSON (``*_bytes`` string outputs base64-encoded, as TF Serving)."""
    return _value_to_json(np.asarray(arr), name.endswith("_bytes"))


def parse_predict_request(body):
    """A predict request's JSON text -> (signature_name or None, request dict, row_format)."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ServingError("INVALID_ARGUMENT", f"JSON Parse error: {e}") from None
    if not isinstance(request, dict):
        raise ServingError("INVALID_ARGUMENT", "the request body must be a JSON object")
    unknown = set(request) - {"signature_name", "instances", "inputs"}
    if unknown:
        raise ServingError("INVALID_ARGUMENT", f"unknown request field(s): {sorted(unknown)}")
    if ("instances" in request) == ("inputs" in request):
        raise ServingError("INVALID_ARGUMENT", "the request must have exactly one of "
                           "\"instances\" (row format) or \"inputs\" (columnar format)")
    sig = request.get("signature_name")
    if sig is not None and not isinstance(sig, str):
        raise ServingError("INVALID_ARGUMENT", "signature_name must be a string")
    return sig, request, "instances" in request


def inputs_from_request(request, row_format, specs):
    """{input: numpy} from a parsed request; ``specs``: input name -> tf.TensorSpec."""
    names = sorted(specs)
    if row_format:
        instances = request["instances"]
        if not isinstance(instances, list) or not instances:
            raise ServingError("INVALID_ARGUMENT", "\"instances\" must be a non-empty list")
        columns = {n: [] for n in names}
        for inst in instances:
            if isinstance(inst, dict) and not _is_b64(inst):
                if set(inst) != set(names):
                    raise ServingError("INVALID_ARGUMENT", f"each instance must name the inputs "
                                       f"{names}, got {sorted(inst)}")
                for n in names:
                    columns[n].append(inst[n])
            elif len(names) == 1:
                columns[names[0]].append(inst)
            else:
                raise ServingError("INVALID_ARGUMENT", f"the signature has inputs {names}: each "
                                   "instance must be an object naming them")
        out = {}
        for n in names:
            arrays = [json_to_array(v, specs[n].dtype, f"input {n!r}") for v in columns[n]]
            if len({a.shape for a in arrays}) != 1:
                raise ServingError("INVALID_ARGUMENT", f"input {n!r}: instances have different "
                                   f"shapes {sorted({a.shape for a in arrays})} (send them in "
                                   "separate requests)")
            out[n] = np.stack(arrays)
        return out
    inputs = request["inputs"]
    if isinstance(inputs, dict) and not _is_b64(inputs):
        if set(inputs) != set(names):
            raise ServingError("INVALID_ARGUMENT", f"\"inputs\" must name the inputs {names}, "
                               f"got {sorted(inputs)}")
        return {n: json_to_array(inputs[n], specs[n].dtype, f"input {n!r}") for n in names}
    if len(names) != 1:
        raise ServingError("INVALID_ARGUMENT", f"the signature has inputs {names}: \"inputs\" "
                           "must be an object naming them")
    return {names[0]: json_to_array(inputs, specs[names[0]].dtype, f"input {names[0]!r}")}


def format_predict_response(outputs, row_format):
    """{output: numpy} -> the JSON object of TF Serving's predict response."""
    if not row_format:
        if len(outputs) == 1:
            (name, arr), = outputs.items()
            return {"outputs": array_to_json(name, arr)}
        return {"outputs": {n: array_to_json(n, a) for n, a in outputs.items()}}
    sizes = {np.asarray(a).shape[0] if np.ndim(a) else None for a in outputs.values()}
    if len(sizes) != 1 or None in sizes:
        raise ServingError("INVALID_ARGUMENT", "row format needs every output to have the same "
                           "batch size; use the columnar \"inputs\" format")
    n = sizes.pop()
    if len(outputs) == 1:
        (name, arr), = outputs.items()
        return {"predictions": [array_to_json(name, arr[i]) for i in range(n)]}
    return {"predictions": [{k: array_to_json(k, a[i]) for k, a in outputs.items()}
                            for i in range(n)]}


# -- status / metadata ------------------------------------------------------------------------
def status_json(servables):
    from google.protobuf import json_format
    from .grpc_service import status_response
    return json_format.MessageToDict(status_response(servables),
                                     preserving_proto_field_name=True,
                                     including_default_value_fields=True)


def metadata_json(servable):
    from google.protobuf import json_format
    from .grpc_service import metadata_response
    return json_format.MessageToDict(metadata_response(servable),
                                     preserving_proto_field_name=True,
                                     including_default_value_fields=True)


# -- HTTP ---------------------------------------------------------------------------------------
class _RequestTimeout(Exception):
    """A client took longer than the request timeout; ``started``: bytes of it had arrived."""

    def __init__(self, started):
        super().__init__("request timeout")
        self.started = started


class _DeadlineReader(io.RawIOBase):
    """The connection's input with a deadline: idle until a request's first byte arrives,
    then the whole request must arrive within ``timeout`` seconds."""

    def __init__(self, sock, timeout):
        super().__init__()
        self.sock, self.timeout = sock, timeout
        self.started = False
        self.deadline = time.monotonic() + timeout

    def next_request(self):
        """Waits (at most ``timeout``) for the next request on a keep-alive connection."""
        self.started = False
        self.deadline = time.monotonic() + self.timeout

    def readable(self):
        return True

    def readinto(self, buffer):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _RequestTimeout(self.started)
        self.sock.settimeout(remaining)
        try:
            n = self.sock.recv_into(buffer)
        except socket.timeout:
            raise _RequestTimeout(self.started) from None
        if n and not self.started:
            self.started = True
            self.deadline = time.monotonic() + self.timeout
        return n


class _ByteBudget:
    """Bytes of request bodies held at once: ``acquire`` waits up to a timeout for room."""

    def __init__(self, total):
        self.total, self.used = int(total), 0
        self._cond = threading.Condition()

    def acquire(self, n, timeout):
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.used and self.used + n > self.total:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            self.used += n
            return True

    def release(self, n):
        with self._cond:
            self.used -= n
            self._cond.notify_all()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tfcomp-serving"

    def setup(self):
        super().setup()
        self.rfile.close()  # replaced by a reader with a per-request deadline
        self.reader = _DeadlineReader(self.connection, self.server.request_timeout)
        self.rfile = io.BufferedReader(self.reader, 1 << 16)
        try:  # headers and body are separate writes: without this, Nagle + delayed ACK add 40 ms
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.track(self, busy=False)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.untrack(self)

    def parse_request(self):
        self.server.track(self, busy=True)  # a request line arrived: no longer idle
        return super().parse_request()

    def handle_one_request(self):
        self.reader.next_request()
        try:
            super().handle_one_request()
        except _RequestTimeout as e:
            self.close_connection = True
            if e.started:  # a request began but did not arrive in time
                try:
                    self._error(408, f"the request did not arrive within "
                                f"{self.server.request_timeout:g} s")
                except OSError:
                    pass
        finally:
            self.server.track(self, busy=False)
            if self.server.stopping:
                self.close_connection = True

    def log_message(self, fmt, *args):
        if self.server.verbose:
            super().log_message(fmt, *args)

    def _send_json(self, status, obj):
        data = (json.dumps(obj, allow_nan=True) + "\n").encode()
        self.connection.settimeout(self.server.request_timeout)  # a client that never reads
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status, message):
        self._send_json(status, {"error": message})

    def _route(self):
        m = _PATH.match(self.path.split("?", 1)[0])
        if not m:
            raise ServingError("NOT_FOUND", f"Malformed request: {self.command} {self.path}")
        return m

    def _content_length(self):
        """The declared body size; sends 411/413/400 and returns None when it is unusable."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._error(411, "chunked request bodies are not supported; send Content-Length")
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            self.close_connection = True
            self._error(411, "a POST needs a Content-Length header")
            return None
        try:
            length = int(raw)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._error(400, f"invalid Content-Length {raw!r}")
            return None
        if length > self.server.max_body_bytes:
            self.close_connection = True  # the body is never read: the connection cannot go on
            self._error(413, f"request body of {length} bytes exceeds the limit of "
                        f"{self.server.max_body_bytes} bytes")
            return None
        return length

    def handle_expect_100(self):
        # `Expect: 100-continue` (curl's default for big bodies): refuse before the upload.
        length = self._content_length()
        return length is not None and super().handle_expect_100()

    def do_GET(self):
        try:
            m = self._route()
            if m.group("method"):
                raise ServingError("NOT_FOUND", f"Malformed request: {self.command} {self.path}")
            registry = self.server.registry
            if m.group("metadata"):
                servable = registry.get(m.group("name"), m.group("version"), m.group("label"))
                self._send_json(200, metadata_json(servable))
            else:
                self._send_json(200, status_json(registry.versions(
                    m.group("name"), m.group("version"), m.group("label"))))
        except ServingError as e:
            self._error(e.http_status, e.message)

    def do_POST(self):
        length = self._content_length()
        if length is None:
            return
        budget = self.server.body_budget
        if not budget.acquire(length, self.server.request_timeout):
            self.close_connection = True
            self._error(503, "the server is busy with other large requests; retry later")
            return
        try:
            self._post(length)
        finally:
            budget.release(length)

    def _post(self, length):
        try:
            body = self.rfile.read(length)
        except OSError:
            self.close_connection = True
            return
        if len(body) != length:
            self.close_connection = True
            return
        try:
            m = self._route()
            method = m.group("method")
            if m.group("metadata") or method is None:
                raise ServingError("NOT_FOUND", f"Malformed request: {self.command} {self.path}")
            if method != "predict":
                raise ServingError("UNIMPLEMENTED", f"only :predict is served, not :{method}")
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise ServingError("INVALID_ARGUMENT", "the request body is not UTF-8") from None
            registry = self.server.registry
            servable = registry.get(m.group("name"), m.group("version"), m.group("label"))
            with self.server.slots:  # parsing a body takes a few times its size in memory
                sig_name, request, row = parse_predict_request(text)
                del text, body
                sig = servable.signature(sig_name)
                inputs = inputs_from_request(request, row, sig.inputs)
                del request
                _, outputs = servable.predict(sig.name, inputs)
                del inputs
                response = format_predict_response(outputs, row)
            self._send_json(200, response)
        except ServingError as e:
            self._error(e.http_status, e.message)
        except MemoryError:
            self._error(413, "not enough memory for this request")

    do_HEAD = do_GET

    def do_PUT(self):
        self._error(405, f"method {self.command} not allowed")

    do_DELETE = do_PATCH = do_PUT


class RestServer(http.server.ThreadingHTTPServer):
    """The REST front end. ``serve_forever`` in a thread; ``stop()`` finishes in-flight
    requests, closes idle keep-alive connections and joins the request threads."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128  # listen backlog: bursts of connections wait instead of retrying

    def __init__(self, registry, host="127.0.0.1", port=8501, max_body_bytes=64 << 20,
                 max_concurrent=16, verbose=False, request_timeout=60.0, max_connections=64):
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.registry = registry
        self.max_body_bytes = int(max_body_bytes)
        self.slots = threading.BoundedSemaphore(max(1, int(max_concurrent)))
        self.request_timeout = float(request_timeout)
        self.connections = threading.BoundedSemaphore(max(1, int(max_connections)))
        self.body_budget = _ByteBudget(4 * self.max_body_bytes)
        self.verbose = verbose
        self.stopping = False
        self._conns = {}
        self._conn_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    @property
    def port(self):
        return self.server_address[1]

    def process_request(self, request, client_address):
        """Starts a thread for the connection, or answers 503 when too many are open."""
        if not self.connections.acquire(blocking=False):
            _refuse(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.connections.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def track(self, handler, busy):
        with self._conn_lock:
            self._conns[handler] = busy

    def untrack(self, handler):
        with self._conn_lock:
            self._conns.pop(handler, None)

    def stop(self):
        self.stopping = True
        self.shutdown()  # no new connections
        with self._conn_lock:
            idle = [h for h, busy in self._conns.items() if not busy]
        for h in idle:  # wake handlers waiting for a next keep-alive request
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()  # joins the request threads


def _refuse(sock):
    """Answers a connection over the limit with 503 (best effort, never blocking long)."""
    body = b'{"error": "too many open connections; retry later"}\n'
    try:
        sock.settimeout(1.0)
        sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close"
                     b"\r\n\r\n" + body)
    except OSError:
        pass
