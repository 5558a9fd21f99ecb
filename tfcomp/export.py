"""Deployment export: SavedModel (TF Serving layout), TFLite, ONNX, `models.config`, parity.

A registered model (tfcomp.models) or a Keras model is exported through an *exporter*, chosen
by the model's kind (:data:`EXPORTERS`; ``ModelSpec.exporter = "module:Class"`` overrides it
per model). An exporter says:

* ``signatures()``: the SavedModel's tf.functions (e.g. ``compress`` / ``decompress``);
* ``networks()``: the float networks (:class:`Network`) TFLite and ONNX get, one file each;
* ``formats()``: format -> None when it applies, else the reason it cannot exist, and
  ``notes()``: parts of an applicable format that cannot exist (e.g. the JPEG coder in TFLite);
* ``custom_ops`` / ``assets()``: what a process must load before the SavedModel (Python modules
  such as tensorflow_compression, or op libraries copied into ``assets.extra/``);
* ``savedmodel_rows()``: the parity checks of its SavedModel signatures.

The per-method exporters live in their packages (tfcomp.hiding.export, tfcomp.jpdse.export);
the restorers' :class:`ImageToImageExporter` is here.

Layouts written under ``OUT``::

    OUT/models.config                         TF Serving model_config_list (all SavedModels)
    OUT/NAME/<version>/saved_model.pb         SavedModel, TF Serving layout
    OUT/NAME/<version>/variables/...
    OUT/NAME/<version>/assets.extra/tfcomp.json   what the export needs at load time
    OUT/NAME[-NET][-tileT]-float32|float16|int8.tflite     NET: the network, if several
    OUT/NAME[-NET][-tileT].onnx
"""

import abc
import datetime
import importlib
import json
import math
import os
import shutil
import tempfile
import time

import numpy as np

from .errors import InputError, TfcompError
from .metrics import psnr

__all__ = [
    "FORMATS", "QUANTIZATIONS", "ALL_QUANTIZATIONS", "TOLERANCES", "DEFAULT_OPSET", "EXPORTERS",
    "Exporter", "Network", "ImageToImageExporter", "resolve_model", "get_exporter",
    "export_savedmodel", "export_tflite", "export_onnx", "export", "export_command",
    "find_savedmodels", "update_models_config", "representative_images", "parity_images",
    "photo_crops", "run_tflite", "run_onnx", "parity", "format_parity", "parity_row",
    "parity_record", "read_manifest", "load_custom_ops", "codec_rows", "not_applicable",
    "MANIFEST",
]

FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("float32", "float16", "int8")
#: The TFLite quantisations `--format all` writes: int8 is explicit only (`--format tflite
#: --quantize int8`), since it does not meet its tolerance for the shipped restorers
#: (README: the measured loss is 1.1-1.9 dB).
ALL_QUANTIZATIONS = ("float32", "float16")
DEFAULT_OPSET = 17
OPSETS = range(13, 18)
#: Where each SavedModel records what a loading process needs (TF Serving ignores the folder).
MANIFEST = os.path.join("assets.extra", "tfcomp.json")
#: Largest decoded image the bytes signature accepts (checked from the header, before decoding).
DEFAULT_MAX_PIXELS = 2048 * 2048

#: Per-quantisation parity limits against TF on JPEG-decoded photos, measured (see README):
#: max_abs on [0, 1] outputs, psnr_vs_tf = PSNR of the export's output against TF's output,
#: delta_db = |PSNR(export, original) - PSNR(TF, original)|. A Network may override them.
TOLERANCES = {
    "float32": {"max_abs": 1e-5, "psnr_vs_tf": 90.0, "delta_db": 0.001},
    "float16": {"max_abs": 1e-2, "psnr_vs_tf": 50.0, "delta_db": 0.1},
    "int8": {"max_abs": 0.15, "psnr_vs_tf": 28.0, "delta_db": 1.0},
}

#: Model kind -> "module:Class" of its exporter (ModelSpec.exporter overrides per model).
EXPORTERS = {
    "restorer": "tfcomp.export:ImageToImageExporter",
    "hiding": "tfcomp.hiding.export:HidingExporter",
    "semantic": "tfcomp.jpdse.export:JpdseExporter",
    "learned": "tfcomp.cwic.export:CwicExporter",
}


# -- networks (TFLite / ONNX) -----------------------------------------------------------------
class Network:
    """One float network of an export: what TFLite and ONNX convert and parity checks.

    ``key``: "" for a model's only network (files NAME-...), else its name (NAME-KEY-...).
    ``cases(height, width, quality)`` -> [(name, x, target, baseline)] for images of height x
    width pixels: float32 [1, H', W', C] inputs ``x``, the clean image ``target`` the output is
    scored against (None for a network whose output is not a picture, e.g. a codec's
    analysis transform: then only the agreement with TF counts) and the ``baseline`` (e.g.
    the JPEG the network improves on; None if there is none), all in [0, 1].
    ``pixels_per_input``: image pixels per input position along each side (1 for an image;
    8 for a decoder whose input is one vector per 8x8 block): a fixed T x T input is checked
    on images of T * pixels_per_input pixels per side.
    ``tolerances``: overrides of :data:`TOLERANCES` per quantisation (measured, see README).
    Outputs are clipped to [0, 1].
    """

    def __init__(self, key, model, input_name, output_name, cases, tolerances=None,
                 description="", representative=None, pixels_per_input=1):
        self.key, self.model = key, model
        self.pixels_per_input = int(pixels_per_input)
        self.input_name, self.output_name = input_name, output_name
        self.channels = int(model.input_shape[-1])
        self._cases = cases
        self.tolerances = {q: dict(t, **(tolerances or {}).get(q, {}))
                           for q, t in TOLERANCES.items()}
        self.description = description
        self._representative = representative

    def _forward(self, x, model=None):
        import tensorflow as tf
        return tf.clip_by_value((model or self.model)(x, training=False), 0.0, 1.0)

    def function(self, tile=None):
        """tf.function: float32 [N, H, W, C] (or [1, T, T, C]) -> {output_name: [0, 1] image}."""
        import tensorflow as tf
        shape = [None, None, None, self.channels] if tile is None else [1, tile, tile,
                                                                        self.channels]

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name=self.input_name)])
        def fn(x):
            return {self.output_name: self._forward(x)}
        return fn

    def tflite_function(self, tile=None):
        """The graph TFLite converts: batch 1, dynamic or fixed H and W (same values as
        :meth:`function`; scalar-slope PReLUs become per-channel ones, see per_channel_prelu)."""
        import tensorflow as tf
        model = per_channel_prelu(self.model)

        @tf.function(input_signature=[tf.TensorSpec([1, tile, tile, self.channels], tf.float32,
                                                    name=self.input_name)])
        def fn(x):
            return {self.output_name: self._forward(x, model)}
        fn.keras_model = model
        return fn

    def cases(self, height, width, quality):
        return self._cases(height, width, quality)

    def representative(self, size, quality):
        """int8 calibration inputs: float32 [1, size, size, C] for a fixed input size, else
        inputs of 96 x 96 pixel images."""
        if self._representative is not None:
            return self._representative(size or 96)
        side = size * self.pixels_per_input if size else 96
        return [c[1] for c in self.cases(side, side, quality)]

    def file_stem(self, name):
        return f"{name}-{self.key}" if self.key else name


# -- exporters --------------------------------------------------------------------------------
class Exporter(abc.ABC):
    """What a model kind provides for deployment (see the module docstring).

    ``custom_ops``: what to load before the SavedModel: Python module names (imported) and op
    library paths ending in ``.so``, relative to the SavedModel folder (``tf.load_op_library``);
    ``assets()`` -> {path relative to the SavedModel: source file} copies such libraries in.
    """

    custom_ops = ()
    #: Default quality of the parity check (a kind's own knob: JPEG quality, BPG QP...).
    check_quality_default = 20
    #: Image size (height, width) of the parity check.
    check_size = (96, 128)

    def __init__(self, model, spec=None):
        self.model = model
        self.spec = spec
        self.name = spec.name if spec is not None else getattr(model, "name", "model")
        self.kind = spec.kind if spec is not None else "restorer"
        self.weights = spec.weights_path if spec is not None else None
        if spec is not None and spec.custom_ops:
            self.custom_ops = tuple(spec.custom_ops)
        if spec is not None and spec.codec:  # a codec's model: its own knob
            self.check_quality_default = spec.quality_default

    @property
    def model_name(self):
        """The registry name of the exported model (the export's name may differ)."""
        return self.spec.name if self.spec is not None else self.name

    @abc.abstractmethod
    def signatures(self):
        """{signature name: tf.function with an input_signature} for the SavedModel."""

    def networks(self):
        """{key: Network} converted to TFLite / ONNX (empty: those formats do not apply)."""
        return {}

    def formats(self):
        """{format: None if it applies, else the reason it cannot exist}."""
        none = "this exporter defines no float network to convert"
        nets = bool(self.networks())
        return {"savedmodel": None, "tflite": None if nets else none,
                "onnx": None if nets else none}

    def notes(self):
        """[(what, reason)]: parts of an applicable format that cannot exist."""
        return []

    def assets(self):
        return {}

    def variables(self):
        return list(self.model.variables)

    def describe(self):
        return {}

    def check_quality(self, quality=None):
        """The parity check's quality: ``quality`` if given (checked), else the default."""
        return self.check_quality_default if quality is None else int(quality)

    def check_description(self, quality):
        """What the parity check runs on, in words (the CLI prints it above the table)."""
        if self.spec is not None and self.spec.codec:
            return f"{self.spec.codec} quality {quality} on crops of scikit-image photos"
        return f"JPEG q{quality} crops of scikit-image photos"

    def cli_codec(self):
        """The registry codec whose files the SavedModel writes and reads (None if none)."""
        if self.spec is None or not self.spec.codec:
            return None
        from .codecs import get_codec
        return get_codec(self.spec.codec)

    def savedmodel_rows(self, path, quality, size, cache):
        """Parity rows of the SavedModel at ``path`` (``cache``: see :func:`parity`). By
        default a codec SavedModel (``compress`` and ``decompress``) is checked against the
        registry codec (:func:`codec_rows`); other kinds override this."""
        import tensorflow as tf
        codec = self.cli_codec()
        loaded = tf.saved_model.load(path)
        if codec is None or not {"compress", "decompress"} <= set(loaded.signatures):
            return []
        return codec_rows(loaded, path, codec, quality, size)

    def network(self, key=None):
        nets = self.networks()
        if not nets:
            raise InputError(f"{self.name}: {self.formats()['tflite']}")
        if key is None:
            return next(iter(nets.values()))
        try:
            return nets[key]
        except KeyError:
            raise InputError(f"{self.name} has no network {key!r} (it has: "
                             f"{', '.join(k or '(default)' for k in nets)})") from None


def photo_crops(height, width, channels=3, seed=11):
    """[(name, uint8 [H, W, C])]: one crop of each scikit-image sample photo."""
    from .demo import sample_images
    rng = np.random.default_rng(seed)
    out = []
    for name, photo in sample_images():
        crop = _crop(photo, height, width, rng)
        if channels == 1:
            crop = _gray(crop)
        out.append((name, crop.reshape(height, width, channels)))
    return out


def u8_to_float(image):
    """uint8 [H, W, C] -> float32 [1, H, W, C] in [0, 1]."""
    return np.asarray(image, np.float32)[None] / 255.0


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
        self._network = Network("", model, self.input_name, self.output_name, self._cases,
                                description="the restorer: decoded JPEG -> restored image",
                                representative=lambda size: representative_images(
                                    size=size, channels=self.channels))

    def _cases(self, height, width, quality):
        return [(n, u8_to_float(dec), u8_to_float(orig), u8_to_float(dec))
                for n, orig, _, dec in parity_images(height, width, quality, self.channels)]

    def networks(self):
        return {"": self._network}

    def _forward(self, x):
        return self._network._forward(x)

    def float_function(self, tile=None):
        return self._network.function(tile)

    def tflite_function(self, tile=None):
        return self._network.tflite_function(tile)

    def _decode(self, data):
        """One PNG/JPEG string -> uint8 [H, W, C]; InvalidArgument for other data or huge images."""
        import tensorflow as tf
        c, limit = self.channels, self.max_pixels

        def check(h, w):
            return assert_pixels(h, w, limit, "image_bytes")

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

    def savedmodel_rows(self, path, quality, size, cache):
        import tensorflow as tf
        loaded = tf.saved_model.load(path)
        rows = [savedmodel_float_row(loaded.signatures["serving_default"], self._network,
                                     path, quality, size, cache)]
        if cache.get("check_bytes", True):
            rows.append(self._bytes_row(loaded, path, quality, size))
        return rows

    def _bytes_row(self, loaded, path, quality, size):
        """restore_bytes on the JPEG files vs restore_array on Pillow's decode (uint8 levels)."""
        import tensorflow as tf
        from .restorer.restore import restore_array
        fn = loaded.signatures[self.bytes_signature]
        got, want, cases, times = [], [], [], []
        for _, orig, data, dec in parity_images(size[0], size[1], quality, self.channels):
            t = time.perf_counter()
            png = fn(tf.constant([data]))[self.bytes_output].numpy()[0]
            times.append(time.perf_counter() - t)
            got.append(tf.io.decode_png(png).numpy())
            want.append(restore_array(self.model, dec))
            cases.append((orig, dec))
        return uint8_row("savedmodel", self.bytes_signature, "", path, got, want, cases, times)


def codec_rows(loaded, path, codec, quality, size):
    """A codec SavedModel against the CLI's codec on photo crops: ``compress`` (inputs
    ``image`` and, if it takes one, ``quality``) must write the same bytes as
    ``codec.encode``; ``decompress`` of the codec's files must give its pixels (1 level).

    The file is the compress output named like decompress's one string input (e.g.
    ``jpeg_bytes``); [] when decompress takes more than the file.
    """
    import tensorflow as tf
    compress, decompress = loaded.signatures["compress"], loaded.signatures["decompress"]
    takes = compress.structured_input_signature[1]
    files = decompress.structured_input_signature[1]
    if len(files) != 1:
        return []
    key = next(iter(files))
    crops = photo_crops(*size)
    ours, theirs, t_c = [], [], []
    for _, crop in crops:
        feeds = {"image": tf.constant(crop)}
        if "quality" in takes:
            feeds["quality"] = tf.constant(quality, tf.int32)
        t = time.perf_counter()
        ours.append(compress(**feeds)[key].numpy())
        t_c.append(time.perf_counter() - t)
        theirs.append(codec.encode(crop, quality))
    same = sum(a == b for a, b in zip(ours, theirs))
    rows = [uint8_row("savedmodel", "compress", "", path, [codec.decode(f) for f in ours],
                      [codec.decode(f) for f in theirs], [(c, None) for _, c in crops], t_c,
                      max_levels=0, note=f"{same}/{len(crops)} files byte-identical",
                      ok=same == len(crops))]
    got, t_d = [], []
    for data in theirs:
        t = time.perf_counter()
        got.append(decompress(**{key: tf.constant(data)})["image"].numpy())
        t_d.append(time.perf_counter() - t)
    rows.append(uint8_row("savedmodel", "decompress", "", path, got,
                          [codec.decode(f) for f in theirs], [(c, None) for _, c in crops], t_d))
    return rows


def assert_pixels(height, width, limit, what):
    """A graph assertion that 0 < height * width <= limit (InvalidArgument otherwise)."""
    import tensorflow as tf
    pixels = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
    return tf.debugging.Assert(
        tf.logical_and(pixels > 0, pixels <= limit),
        [f"{what}: image too large or empty (limit {limit} pixels); height, width:",
         height, width])


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
    cls = _import(target)
    exporter = cls(keras_model, spec, **options)
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
        module.model_variables = exporter.variables()  # tracked; Keras layers are not
        sigs = exporter.signatures()
        for key, fn in sigs.items():
            setattr(module, "sig_" + key, fn)
        path = os.path.join(tmp, "model")
        tf.saved_model.save(module, path, signatures={k: fn.get_concrete_function()
                                                      for k, fn in sigs.items()})
        for rel, source in exporter.assets().items():
            os.makedirs(os.path.dirname(os.path.join(path, rel)), exist_ok=True)
            shutil.copy2(source, os.path.join(path, rel))
        manifest = {
            "model": name,
            "kind": exporter.kind,
            "version": version,
            "custom_ops": list(exporter.custom_ops),
            "load": load_instructions(exporter.custom_ops),
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


def load_instructions(custom_ops):
    """What a process runs before tf.saved_model.load, in words (for the manifest)."""
    if not custom_ops:
        return "stock TensorFlow / tensorflow_model_server"
    steps = [f"tf.load_op_library('<this folder>/{op}')" if op.endswith(".so") else
             f"import {op}" for op in custom_ops]
    return "; ".join(steps) + " before tf.saved_model.load (a tensorflow_model_server needs " \
        "these ops linked in)"


def read_manifest(saved_model_dir):
    """The SavedModel's assets.extra/tfcomp.json ({} when absent or unreadable)."""
    path = os.path.join(saved_model_dir, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def load_custom_ops(saved_model_dir, manifest=None):
    """Registers the ops a SavedModel needs: imports the modules and loads the op libraries
    its manifest lists (``custom_ops``); returns the list.

    tfcomp's own BPG library is loaded through tfcomp.codecs.bpg when it is built (loading a
    second copy of it first would leave that module without its op wrappers); a process
    without tfcomp loads the copy in the SavedModel's assets.extra/.
    """
    manifest = read_manifest(saved_model_dir) if manifest is None else manifest
    ops = [str(op) for op in manifest.get("custom_ops", ())]
    for op in ops:
        if not op.endswith(".so"):
            importlib.import_module(op)
            continue
        path = op if os.path.isabs(op) else os.path.join(saved_model_dir, op)
        from .codecs import bpg
        if os.path.basename(path) == os.path.basename(bpg.LIBRARY_PATH) and \
                bpg.library_present():
            bpg.load_ops()
            continue
        import tensorflow as tf
        tf.load_op_library(path)
    return ops


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
                  kind="restorer", representative=None, network=None):
    """Writes OUT/NAME[-NET][-tileT]-QUANT.tflite of one network and returns its path.

    ``network``: the exporter's network key (default: its first). Input float32 [1, H, W, C]
    (dynamic H, W unless ``tile``; a restorer's is ``image`` -> ``restored``); float I/O for
    every quantisation. int8 calibrates on ``representative`` (default: the network's
    calibration images, for restorers :func:`representative_images`, JPEG-compressed crops).
    """
    import tensorflow as tf
    from .imageio import write_bytes
    if quantize not in QUANTIZATIONS:
        raise InputError(f"quantize must be one of {', '.join(QUANTIZATIONS)}, got {quantize!r}")
    exporter, net, tile = _single_file_export(model, out_dir, name, weights, kind, tile, network,
                                              "tflite")
    name = exporter.name
    fn = net.tflite_function(tile)
    # The converter saves its trackable object: a module holding only the variables saves in
    # a fraction of the time a Keras model takes (which traces every layer's call).
    holder = tf.Module()
    holder.model_variables = list(getattr(fn, "keras_model", net.model).variables)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()],
                                                                holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        samples = representative or net.representative(tile, exporter.check_quality())
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([s] for s in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        data = converter.convert()
    except Exception as e:  # converter errors are long MLIR dumps: keep the first line
        raise TfcompError(f"TFLite conversion of {name!r} failed: "
                          f"{str(e).strip().splitlines()[0] if str(e).strip() else e!r}") from None
    path = os.path.join(out_dir, f"{net.file_stem(name)}{_tile_tag(tile)}-{quantize}.tflite")
    write_bytes(path, data)
    return path


def _single_file_export(model, out_dir, name, weights, kind, tile, network, fmt):
    """Shared checks of the one-file exports (TFLite, ONNX): (exporter, network, tile)."""
    tile = _check_tile(tile)
    exporter = get_exporter(model, name, weights, kind)
    reason = exporter.formats().get(fmt)
    if reason:
        raise InputError(f"{exporter.name}: {fmt} is not applicable: {reason}")
    net = exporter.network(network)
    _check_out(out_dir)
    return exporter, net, tile


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
                kind="restorer", network=None):
    """Writes OUT/NAME[-NET][-tileT].onnx of one network (tf2onnx, its float function; a
    restorer's is ``image`` -> ``restored``)."""
    import tf2onnx
    from .imageio import write_bytes
    if opset not in OPSETS:
        raise InputError(f"opset must be in {OPSETS.start}..{OPSETS.stop - 1}, got {opset!r}")
    exporter, net, tile = _single_file_export(model, out_dir, name, weights, kind, tile, network,
                                              "onnx")
    name = exporter.name
    fn = net.function(tile)
    try:
        proto = _onnx_proto(tf2onnx, fn, opset, net)
    except Exception as e:
        raise TfcompError(f"ONNX conversion of {name!r} failed: {type(e).__name__}: {e}") from None
    proto.doc_string = f"tfcomp export of {name}" + (f" ({net.key})" if net.key else "")
    path = os.path.join(out_dir, f"{net.file_stem(name)}{_tile_tag(tile)}.onnx")
    write_bytes(path, proto.SerializeToString())
    return path


def _onnx_proto(tf2onnx, fn, opset, net):
    """The ONNX model of a network function, from its frozen graph.

    Frozen first because tf2onnx's from_function turns captured non-variable tensors (e.g. the
    constant of a Keras TFOpLambda layer such as the hiding encoder's residual gain) into extra
    graph inputs. Inputs and outputs keep the function's names.
    """
    from tensorflow.python.framework.convert_to_constants import \
        convert_variables_to_constants_v2
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    ins, outs = [t.name for t in frozen.inputs], [t.name for t in frozen.outputs]
    proto, _ = tf2onnx.convert.from_graph_def(frozen.graph.as_graph_def(), input_names=ins,
                                              output_names=outs, opset=opset)
    names = dict(zip(ins + outs, [net.input_name, net.output_name]))
    for node in proto.graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
    for value in list(proto.graph.input) + list(proto.graph.output):
        value.name = names.get(value.name, value.name)
    return proto


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
           max_pixels=DEFAULT_MAX_PIXELS, update_config=True):
    """Exports ``model`` in ``fmt`` ("savedmodel", "tflite", "onnx" or "all"); returns a list of
    (format, quantization, path). "all" = SavedModel + TFLite float32/float16 + ONNX of every
    network (int8 only when asked for: ``fmt="tflite", quantize="int8"``), skipping the
    formats the model's exporter says cannot exist (:func:`not_applicable` lists them). An
    explicit format that cannot exist is an InputError naming the reason."""
    if fmt not in FORMATS + ("all",):
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}, all")
    if quantize is not None and fmt != "tflite":
        raise InputError("--quantize applies to --format tflite only")
    if tile is not None and fmt == "savedmodel":
        raise InputError("--tile applies to tflite and onnx (the SavedModel takes any size)")
    tile = _check_tile(tile)
    options = {"max_pixels": max_pixels} if max_pixels != DEFAULT_MAX_PIXELS else {}
    exporter = get_exporter(model, name, weights, kind, **options)  # loads weights once
    reasons = exporter.formats()
    wanted = [f for f in (FORMATS if fmt == "all" else (fmt,)) if not reasons.get(f)]
    if not wanted:
        reason = reasons.get(fmt) or "; ".join(sorted(set(filter(None, reasons.values()))))
        raise InputError(f"{exporter.name}: {fmt} is not applicable: {reason}")
    done = []
    if "savedmodel" in wanted:
        done.append(("savedmodel", "float32", export_savedmodel(
            exporter, out_dir, version=version, force=force, serving_base=serving_base,
            update_config=update_config)))
    for key in exporter.networks() if "tflite" in wanted else ():
        for q in ([quantize or "float32"] if fmt == "tflite" else ALL_QUANTIZATIONS):
            done.append(("tflite", q, export_tflite(exporter, out_dir, quantize=q, tile=tile,
                                                    network=key)))
    for key in exporter.networks() if "onnx" in wanted else ():
        done.append(("onnx", "float32", export_onnx(exporter, out_dir, opset=opset, tile=tile,
                                                    network=key)))
    return done


def not_applicable(exporter, fmt="all"):
    """[(what, reason)]: the formats (of ``fmt``) and the parts of formats that cannot exist."""
    reasons = exporter.formats()
    fmts = FORMATS if fmt == "all" else (fmt,)
    out = [(f, reasons[f]) for f in fmts if reasons.get(f)]
    return out + [(what, why) for what, why in exporter.notes()
                  if what.split()[0] in fmts and not reasons.get(what.split()[0])]


def export_command(model, fmt, out_dir, check=False, check_quality=None, weights=None,
                   name=None, echo=print, check_json=None, **options):
    """`tfcomp export`: exports, prints what was written and "n/a: what: reason" for what
    cannot exist, and with ``check`` the parity table (and writes it to ``check_json``, even
    when a row fails); 0, or TfcompError when a check fails."""
    max_pixels = options.pop("max_pixels", DEFAULT_MAX_PIXELS)
    extra = {"max_pixels": max_pixels} if max_pixels != DEFAULT_MAX_PIXELS else {}
    exporter = get_exporter(model, name, weights, **extra)
    done = export(exporter, fmt, out_dir, **options)
    for f, quant, path in done:
        echo(f"{path}: {f}" + (f" {quant}" if f == "tflite" else ""))
    for what, reason in not_applicable(exporter, fmt):
        echo(f"n/a: {what}: {reason}")
    if any(f == "savedmodel" for f, _, _ in done):
        echo(f"{os.path.join(out_dir, 'models.config')}: TF Serving model config (serve it "
             "with `tfcomp serve --model-config ...`)")
        if exporter.custom_ops:
            echo(f"the SavedModel needs custom ops: {load_instructions(exporter.custom_ops)}")
    if check:
        quality = exporter.check_quality(check_quality)
        rows = parity(exporter, artifacts=done, quality=quality)
        echo(f"parity against TF on {exporter.check_description(quality)} (max|err| on [0, 1]; "
             "PSNR in dB against the uncompressed crop):")
        echo(format_parity(rows))
        if check_json:
            from .imageio import write_json
            write_json(check_json, parity_record(exporter, rows, quality, fmt, options))
            echo(f"{check_json}: the parity rows as JSON")
        failed = [f"{r['format']}/{r['network'] or '-'}/{r['quantization']}/{r['runtime']}"
                  for r in rows if not r["ok"]]
        if failed:
            raise TfcompError("parity outside tolerance: " + ", ".join(failed))
    return 0


# -- parity -------------------------------------------------------------------------------------
def parity_images(height=96, width=128, quality=20, channels=3, seed=11):
    """[(name, original uint8, JPEG bytes, decoded uint8)]: one crop of each scikit-image photo,
    JPEG-compressed with tfcomp's jpeg codec (what a restorer sees in use)."""
    from .codecs import get_codec
    codec = get_codec("jpeg")
    out = []
    for name, crop in photo_crops(height, width, channels, seed):
        data = codec.encode(crop, quality)
        dec = codec.decode(data)
        out.append((name, crop, data, dec.reshape(height, width, channels)))
    return out


def _runners(fmt, path, runtimes):
    """[(runtime label, callable float32 [1,H,W,C] -> [1,H,W,C], fixed input shape or None)]."""
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


class _Cases:
    """Check images and TF's reference outputs per (network, size), computed once."""

    def __init__(self, quality, check_bytes=True):
        self.quality = quality
        self.data = {"check_bytes": check_bytes}
        self._sets = {}

    def get(self, key, default=None):
        return self.data.get(key, default)

    def __call__(self, net, hw):
        key = (net.key, tuple(hw))
        if key not in self._sets:
            import tensorflow as tf
            reference = net.function()
            self._sets[key] = [
                (n, x, target, baseline, reference(tf.constant(x))[net.output_name].numpy())
                for n, x, target, baseline in net.cases(hw[0], hw[1], self.quality)]
        return self._sets[key]


def _network_for(exporter, path):
    """The network a TFLite/ONNX file belongs to, from its name (NAME[-NET][-tile..]...)."""
    base = os.path.basename(path)
    best = None
    for net in exporter.networks().values():
        stem = net.file_stem(exporter.name)
        if base.startswith(stem) and base[len(stem):len(stem) + 1] in ("-", ".") and (
                best is None or len(stem) > len(best.file_stem(exporter.name))):
            best = net
    return best or exporter.network()


def parity(model, artifacts=None, tile=None, quality=None, size=None,
           runtimes=("tf", "litert"), weights=None, name=None, workdir=None, check_bytes=True):
    """Runs each export and TF on the exporter's check images; returns one row (dict) per
    (artifact, runtime) with max_abs (on [0, 1]), psnr_vs_tf (export output against TF's),
    psnr_in (the network's input baseline, e.g. the JPEG) / psnr_tf / psnr_export (against
    the uncompressed crop), delta_db, ms per image and ok (within the network's tolerances).

    ``artifacts``: [(format, quantization, path)] as returned by :func:`export`; None exports
    everything (``tile``: TFLite/ONNX at that fixed size) into ``workdir`` or a temp folder.
    A SavedModel is checked by its exporter (``savedmodel_rows``: e.g. a restorer's
    ``restore_bytes`` against tfcomp.restorer.restore.restore_array, a codec's ``compress`` /
    ``decompress`` against the CLI codec, bytes and pixels). ``quality``: the exporter's
    check quality (JPEG quality, BPG QP...; default its own).
    """
    exporter = get_exporter(model, name, weights)
    quality = exporter.check_quality(quality)
    size = tuple(size or exporter.check_size)
    tmp = None
    if artifacts is None:
        tmp = workdir or tempfile.mkdtemp(prefix="tfcomp-parity-")
        artifacts = export(exporter, "all", tmp, tile=tile, update_config=False)
    cache = _Cases(quality, check_bytes)
    rows = []
    try:
        for fmt, quant, path in artifacts:
            if fmt == "savedmodel":
                load_custom_ops(path)
                rows.extend(exporter.savedmodel_rows(path, quality, size, cache))
                continue
            net = _network_for(exporter, path)
            for runtime, run, fixed in _runners(fmt, path, runtimes):
                cases = cache(net, tuple(d * net.pixels_per_input for d in fixed[1:3])
                              if fixed else size)
                rows.append(parity_row(fmt, quant, runtime, net, path, run, cases))
    finally:
        if tmp is not None and workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


def parity_row(fmt, quant, runtime, net, path, run, cases):
    """One row: ``run`` (float32 [1,H,W,C] -> [1,H,W,C']) against TF's outputs in ``cases``."""
    errs, vs_tf, p_tf, p_out, p_in, deltas, times = [], [], [], [], [], [], []
    for _, x, target, baseline, ref in cases:
        t = time.perf_counter()
        y = run(x)
        times.append(time.perf_counter() - t)
        errs.append(float(np.abs(y - ref).max()))
        vs_tf.append(psnr(y[0], ref[0], 1.0))
        if target is None:  # an analysis network (codes, not an image): no picture to score
            p_tf.append(float("nan"))
            p_out.append(float("nan"))
            deltas.append(0.0)
        else:
            p_tf.append(psnr(ref[0], target[0], 1.0))
            p_out.append(psnr(np.clip(y, 0, 1)[0], target[0], 1.0))
            deltas.append(abs(p_out[-1] - p_tf[-1]))
        p_in.append(psnr(baseline[0], target[0], 1.0) if baseline is not None else float("nan"))
    tol = net.tolerances[quant]
    row = {"format": fmt, "network": net.key, "quantization": quant, "runtime": runtime,
           "path": path, "images": len(cases), "size": list(cases[0][1].shape[1:3]),
           "max_abs": max(errs), "psnr_vs_tf": min(vs_tf), "psnr_in": float(np.mean(p_in)),
           "psnr_tf": float(np.mean(p_tf)), "psnr_export": float(np.mean(p_out)),
           "delta_db": max(deltas), "ms": 1000 * float(np.median(times)), "tolerance": tol}
    row["ok"] = bool(row["max_abs"] <= tol["max_abs"] and row["psnr_vs_tf"] >= tol["psnr_vs_tf"]
                     and row["delta_db"] <= tol["delta_db"])
    return row


def savedmodel_float_row(fn, net, path, quality, size, cache):
    """A SavedModel float signature (``fn``: same input/output names as ``net``) as a row."""
    import tensorflow as tf
    key = list(fn.structured_outputs)[0]

    def run(x):
        return fn(**{net.input_name: tf.constant(x)})[key].numpy()
    return parity_row("savedmodel", "float32", "tf.saved_model", net, path, run,
                      cache(net, size))


def uint8_row(fmt, runtime, network, path, got, want, cases, times, max_levels=1,
              note="", ok=True):
    """A row comparing uint8 images (``got`` from the export, ``want`` from tfcomp's own path)
    in integer grey levels; ``cases``: [(original uint8, baseline uint8 or None)].

    ok when at most ``max_levels`` apart and the mean PSNR moves by at most 0.01 dB (and
    ``ok``, e.g. equal bytes). A 1-level difference is exactly 1/255 here (float32
    differences of x/255 values can exceed 1/255 by rounding).
    """
    levels, vs, p_out, p_tf, p_in = [], [], [], [], []
    for g, w, (orig, base) in zip(got, want, cases):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape:
            levels.append(255)
            vs.append(float("-inf"))
            continue
        levels.append(int(np.abs(g.astype(np.int16) - w.astype(np.int16)).max()))
        gf, wf, of = (np.asarray(a, np.float32) / 255.0 for a in (g, w, orig))
        vs.append(psnr(gf, wf, 1.0))
        p_out.append(psnr(gf, of, 1.0))
        p_tf.append(psnr(wf, of, 1.0))
        p_in.append(psnr(np.asarray(base, np.float32) / 255.0, of, 1.0) if base is not None
                    else float("nan"))
    mean = (lambda v: float(np.mean(v)) if v else float("nan"))
    row = {"format": fmt, "network": network, "quantization": "uint8", "runtime": runtime,
           "path": path, "images": len(got), "size": list(np.asarray(cases[0][0]).shape[:2]),
           "max_abs": max(levels) / 255.0, "levels": max(levels), "psnr_vs_tf": min(vs),
           "psnr_in": mean(p_in), "psnr_tf": mean(p_tf), "psnr_export": mean(p_out),
           "delta_db": abs(mean(p_out) - mean(p_tf)) if p_out else float("inf"),
           "ms": 1000 * float(np.median(times)), "note": note,
           "tolerance": {"levels": max_levels, "delta_db": 0.01}}
    row["ok"] = bool(ok and max(levels) <= max_levels and row["delta_db"] <= 0.01)
    return row


def format_parity(rows):
    """The parity rows as a plain-text table."""
    from .cli import format_table
    table = [(r["format"], r.get("network") or "-", r["quantization"], r["runtime"],
              f"{r['max_abs']:.2e}", _db(r["psnr_vs_tf"]), _db(r["psnr_in"]), _db(r["psnr_tf"]),
              _db(r["psnr_export"]), f"{r['delta_db']:.4f}", f"{r['ms']:.1f}",
              ("ok" if r["ok"] else "FAIL") + (f" ({r['note']})" if r.get("note") else ""))
             for r in rows]
    return format_table(["format", "network", "quant", "runtime", "max|err|", "PSNR vs TF",
                         "PSNR in", "PSNR TF", "PSNR export", "delta dB", "ms/img", "tolerance"],
                        table)


#: The keys of a parity row that `--check-json` keeps (what format_parity prints, and more).
RECORD_KEYS = ("format", "network", "quantization", "runtime", "note", "images", "size",
               "max_abs", "levels", "psnr_vs_tf", "psnr_in", "psnr_tf", "psnr_export",
               "delta_db", "ms", "tolerance", "ok")


def parity_record(exporter, rows, quality, fmt="all", options=None):
    """The `--check-json` record: the check's settings and its rows (strict JSON: an infinite
    PSNR is the string "inf", a missing baseline null)."""
    import tensorflow as tf
    from . import __version__
    from .zoo import weights_digest

    def value(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None if v != v else str(v)
        return v
    options, spec, weights = options or {}, exporter.spec, exporter.weights
    digest = None
    if weights and os.path.isfile(weights):  # shipped: its file name, as in zoo.json
        digest = weights_digest(weights, spec.tables_path if spec is not None else None)
        weights = spec.weights if spec is not None and weights == spec.weights_path else weights
    return {"model": exporter.model_name, "name": exporter.name, "kind": exporter.kind,
            "weights": weights, "weights_sha256": digest, "format": fmt,
            "quantize": options.get("quantize"), "tile": options.get("tile"),
            "check_quality": quality, "check": exporter.check_description(quality),
            "check_size": list(exporter.check_size), "tfcomp": __version__,
            "tensorflow": tf.__version__,
            "rows": [{k: value(r[k]) for k in RECORD_KEYS if k in r} for r in rows]}


def _db(v):
    if v != v:  # nan: no such baseline
        return "-"
    return "inf" if v == float("inf") else f"{v:.2f}"
