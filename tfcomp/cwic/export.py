"""Deployment of CWIC: a self-contained SavedModel codec, and its float networks.

SavedModel signatures (one image per call, the tensorflow-compression codec pattern; the
graph uses tensorflow-compression's range-coding ops, so a loading process imports
``tensorflow_compression`` first; nothing of tfcomp is needed):

* ``compress``: ``image`` uint8 [H, W, 3] -> ``cwic_bytes`` (the complete .cwic file, the
  same bytes as ``tfcomp compress --codec cwic``), ``map_bytes`` / ``bits_bytes`` (its two
  range-coded streams), ``image_shape`` int32 [2] and ``grid_shape`` int32 [2] (H/8, W/8).
* ``decompress``: ``cwic_bytes`` scalar string -> ``image`` uint8 [H, W, 3]; a file of
  another model, a damaged file or one over the pixel limit fails with InvalidArgument.

The weights are variables of the SavedModel; the context tables, the rate index and the
model id are constants of its graphs. ``encoder_function`` / ``decoder_function`` are the
networks alone (float tensors, no coding ops) for TFLite / ONNX, which have no range coder;
``network_parity`` converts both and measures them against TF.
"""

import numpy as np

from ..export import DEFAULT_MAX_PIXELS, Exporter

__all__ = ["CwicExporter", "savedmodel_module", "save_savedmodel", "coding_signatures",
           "encoder_function", "decoder_function", "network_functions", "to_tflite", "to_onnx",
           "run_tflite", "run_onnx", "network_parity", "CUSTOM_OPS", "SIGNATURES"]

#: The SavedModel's signatures.
SIGNATURES = ("compress", "decompress")
#: What a process imports before tf.saved_model.load of a CWIC SavedModel.
CUSTOM_OPS = ("tensorflow_compression",)


def _require_tables(model):
    if getattr(model, "tables", None) is None:
        from ..errors import InputError
        raise InputError("cwic: the model has no context tables (model.set_tables) to export")


def coding_signatures(model, max_pixels=DEFAULT_MAX_PIXELS):
    """{"compress", "decompress"}: tf.functions with input signatures over the model's
    in-graph coding; both refuse images of more than `max_pixels` pixels."""
    import tensorflow as tf
    from .graph import read_file
    from .model import BYTES_SPEC, IMAGE_SPEC
    _require_tables(model)
    limit = int(max_pixels)

    def check(h, w, what):
        pixels = tf.cast(h, tf.int64) * tf.cast(w, tf.int64)
        return tf.debugging.Assert(pixels <= limit, [
            f"{what}: image too large (limit {limit} pixels); height, width:", h, w])

    @tf.function(input_signature=[IMAGE_SPEC], autograph=False)
    def compress(image):
        with tf.control_dependencies([check(tf.shape(image)[0], tf.shape(image)[1], "image")]):
            return model.compress(image)

    @tf.function(input_signature=[BYTES_SPEC], autograph=False)
    def decompress(cwic_bytes):
        h, w, _, _ = read_file(cwic_bytes, model.rate, model.model_id)
        with tf.control_dependencies([check(h, w, "cwic_bytes")]):
            return {"image": model.decompress(cwic_bytes)}

    return {"compress": compress, "decompress": decompress}


def savedmodel_module(model, max_pixels=DEFAULT_MAX_PIXELS):
    """A tf.Module holding the model's weights and its `compress` / `decompress` tf.functions
    (see the module docstring): save it with ``signatures={name: getattr(module, name)
    .get_concrete_function() for name in ("compress", "decompress")}`` (save_savedmodel)."""
    import tensorflow as tf
    module = tf.Module()
    module.model_variables = list(model.encoder.variables) + list(model.decoder.variables)
    for name, fn in coding_signatures(model, max_pixels).items():
        setattr(module, name, fn)
    return module


def save_savedmodel(model, path, max_pixels=DEFAULT_MAX_PIXELS):
    """Writes the model's codec SavedModel to `path` (a plain folder); returns `path`."""
    import tensorflow as tf
    module = savedmodel_module(model, max_pixels)
    tf.saved_model.save(module, path, signatures={
        name: getattr(module, name).get_concrete_function() for name in SIGNATURES})
    return path


def encoder_function(model, tile=None):
    """The encoder network alone: ``image`` float32 [1, H, W, 3] in [0, 1] (H, W multiples of
    8) -> ``codes_importance`` float32 [1, H/8, W/8, n + 1]: the n sigmoid codes (a bit is
    `code > 0.5`) and then the importance p (`kept_channels`), all in [0, 1]."""
    import tensorflow as tf
    shape = [1, tile, tile, 3] if tile else [1, None, None, 3]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="image")])
    def encoder(image):
        codes, p = model.encoder(image)
        return {"codes_importance": tf.concat([codes, p], axis=-1)}
    return encoder


def decoder_function(model, tile=None):
    """The decoder network alone: ``masked_bits`` float32 [1, h, w, n] (0 where not kept) ->
    ``image`` float32 [1, 8h, 8w, 3] (the codec clips to [0, 1] and rounds to uint8)."""
    import tensorflow as tf
    shape = [1, tile, tile, model.n] if tile else [1, None, None, model.n]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="masked_bits")])
    def decoder(masked_bits):
        return {"image": model.decoder(masked_bits)}
    return decoder


def network_functions(model, tile=None):
    """{"encoder", "decoder"}: the float networks TFLite and ONNX convert (no coding ops)."""
    return {"encoder": encoder_function(model, tile), "decoder": decoder_function(model, tile)}


def to_tflite(fn):
    """A one-output network function -> float32 TFLite flatbuffer bytes (builtin ops only)."""
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def to_onnx(fn, opset=17):
    """A one-output network function -> ONNX model bytes (tf2onnx on the frozen graph)."""
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import \
        convert_variables_to_constants_v2
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    proto, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(), input_names=[t.name for t in frozen.inputs],
        output_names=[t.name for t in frozen.outputs], opset=opset)
    return proto.SerializeToString()


def run_tflite(data, x):
    """Runs TFLite bytes of a one-input, one-output network on float32 x (any H, W)."""
    import tensorflow as tf
    interp = tf.lite.Interpreter(model_content=data)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], x.shape, strict=False)
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], np.ascontiguousarray(x, np.float32))
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def run_onnx(data, x):
    """Runs ONNX bytes of a one-input, one-output network under onnxruntime's CPU provider."""
    import onnxruntime as ort
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x, np.float32)})[0]


def network_parity(model, image, formats=("tflite", "onnx")):
    """Both networks converted and run on one uint8 image (sides multiples of 8) against TF:
    rows {"network", "format", "max_abs", "bits_equal"}; bits_equal = the fraction of the
    encoder's bits (code > 0.5) and levels the export gets the same as TF (decoder: None)."""
    from .model import kept_channels
    x = image[None].astype(np.float32) / 255.0
    fns = network_functions(model)
    reference = fns["encoder"](x)["codes_importance"].numpy()
    bits = (reference[..., :model.n] > 0.5).astype(np.float32)
    inputs = {"encoder": x, "decoder": bits}
    rows = []
    for key, fn in fns.items():
        want = reference if key == "encoder" else fn(bits)["image"].numpy()
        for fmt in formats:
            data = to_tflite(fn) if fmt == "tflite" else to_onnx(fn)
            got = (run_tflite if fmt == "tflite" else run_onnx)(data, inputs[key])
            row = {"network": key, "format": fmt, "max_abs": float(np.abs(got - want).max()),
                   "bits_equal": None}
            if key == "encoder":
                same = np.concatenate([
                    ((got[..., :model.n] > 0.5) == (want[..., :model.n] > 0.5)).ravel(),
                    (kept_channels(got[..., model.n:], model.n, model.levels).numpy() ==
                     kept_channels(want[..., model.n:], model.n, model.levels).numpy()).ravel()])
                row["bits_equal"] = float(same.mean())
            rows.append(row)
    return rows


class CwicExporter(Exporter):
    """A CWIC model with its tables (registry kind "learned"): the codec SavedModel."""

    custom_ops = CUSTOM_OPS

    def __init__(self, model, spec=None, max_pixels=DEFAULT_MAX_PIXELS):
        super().__init__(model, spec)
        _require_tables(model)
        self.max_pixels = int(max_pixels)
        self.custom_ops = CUSTOM_OPS

    def signatures(self):
        return coding_signatures(self.model, self.max_pixels)

    def variables(self):
        return list(self.model.encoder.variables) + list(self.model.decoder.variables)

    def notes(self):
        why = ("tensorflow-compression's range coder is not a TFLite or ONNX op: only the "
               "encoder and decoder networks convert (tfcomp.cwic.export.encoder_function / "
               "decoder_function); the context coding runs beside them")
        return [("tflite compress/decompress", why), ("onnx compress/decompress", why)]

    def describe(self):
        model = self.model
        return {
            "compress": {"inputs": {"image": ["uint8", [-1, -1, 3]]},
                         "outputs": {"cwic_bytes": ["string", []], "map_bytes": ["string", []],
                                     "bits_bytes": ["string", []], "image_shape": ["int32", [2]],
                                     "grid_shape": ["int32", [2]]},
                         "max_pixels": self.max_pixels,
                         "file": "the .cwic file, byte-identical to "
                                 "`tfcomp compress --codec cwic`"},
            "decompress": {"inputs": {"cwic_bytes": ["string", []]},
                           "outputs": {"image": ["uint8", [-1, -1, 3]]},
                           "max_pixels": self.max_pixels},
            "model_id": model.model_id.hex(), "rate": model.rate,
        }
