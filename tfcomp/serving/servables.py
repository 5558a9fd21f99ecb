"""The models a server holds: SavedModels loaded per models.config, and Predict on them.

Transport-independent: the REST and gRPC front ends turn requests into numpy arrays, call
:meth:`ModelRegistry.predict`, and map :class:`ServingError` codes to their own statuses.
"""

import dataclasses
import os
import re

import numpy as np

from .. import limits
from ..errors import InputError, TfcompError
from .config import read_config, resolve_versions

__all__ = ["ServingError", "Servable", "ModelRegistry", "HTTP_STATUS", "clean_tf_error",
           "check_budget"]

#: gRPC status code name -> HTTP status (TF Serving's REST mapping).
HTTP_STATUS = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
    "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 413, "UNIMPLEMENTED": 501, "INTERNAL": 500,
    "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
}

DEFAULT_SIGNATURE = "serving_default"


class ServingError(Exception):
    """A request the server refuses: ``code`` is a gRPC status code name."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self):
        return HTTP_STATUS.get(self.code, 500)


def _check_encoded(key, value):
    """An encoded image (PNG/JPEG/BPG bytes) within the pixel budget and able to fill its size."""
    size = limits.image_size(value)
    if size is None:
        return
    try:
        limits.check_pixels(*size, f"input {key!r}: image too large")
        frame = limits.jpeg_frame(value)
        if frame is not None:
            limits.check_fill(len(value), frame["offset"] + limits.jpeg_min_bytes(frame),
                              f"input {key!r}", *size)
    except InputError as e:
        raise ServingError("RESOURCE_EXHAUSTED", str(e)) from None
    except TfcompError as e:
        raise ServingError("INVALID_ARGUMENT", str(e)) from None


def check_budget(inputs):
    """ServingError unless every input fits the pixel budget (tfcomp.limits), before the
    model runs: encoded images by their headers, image tensors [..., H, W, C] by their
    shape (all leading dimensions times H times W)."""
    for key, arr in inputs.items():
        if arr.dtype == object or arr.dtype.kind == "S":
            for value in arr.reshape(-1):
                if isinstance(value, (bytes, bytearray)):
                    _check_encoded(key, value)
        elif arr.ndim >= 3:
            pixels = int(np.prod(arr.shape[:-1], dtype=np.int64))
            if pixels > limits.max_pixels():
                raise ServingError("RESOURCE_EXHAUSTED", f"input {key!r} of shape "
                                   f"{list(arr.shape)} holds {pixels} pixels, over the pixel "
                                   f"budget of {limits.max_pixels()}")


def clean_tf_error(e):
    """The useful line of a TF runtime error (an assertion's text, else its first real line)."""
    text = getattr(e, "message", None) or str(e)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("assertion failed:"):
            return re.sub(r"\]\s*\[", " ", ln).replace("[", "").replace("]", "")
    for ln in lines:  # "Graph execution error:", "Detected at node ..." are noise
        if not ln.startswith(("Graph execution error", "Detected at node", "<stack trace",
                              "[[", "File ", "Node:")):
            return ln
    return lines[0] if lines else type(e).__name__


@dataclasses.dataclass
class Signature:
    name: str
    function: object
    inputs: dict      # name -> tf.TensorSpec
    outputs: dict     # name -> (tf.DType, tf.TensorShape)


class Servable:
    """One loaded version of one model."""

    def __init__(self, name, version, path):
        import tensorflow as tf
        from ..export import load_custom_ops, read_manifest
        self.name, self.version, self.path = name, version, path
        self.manifest = read_manifest(path)
        try:  # the graph's custom ops: Python modules and op libraries the manifest lists
            self.custom_ops = load_custom_ops(path, self.manifest)
        except (ImportError, OSError, tf.errors.NotFoundError, TfcompError) as e:
            raise InputError(f"model {name!r} version {version}: cannot load the custom ops "
                             f"{self.manifest.get('custom_ops')} it needs: {e}") from None
        try:
            self.loaded = tf.saved_model.load(path, tags=["serve"])
        except Exception as e:  # noqa: BLE001 - a load failure is a config problem
            raise InputError(f"model {name!r} version {version}: cannot load {path}: "
                             f"{clean_tf_error(e)}") from None
        self.signatures = {}
        for key, fn in self.loaded.signatures.items():
            _, kwargs = fn.structured_input_signature
            outputs = {k: (fn.output_dtypes[k], fn.output_shapes[k]) for k in fn.output_dtypes}
            self.signatures[key] = Signature(key, fn, dict(kwargs), outputs)
        self.signature_defs = _signature_defs(path)

    def signature(self, key):
        key = key or DEFAULT_SIGNATURE
        try:
            return self.signatures[key]
        except KeyError:
            raise ServingError("FAILED_PRECONDITION",
                               f"Serving signature key \"{key}\" not found (model {self.name!r} "
                               f"version {self.version} has: {', '.join(sorted(self.signatures))})"
                               ) from None

    def predict(self, signature, inputs, output_filter=None):
        """inputs: name -> numpy array (already of the signature's dtype) -> name -> numpy."""
        import tensorflow as tf
        sig = self.signature(signature)
        missing = sorted(set(sig.inputs) - set(inputs))
        extra = sorted(set(inputs) - set(sig.inputs))
        if missing or extra:
            raise ServingError("INVALID_ARGUMENT", "signature " + sig.name + " takes inputs "
                               f"{sorted(sig.inputs)}" + (f"; missing {missing}" if missing else "")
                               + (f"; unknown {extra}" if extra else ""))
        check_budget(inputs)
        feeds = {}
        for key, spec in sig.inputs.items():
            arr = inputs[key]
            if arr.dtype != spec.dtype.as_numpy_dtype and not (
                    spec.dtype == tf.string and arr.dtype == object):
                raise ServingError("INVALID_ARGUMENT", f"input {key!r} must be "
                                   f"{spec.dtype.name}, got {arr.dtype}")
            if not spec.shape.is_compatible_with(arr.shape):
                raise ServingError("INVALID_ARGUMENT", f"input {key!r} must have shape "
                                   f"{_shape_text(spec.shape)}, got {list(arr.shape)}")
            feeds[key] = tf.constant(arr, dtype=spec.dtype)
        wanted = list(output_filter) if output_filter else list(sig.outputs)
        unknown = [k for k in wanted if k not in sig.outputs]
        if unknown:
            raise ServingError("INVALID_ARGUMENT", f"output_filter names unknown outputs "
                               f"{unknown}; signature {sig.name} has {sorted(sig.outputs)}")
        try:
            result = sig.function(**feeds)
        except tf.errors.InvalidArgumentError as e:
            raise ServingError("INVALID_ARGUMENT", clean_tf_error(e)) from None
        except tf.errors.ResourceExhaustedError as e:
            raise ServingError("RESOURCE_EXHAUSTED", clean_tf_error(e)) from None
        except tf.errors.OpError as e:
            raise ServingError("INTERNAL", clean_tf_error(e)) from None
        return sig.name, {k: result[k].numpy() for k in wanted}


def _shape_text(shape):
    return "[" + ", ".join("-1" if d is None else str(d) for d in shape.as_list()) + "]" \
        if shape.rank is not None else "any"


def _signature_defs(path):
    """name -> SignatureDef proto of the serve meta graph (for GetModelMetadata)."""
    from tensorflow.core.protobuf import saved_model_pb2
    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    for mg in sm.meta_graphs:
        if "serve" in mg.meta_info_def.tags:
            return dict(mg.signature_def)
    return {}


class ModelRegistry:
    """Every servable of a models.config: name -> {version: Servable} plus version labels."""

    def __init__(self, config_path=None, entries=None):
        self.models, self.labels = {}, {}
        entries = entries if entries is not None else read_config(config_path)
        for entry in entries:
            versions = resolve_versions(entry)
            self.models[entry.name] = {v: Servable(entry.name, v, os.path.join(
                entry.base_path, str(v))) for v in versions}
            self.labels[entry.name] = dict(entry.labels)

    def get(self, name, version=None, label=None):
        """The servable for (name, version or label or latest); ServingError NOT_FOUND."""
        versions = self.models.get(name)
        if versions is None:
            raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name}) "
                               f"(served models: {', '.join(sorted(self.models))})")
        if label is not None:
            if label not in self.labels.get(name, {}):
                raise ServingError("NOT_FOUND", f"Unrecognized servable version label: {label} "
                                   f"(model {name!r})")
            version = self.labels[name][label]
        if version is None:
            return versions[max(versions)]
        try:
            return versions[int(version)]
        except (KeyError, ValueError):
            raise ServingError("NOT_FOUND", f"Servable not found for request: Specific({name}, "
                               f"{version}) (served versions: {sorted(versions)})") from None

    def versions(self, name, version=None, label=None):
        """Servables of a status request: one version, or all of the model's."""
        if version is None and label is None:
            self.get(name)
            return [self.models[name][v] for v in sorted(self.models[name])]
        return [self.get(name, version, label)]

    def predict(self, name, version=None, label=None, signature=None, inputs=None,
                output_filter=None):
        """-> (servable, signature name, {output: numpy})."""
        servable = self.get(name, version, label)
        sig, outputs = servable.predict(signature, inputs or {}, output_filter)
        return servable, sig, outputs

    def describe(self):
        return {name: sorted(v) for name, v in self.models.items()}
