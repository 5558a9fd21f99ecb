"""Deployment export: SavedModel (TF Serving layout), TFLite, ONNX, `models.config`, parity.

A registered model (tfcomp.models) or a Keras model is exported through an *exporter*: the
object that knows the model kind's signatures. Restorers use :class:`ImageToImageExporter`;
a new kind sets ``ModelSpec.exporter = "module:Class"`` (and ``custom_ops`` when its graph
needs ops from a Python package such as tensorflow_compression) and nothing here changes.

Layouts written under ``OUT``::

    OUT/models.config                         TF Serving model_config_list (all SavedModels)
    OUT/NAME/<version>/saved_model.pb         SavedModel, TF Serving layout
    OUT/NAME/<version>/variables/...
    OUT/NAME/<version>/assets.extra/tfcomp.json   what the export needs at load time
    OUT/NAME[-tileT]-float32|float16|int8.tflite
    OUT/NAME[-tileT].onnx
"""

import abc
import datetime
import importlib
import json
import os
import shutil
import tempfile
import time

import numpy as np

from .errors import InputError, TfcompError

__all__ = [
    "FORMATS", "QUANTIZATIONS", "ALL_QUANTIZATIONS", "TOLERANCES", "DEFAULT_OPSET", "EXPORTERS", "Exporter",
    "ImageToImageExporter", "resolve_model", "get_exporter", "export_savedmodel", "export_tflite",
    "export_onnx", "export", "find_savedmodels", "update_models_config", "representative_images",
    "parity_images", "run_tflite", "run_onnx", "parity", "format_parity", "MANIFEST",
]

FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("float32", "float16", "int8")
#: The TFLite quantisations `--format all` writes: int8 is explicit only (`--format tflite
#: --quantize int8`), since it does not meet its tolerance for the shipped restorers
#: (README: the measured loss is 1.2-2.0 dB).
ALL_QUANTIZATIONS = ("float32", "float16")
DEFAULT_OPSET = 17
OPSETS = range(13, 18)
#: Where each SavedModel records what a loading process needs (TF Serving ignores the folder).
MANIFEST = os.path.join("assets.extra", "tfcomp.json")
#: Largest decoded image the bytes signature accepts (checked from the header, before decoding).
DEFAULT_MAX_PIXELS = 2048 * 2048

#: Per-quantisation parity limits against TF on JPEG-decoded photos, measured (see README):
#: max_abs on [0, 1] outputs, psnr_vs_tf = PSNR of the export's output against TF's output,
#: delta_db = |PSNR(export, original) - PSNR(TF, original)|.
TOLERANCES = {
    "float32": {"max_abs": 1e-5, "psnr_vs_tf": 90.0, "delta_db": 0.001},
    "float16": {"max_abs": 1e-2, "psnr_vs_tf": 50.0, "delta_db": 0.1},
    "int8": {"max_abs": 0.15, "psnr_vs_tf": 28.0, "delta_db": 1.0},
}

#: Model kind -> "module:Class" of its exporter (ModelSpec.exporter overrides per model).
EXPORTERS = {"restorer": "tfcomp.export:ImageToImageExporter"}


# -- exporters --------------------------------------------------------------------------------
class Exporter(abc.ABC):
    """What a model kind provides for deployment.

    ``signatures()`` -> {name: tf.function with an input_signature} for the SavedModel
    (``serving_default`` included); ``float_function(tile)`` -> one tf.function on a float32
    tensor (the TFLite/ONNX graph) or TfcompError if the kind has none; ``describe()`` -> the
    signature summary recorded in the manifest. ``custom_ops``: Python modules to import before
    loading the SavedModel.
    """

    custom_ops = ()

    def __init__(self, model, spec=None):
        self.model = model
        self.spec = spec
        self.name = spec.name if spec is not None else getattr(model, "name", "model")
        self.kind = spec.kind if spec is not None else "restorer"
        self.weights = spec.weights_path if spec is not None else None
        if spec is not None and spec.custom_ops:
            self.custom_ops = tuple(spec.custom_ops)

    @abc.abstractmethod
    def signatures(self):
        """{signature name: concrete tf.function} for the SavedModel."""

    def float_function(self, tile=None):
        raise TfcompError(f"{type(self).__name__} has no float signature for TFLite/ONNX")

    def tflite_function(self, tile=None):
        """The graph TFLite converts (batch 1); the float function unless a kind needs more."""
        return self.float_function(tile)

    def describe(self):
        return {}


class ImageToImageExporter(Exporter):
    """Image in, image out (the restorers).

    ``serving_default``: ``image`` float32 [N, H, W, C] in [0, 1] -> ``restored`` float32, same
    shape, clipped to [0, 1]. ``restore_bytes``: ``image_bytes`` [N] PNG or JPEG files (JPEG
    decoded with the accurate integer IDCT, like Pillow/libjpeg-turbo's default) ->
    ``restored_bytes`` [N] PNG files (uint8, C channels). The ``_bytes`` suffix makes TF
    Serving's REST API base64-encode them.
    """

    input_name, output_name = "image", "restored"
    bytes_signature, bytes_input, bytes_output = "restore_bytes", "image_bytes", "restored_bytes"

    def __init__(self, model, spec=None, max_pixels=DEFAULT_MAX_PIXELS):
        super().__init__(model, spec)
        self.channels = int(model.input_shape[-1])
        self.max_pixels = int(max_pixels)

    def _forward(self, x):
        import tensorflow as tf
        return tf.clip_by_value(self.model(x, training=False), 0.0, 1.0)

    def float_function(self, tile=None):
        import tensorflow as tf
        c = self.channels
        shape = [None, None, None, c] if tile is None else [1, tile, tile, c]

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name=self.input_name)])
        def fn(image):
            return {self.output_name: self._forward(image)}
        return fn

    def tflite_function(self, tile=None):
        """TFLite graphs run one image: batch 1, dynamic or fixed H and W (same values as
        float_function; scalar-slope PReLUs become per-channel ones, see per_channel_prelu)."""
        import tensorflow as tf
        shape = [1, tile, tile, self.channels]
        model = per_channel_prelu(self.model)

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name=self.input_name)])
        def fn(image):
            return {self.output_name: tf.clip_by_value(model(image, training=False), 0.0, 1.0)}
        fn.keras_model = model
        return fn

    def _decode(self, data):
        """One PNG/JPEG string -> uint8 [H, W, C]; InvalidArgument for other data or huge images."""
        import tensorflow as tf
        c, limit = self.channels, self.max_pixels

        def check(h, w):
            pixels = tf.cast(h, tf.int64) * tf.cast(w, tf.int64)
            return tf.debugging.Assert(
                tf.logical_and(pixels > 0, pixels <= limit),
                [f"image_bytes: image too large or empty (limit {limit} pixels); height, width:",
                 h, w])

        def jpeg():
            hw = tf.image.extract_jpeg_shape(data)
            with tf.control_dependencies([check(hw[0], hw[1])]):
                return tf.io.decode_jpeg(data, channels=c, dct_method="INTEGER_ACCURATE")

        def png():
            wh = tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.int32, little_endian=False)
            with tf.control_dependencies([check(wh[1], wh[0])]):
                return tf.io.decode_png(data, channels=c, dtype=tf.uint8)

        def other():
            with tf.control_dependencies([tf.debugging.Assert(
                    False, ["image_bytes: not a PNG or JPEG file"])]):
                return tf.zeros([1, 1, c], tf.uint8)

        is_png = tf.logical_and(tf.strings.length(data) >= 24,
                                tf.strings.substr(data, 0, 8) == b"\x89PNG\r\n\x1a\n")
        img = tf.case([(tf.io.is_jpeg(data), jpeg), (is_png, png)], default=other,
                      exclusive=False)
        img.set_shape([None, None, c])
        return img

    def signatures(self):
        import tensorflow as tf
        limit = self.max_pixels

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, self.channels],
                                                    tf.float32, name=self.input_name)])
        def float_fn(image):
            s = tf.shape(image, out_type=tf.int64)
            ok = tf.debugging.Assert(s[0] * s[1] * s[2] <= limit, [
                f"image: batch too large (limit {limit} pixels in all); shape:", s])
            with tf.control_dependencies([ok]):
                return {self.output_name: self._forward(image)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=self.bytes_input)])
        def bytes_fn(image_bytes):
            def one(data):
                x = tf.cast(self._decode(data), tf.float32)[None] / 255.0
                y = tf.cast(tf.round(self._forward(x)[0] * 255.0), tf.uint8)
                return tf.io.encode_png(y)
            out = tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([], tf.string))
            return {self.bytes_output: out}

        return {"serving_default": float_fn, self.bytes_signature: bytes_fn}

    def describe(self):
        c = self.channels
        return {
            "serving_default": {"inputs": {self.input_name: ["float32", [-1, -1, -1, c]]},
                                "outputs": {self.output_name: ["float32", [-1, -1, -1, c]]},
                                "range": [0.0, 1.0]},
            self.bytes_signature: {"inputs": {self.bytes_input: ["string", [-1]]},
                                   "outputs": {self.bytes_output: ["string", [-1]]},
                                   "formats": ["png", "jpeg"], "max_pixels": self.max_pixels},
        }


def per_channel_prelu(model):
    """``model`` with every one-slope PReLU (shared_axes [1, 2, 3]) replaced by a PReLU holding
    that slope once per channel: the same function, but a different TFLite PRELU.

    Why: TF 2.14's tf.lite.Interpreter (its default XNNPACK delegate) and tfjs-tflite
    0.0.1-alpha.10 return wrong values (errors of 1.0 on [0, 1] images) for a PRELU with a
    [1, 1, 1] slope in a fixed-shape model; ai-edge-litert 2.3 is right, and a per-channel
    slope is right in all three. Models that clone_model cannot copy (subclassed) are returned
    unchanged.
    """
    import tensorflow as tf
    prelu = tf.keras.layers.PReLU

    def scalar(layer):
        return isinstance(layer, prelu) and list(layer.shared_axes or ()) == [1, 2, 3]

    if not any(scalar(layer) for layer in getattr(model, "layers", ())):
        return model

    def clone(layer):
        if scalar(layer):
            return prelu(shared_axes=[1, 2], name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    try:
        new = tf.keras.models.clone_model(model, clone_function=clone)
    except (ValueError, TypeError):
        return model
    for old_layer, new_layer in zip(model.layers, new.layers):
        weights = old_layer.get_weights()
        if scalar(old_layer):
            weights = [np.broadcast_to(weights[0], new_layer.alpha.shape).astype(np.float32)]
        new_layer.set_weights(weights)
    return new


def _import(target):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def resolve_model(model, weights=None):
    """(keras model, ModelSpec or None) from a registry name or a Keras model.

    ``weights``: a weights file to load instead of the registered one (e.g. a training
    run's checkpoint); only with a registry name.
    """
    from . import models
    if isinstance(model, str):
        return models.load_model(model, weights=weights), models.get_spec(model)
    if weights:
        raise InputError("weights= only applies to a registered model name")
    return model, None


def get_exporter(model, name=None, weights=None, kind="restorer", **options):
    """The exporter of a registry name, Keras model or Exporter (returned as is).

    The spec's own ``exporter`` if it names one, else the default of its kind; ``name``
    renames the export, ``options`` go to the exporter (e.g. ``max_pixels``).
    """
    if isinstance(model, Exporter):
        return model
    keras_model, spec = resolve_model(model, weights)
    kind = spec.kind if spec is not None else kind
    target = (spec.exporter if spec is not None else "") or EXPORTERS.get(kind)
    if not target:
        raise TfcompError(f"no exporter for model kind {kind!r}")
    exporter = _import(target)(keras_model, spec, **options)
    exporter.kind = kind
    if name:
        exporter.name = name
    if weights:
        exporter.weights = os.path.abspath(weights)
    _check_name(exporter.name)
    return exporter


def _check_name(name):
    ok = name and all(ch.isalnum() or ch in "-_." for ch in name) and not name.startswith(".")
    if not ok:
        raise InputError(f"invalid model name for export: {name!r} (letters, digits, - _ .)")


def _check_out(out_dir):
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"{out_dir}: exists and is not a directory")
    os.makedirs(out_dir, exist_ok=True)


# -- SavedModel -------------------------------------------------------------------------------
def export_savedmodel(model, out_dir, name=None, version=1, force=False, weights=None,
                      kind="restorer", max_pixels=DEFAULT_MAX_PIXELS, update_config=True,
                      serving_base=None):
    """Writes OUT/NAME/VERSION/ (TF Serving layout) atomically; returns that path.

    ``model`` is a registry name or a Keras model (``name`` then names the export). An
    existing version is replaced only with ``force``. With ``update_config`` the
    OUT/models.config listing every SavedModel under OUT is (re)written.
    """
    import tensorflow as tf
    from . import __version__
    options = {"max_pixels": max_pixels} if max_pixels != DEFAULT_MAX_PIXELS else {}
    exporter = get_exporter(model, name, weights, kind, **options)
    name = exporter.name
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError(f"version must be a positive integer, got {version!r}")
    _check_out(out_dir)
    base = os.path.join(out_dir, name)
    final = os.path.join(base, str(version))
    if os.path.exists(final) and not force:
        raise InputError(f"{final} already exists; pass a new --version or --force to replace it")
    os.makedirs(base, exist_ok=True)
    # a non-integer name: TF Serving ignores the folder while it is being written
    tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base)
    try:
        module = tf.Module()
        module.model_variables = list(exporter.model.variables)  # tracked; Keras layers are not
        sigs = exporter.signatures()
        for key, fn in sigs.items():
            setattr(module, "sig_" + key, fn)
        path = os.path.join(tmp, "model")
        tf.saved_model.save(module, path, signatures={k: fn.get_concrete_function()
                                                      for k, fn in sigs.items()})
        manifest = {
            "model": name,
            "kind": exporter.kind,
            "version": version,
            "custom_ops": list(exporter.custom_ops),
            "load": ("import " + ", ".join(exporter.custom_ops) + " before tf.saved_model.load"
                     if exporter.custom_ops else "stock TensorFlow / tensorflow_model_server"),
            "signatures": exporter.describe(),
            "weights": exporter.weights,
            "tfcomp": __version__,
            "tensorflow": tf.__version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
        with open(os.path.join(path, MANIFEST), "w") as f:
            json.dump(manifest, f, indent=1)
        if os.path.exists(final):  # --force: the old version goes out with the temp folder
            os.rename(final, os.path.join(tmp, "old"))
        os.rename(path, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if update_config:
        update_models_config(out_dir, serving_base=serving_base)
    return final


def find_savedmodels(out_dir):
    """{name: [versions]} of the TF Serving layouts directly under ``out_dir``."""
    found = {}
    if not os.path.isdir(out_dir):
        return found
    for name in sorted(os.listdir(out_dir)):
        base = os.path.join(out_dir, name)
        if name.startswith(".") or not os.path.isdir(base):
            continue
        versions = sorted(int(v) for v in os.listdir(base) if v.isdigit() and os.path.isfile(
            os.path.join(base, v, "saved_model.pb")))
        if versions:
            found[name] = versions
    return found


def update_models_config(out_dir, serving_base=None, filename="models.config"):
    """Writes OUT/models.config listing every SavedModel under OUT (TF Serving text format).

    Entries already in the file are kept as they are (hand-edited version policies, labels,
    base paths, models stored elsewhere); an entry is dropped only when its model folder was
    under OUT (or at ``serving_base``/NAME) and is gone. New models get
    ``model_version_policy { all {} }`` and ``base_path`` = the absolute folder, or
    ``serving_base/NAME`` (e.g. ``/models`` inside a container); a given ``serving_base`` is
    also applied to the existing entries of models under OUT.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2
    from .imageio import write_bytes
    from .serving.config import parse_config_text
    path = os.path.join(out_dir, filename)
    config = model_server_config_pb2.ModelServerConfig()
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            config = parse_config_text(f.read(), path)
    found = find_savedmodels(out_dir)
    out_abs = os.path.abspath(out_dir)

    def base_of(name):
        if serving_base:
            return serving_base.rstrip("/") + "/" + name
        return os.path.join(out_abs, name)

    new = model_server_config_pb2.ModelServerConfig()
    seen = set()
    for entry in config.model_config_list.config:
        ours = os.path.dirname(os.path.abspath(entry.base_path)) == out_abs or (
            serving_base and entry.base_path == base_of(entry.name))
        if entry.name not in found and ours:
            continue  # its folder under OUT is gone
        if entry.name in found and serving_base:
            entry.base_path = base_of(entry.name)
        new.model_config_list.config.add().CopyFrom(entry)
        seen.add(entry.name)
    for name in found:
        if name not in seen:
            c = new.model_config_list.config.add()
            c.name, c.base_path, c.model_platform = name, base_of(name), "tensorflow"
            c.model_version_policy.all.SetInParent()
    text = ("# TF Serving model config, written by `tfcomp export` "
            "(entries edited by hand are kept).\n")
    text += text_format.MessageToString(new)
    write_bytes(path, text.encode())
    return path


# -- TFLite -----------------------------------------------------------------------------------
def representative_images(n=12, size=96, channels=3, qualities=(10, 20, 30, 40, 50, 70), seed=7):
    """Calibration inputs: crops of scikit-image's photos, JPEG-compressed with tfcomp's jpeg
    codec at varying quality, as float32 [1, size, size, C] in [0, 1]."""
    from .codecs import get_codec
    from .demo import sample_images
    rng = np.random.default_rng(seed)
    photos = [img for _, img in sample_images()]
    codec = get_codec("jpeg")
    out = []
    for i in range(n):
        crop = _crop(photos[i % len(photos)], size, size, rng)
        if channels == 1:
            crop = _gray(crop)
        q = qualities[i % len(qualities)]
        dec = codec.decode(codec.encode(crop, q))
        out.append((dec.astype(np.float32) / 255.0).reshape(1, size, size, channels))
    return out


def _gray(rgb):
    return np.round(rgb.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8)[:, :, None]


def _crop(img, h, w, rng):
    """A random h x w crop; smaller photos are edge-padded first."""
    ph, pw = max(0, h - img.shape[0]), max(0, w - img.shape[1])
    if ph or pw:
        img = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge")
    y = int(rng.integers(0, img.shape[0] - h + 1))
    x = int(rng.integers(0, img.shape[1] - w + 1))
    return np.ascontiguousarray(img[y:y + h, x:x + w])


def export_tflite(model, out_dir, name=None, quantize="float32", tile=None, weights=None,
                  kind="restorer", representative=None):
    """Writes OUT/NAME[-tileT]-QUANT.tflite and returns its path.

    Input ``image`` float32 [1, H, W, C] (dynamic H, W unless ``tile``), output ``restored``;
    float I/O for every quantisation. int8 calibrates on ``representative`` (default:
    :func:`representative_images`, JPEG-compressed photo crops).
    """
    import tensorflow as tf
    from .imageio import write_bytes
    if quantize not in QUANTIZATIONS:
        raise InputError(f"quantize must be one of {', '.join(QUANTIZATIONS)}, got {quantize!r}")
    exporter, tile = _single_file_export(model, out_dir, name, weights, kind, tile)
    name = exporter.name
    fn = exporter.tflite_function(tile)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function()], getattr(fn, "keras_model", exporter.model))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        samples = representative or representative_images(
            size=tile or 96, channels=exporter.channels)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([s] for s in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        data = converter.convert()
    except Exception as e:  # converter errors are long MLIR dumps: keep the first line
        raise TfcompError(f"TFLite conversion of {name!r} failed: "
                          f"{str(e).strip().splitlines()[0] if str(e).strip() else e!r}") from None
    path = os.path.join(out_dir, f"{name}{_tile_tag(tile)}-{quantize}.tflite")
    write_bytes(path, data)
    return path


def _single_file_export(model, out_dir, name, weights, kind, tile):
    """Shared checks of the one-file exports (TFLite, ONNX): (exporter, checked tile)."""
    tile = _check_tile(tile)
    exporter = get_exporter(model, name, weights, kind)
    _check_out(out_dir)
    return exporter, tile


def _check_tile(tile):
    if tile is None:
        return None
    if not isinstance(tile, int) or isinstance(tile, bool) or not 8 <= tile <= 4096:
        raise InputError(f"tile must be an integer in 8..4096, got {tile!r}")
    return tile


def _tile_tag(tile):
    return f"-tile{tile}" if tile else ""


def _interpreter_class(runtime):
    if runtime == "litert":
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    if runtime != "tf":
        raise InputError(f"unknown TFLite runtime {runtime!r} (tf or litert)")
    import tensorflow as tf
    return tf.lite.Interpreter


class TFLiteRunner:
    """A tfcomp TFLite export ready to run on float32 [1, H, W, C] images.

    ``runtime``: "tf" (tf.lite.Interpreter) or "litert" (ai-edge-litert, the standalone
    runtime). Dynamic-shape models are resized to each input; ``fixed_shape`` is the input
    shape of a tile model (None for dynamic ones).
    """

    def __init__(self, path, runtime="tf", num_threads=None):
        self.path, self.runtime = path, runtime
        self.interp = _interpreter_class(runtime)(model_path=path, num_threads=num_threads)
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]
        sig = tuple(int(d) for d in self.inp.get("shape_signature", self.inp["shape"]))
        self.fixed_shape = None if -1 in sig else sig
        self._shape = None

    def __call__(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.fixed_shape is not None and x.shape != self.fixed_shape:
            raise InputError(f"{os.path.basename(self.path)} takes {list(self.fixed_shape)}, "
                             f"got {list(x.shape)}")
        if x.shape != self._shape:
            if self.fixed_shape is None:
                self.interp.resize_tensor_input(self.inp["index"], x.shape, strict=True)
            self.interp.allocate_tensors()
            self._shape = x.shape
        self.interp.set_tensor(self.inp["index"], x)
        self.interp.invoke()
        return self.interp.get_tensor(self.out["index"]).copy()


def run_tflite(path, x, runtime="tf", num_threads=None):
    """Runs a tfcomp TFLite export once on float32 [1, H, W, C] (see :class:`TFLiteRunner`)."""
    return TFLiteRunner(path, runtime, num_threads)(x)


# -- ONNX -------------------------------------------------------------------------------------
def export_onnx(model, out_dir, name=None, opset=DEFAULT_OPSET, tile=None, weights=None,
                kind="restorer"):
    """Writes OUT/NAME[-tileT].onnx (tf2onnx, float signature: ``image`` -> ``restored``)."""
    import tf2onnx
    from .imageio import write_bytes
    if opset not in OPSETS:
        raise InputError(f"opset must be in {OPSETS.start}..{OPSETS.stop - 1}, got {opset!r}")
    exporter, tile = _single_file_export(model, out_dir, name, weights, kind, tile)
    name = exporter.name
    fn = exporter.float_function(tile)
    try:
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature,
                                                 opset=opset)
    except Exception as e:
        raise TfcompError(f"ONNX conversion of {name!r} failed: {type(e).__name__}: {e}") from None
    proto.doc_string = f"tfcomp export of {name}"
    path = os.path.join(out_dir, f"{name}{_tile_tag(tile)}.onnx")
    write_bytes(path, proto.SerializeToString())
    return path


class OnnxRunner:
    """An ONNX export under onnxruntime's CPU provider; ``fixed_shape`` as for TFLiteRunner."""

    def __init__(self, path, threads=None):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.path = path
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.input = self.sess.get_inputs()[0]
        dims = self.input.shape
        self.fixed_shape = tuple(dims) if all(isinstance(d, int) for d in dims) else None

    def __call__(self, x):
        return self.sess.run(None, {self.input.name: np.asarray(x, np.float32)})[0]


def run_onnx(path, x, threads=None):
    """Runs an ONNX export once on float32 [N, H, W, C]."""
    return OnnxRunner(path, threads)(x)


# -- one entry point ----------------------------------------------------------------------------
def export(model, fmt, out_dir, quantize=None, tile=None, version=1, force=False, weights=None,
           opset=DEFAULT_OPSET, serving_base=None, name=None, kind="restorer",
           max_pixels=DEFAULT_MAX_PIXELS):
    """Exports ``model`` in ``fmt`` ("savedmodel", "tflite", "onnx" or "all"); returns a list of
    (format, quantization, path). "all" = SavedModel + TFLite float32/float16 + ONNX (int8
    only when asked for: ``fmt="tflite", quantize="int8"``)."""
    if fmt not in FORMATS + ("all",):
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}, all")
    if quantize is not None and fmt != "tflite":
        raise InputError("--quantize applies to --format tflite only")
    if tile is not None and fmt == "savedmodel":
        raise InputError("--tile applies to tflite and onnx (the SavedModel takes any size)")
    tile = _check_tile(tile)
    options = {"max_pixels": max_pixels} if max_pixels != DEFAULT_MAX_PIXELS else {}
    exporter = get_exporter(model, name, weights, kind, **options)  # loads weights once
    done = []
    if fmt in ("savedmodel", "all"):
        done.append(("savedmodel", "float32", export_savedmodel(
            exporter, out_dir, version=version, force=force, serving_base=serving_base)))
    if fmt in ("tflite", "all"):
        for q in ([quantize or "float32"] if fmt == "tflite" else ALL_QUANTIZATIONS):
            done.append(("tflite", q, export_tflite(exporter, out_dir, quantize=q, tile=tile)))
    if fmt in ("onnx", "all"):
        done.append(("onnx", "float32", export_onnx(exporter, out_dir, opset=opset, tile=tile)))
    return done


# -- parity -------------------------------------------------------------------------------------
def parity_images(height=96, width=128, quality=20, channels=3, seed=11):
    """[(name, original uint8, JPEG bytes, decoded uint8)]: one crop of each scikit-image photo,
    JPEG-compressed with tfcomp's jpeg codec (what a restorer sees in use)."""
    from .codecs import get_codec
    from .demo import sample_images
    rng = np.random.default_rng(seed)
    codec = get_codec("jpeg")
    out = []
    for name, photo in sample_images():
        crop = _crop(photo, height, width, rng)
        if channels == 1:
            crop = _gray(crop)
        data = codec.encode(crop, quality)
        dec = codec.decode(data)
        out.append((name, crop.reshape(height, width, channels), data,
                    dec.reshape(height, width, channels)))
    return out


def _psnr(a, b):
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def _runners(fmt, path, runtimes):
    """[(runtime label, callable float32 [1,H,W,C] -> [1,H,W,C], fixed input shape or None)]."""
    if fmt == "savedmodel":
        import tensorflow as tf
        fn = tf.saved_model.load(path).signatures["serving_default"]
        key = list(fn.structured_outputs)[0]
        return [("tf.saved_model", lambda x: fn(tf.constant(x))[key].numpy(), None)]
    if fmt == "tflite":
        out = []
        for rt in runtimes:
            try:
                r = TFLiteRunner(path, rt)
            except ImportError:
                continue  # ai-edge-litert not installed
            out.append(("tf.lite" if rt == "tf" else "ai-edge-litert", r, r.fixed_shape))
        return out
    if fmt == "onnx":
        r = OnnxRunner(path)
        return [("onnxruntime", r, r.fixed_shape)]
    raise InputError(f"unknown format {fmt!r}")


def parity(model, artifacts=None, tile=None, quality=20, size=(96, 128), runtimes=("tf", "litert"),
           weights=None, name=None, workdir=None, check_bytes=True):
    """Runs each export and TF on JPEG-compressed photo crops; returns one row (dict) per
    (artifact, runtime) with max_abs (on [0, 1]), psnr_vs_tf (export output against TF's),
    psnr_tf / psnr_export (against the uncompressed crop), delta_db, ms per image and ok
    (within :data:`TOLERANCES`).

    ``artifacts``: [(format, quantization, path)] as returned by :func:`export`; None exports
    everything (``tile``: TFLite/ONNX at that fixed size) into ``workdir`` or a temp folder.
    For a SavedModel the ``restore_bytes`` signature is also compared with
    tfcomp.restorer.restore.restore_array on the Pillow-decoded JPEG (uint8 levels).
    """
    import tensorflow as tf
    exporter = get_exporter(model, name, weights)
    if not isinstance(exporter, ImageToImageExporter):
        raise TfcompError(f"parity is defined for image-to-image models, not {exporter.kind!r}")
    tmp = None
    if artifacts is None:
        tmp = workdir or tempfile.mkdtemp(prefix="tfcomp-parity-")
        artifacts = [("savedmodel", "float32",
                      export_savedmodel(exporter, tmp, update_config=False))]
        for q in ALL_QUANTIZATIONS:
            artifacts.append(("tflite", q, export_tflite(exporter, tmp, quantize=q, tile=tile)))
        artifacts.append(("onnx", "float32", export_onnx(exporter, tmp, tile=tile)))
    reference = exporter.float_function()
    image_sets = {}

    def images_for(hw):
        if hw not in image_sets:
            cases = parity_images(hw[0], hw[1], quality, exporter.channels)
            image_sets[hw] = [(n, orig.astype(np.float32)[None] / 255.0, data,
                               dec.astype(np.float32)[None] / 255.0, dec) for n, orig, data, dec
                              in cases]
            image_sets[hw] = [c + (reference(tf.constant(c[3]))[exporter.output_name].numpy(),)
                              for c in image_sets[hw]]
        return image_sets[hw]

    rows = []
    try:
        for fmt, quant, path in artifacts:
            for runtime, run, fixed in _runners(fmt, path, runtimes):
                cases = images_for(tuple(fixed[1:3]) if fixed else tuple(size))
                errs, vs_tf, p_tf, p_out, deltas, times = [], [], [], [], [], []
                for _, orig, _, x, _, ref in cases:
                    t = time.perf_counter()
                    y = run(x)
                    times.append(time.perf_counter() - t)
                    errs.append(float(np.abs(y - ref).max()))
                    vs_tf.append(_psnr(y, ref))
                    p_tf.append(_psnr(ref, orig))
                    p_out.append(_psnr(np.clip(y, 0, 1), orig))
                    deltas.append(abs(p_out[-1] - p_tf[-1]))
                rows.append(_row(fmt, quant, runtime, path, errs, vs_tf, p_tf, p_out, deltas,
                                 times, cases))
            if fmt == "savedmodel" and check_bytes:
                rows.append(_bytes_row(path, exporter, images_for(tuple(size))))
    finally:
        if tmp is not None and workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _row(fmt, quant, runtime, path, errs, vs_tf, p_tf, p_out, deltas, times, cases):
    tol = TOLERANCES[quant]
    row = {"format": fmt, "quantization": quant, "runtime": runtime,
           "path": path, "images": len(cases), "size": list(cases[0][1].shape[1:3]),
           "max_abs": max(errs), "psnr_vs_tf": min(vs_tf),
           "psnr_jpeg": float(np.mean([_psnr(c[3], c[1]) for c in cases])),
           "psnr_tf": float(np.mean(p_tf)), "psnr_export": float(np.mean(p_out)),
           "delta_db": max(deltas), "ms": 1000 * float(np.median(times)), "tolerance": tol}
    row["ok"] = bool(row["max_abs"] <= tol["max_abs"] and row["psnr_vs_tf"] >= tol["psnr_vs_tf"]
                     and row["delta_db"] <= tol["delta_db"])
    return row


def _bytes_row(path, exporter, cases):
    """restore_bytes on the JPEG files vs restore_array on Pillow's decode (uint8 levels)."""
    import tensorflow as tf
    from .restorer.restore import restore_array
    fn = tf.saved_model.load(path).signatures[exporter.bytes_signature]
    errs, levels, vs, times, p_out, p_tf = [], [], [], [], [], []
    for _, orig, data, _, dec, _ in cases:
        t = time.perf_counter()
        png = fn(tf.constant([data]))[exporter.bytes_output].numpy()[0]
        times.append(time.perf_counter() - t)
        got_u8 = tf.io.decode_png(png).numpy()
        want_u8 = restore_array(exporter.model, dec)
        # Compared in integer grey levels: a 1-level difference is exactly 1/255 here (float32
        # differences of x/255 values can exceed 1/255 by rounding).
        levels.append(int(np.abs(got_u8.astype(np.int16) - want_u8.astype(np.int16)).max()))
        errs.append(levels[-1] / 255.0)
        got = got_u8.astype(np.float32) / 255.0
        want = want_u8.astype(np.float32) / 255.0
        vs.append(_psnr(got, want))
        p_out.append(_psnr(got, orig[0]))
        p_tf.append(_psnr(want, orig[0]))
    row = {"format": "savedmodel", "quantization": "uint8", "runtime": exporter.bytes_signature,
           "path": path, "images": len(cases), "size": list(cases[0][1].shape[1:3]),
           "max_abs": max(errs), "psnr_vs_tf": min(vs),
           "psnr_jpeg": float(np.mean([_psnr(c[3], c[1]) for c in cases])),
           "psnr_tf": float(np.mean(p_tf)), "psnr_export": float(np.mean(p_out)),
           "delta_db": max(abs(a - b) for a, b in zip(p_out, p_tf)),
           "ms": 1000 * float(np.median(times)),
           "tolerance": {"max_abs": 1 / 255, "delta_db": 0.01}}
    row["ok"] = bool(max(levels) <= 1 and row["delta_db"] <= 0.01)
    return row


def format_parity(rows):
    """The parity rows as a plain-text table."""
    from .cli import format_table
    table = [(r["format"], r["quantization"], r["runtime"], f"{r['max_abs']:.2e}",
              _db(r["psnr_vs_tf"]), _db(r["psnr_jpeg"]), _db(r["psnr_tf"]), _db(r["psnr_export"]),
              f"{r['delta_db']:.4f}", f"{r['ms']:.1f}", "ok" if r["ok"] else "FAIL")
             for r in rows]
    return format_table(["format", "quant", "runtime", "max|err|", "PSNR vs TF", "PSNR jpeg",
                         "PSNR TF", "PSNR export", "delta dB", "ms/img", "tolerance"], table)


def _db(v):
    return "inf" if v == float("inf") else f"{v:.2f}"
