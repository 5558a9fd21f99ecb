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
model id are constants of its graphs.

TFLite / ONNX (no range coder there) get the two networks alone, float tensors in and out:
``encoder`` (``image`` [1, H, W, 3] -> ``codes_importance`` [1, H/8, W/8, n + 1], see
:func:`encoder_network`) and ``decoder`` (``masked_bits`` [1, h, w, n] -> ``image``
[1, 8h, 8w, 3] clipped to [0, 1]); an app thresholds the codes, masks them
(:func:`masked_bits`) and range-codes them as tfcomp.cwic.coding does. `--tile T` fixes the
encoder's input at T x T pixels and the decoder's at T x T blocks.
"""

import numpy as np

from ..export import DEFAULT_MAX_PIXELS, Exporter, Network, photo_crops, u8_to_float

__all__ = ["CwicExporter", "savedmodel_module", "save_savedmodel", "coding_signatures",
           "encoder_network", "masked_bits", "CUSTOM_OPS", "SIGNATURES"]

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


def encoder_network(model):
    """The encoder alone as a Keras model: ``image`` float32 [N, H, W, 3] in [0, 1] (H, W
    multiples of 8) -> ``codes_importance`` float32 [N, H/8, W/8, n + 1]: the n sigmoid codes
    (a bit is `code > 0.5`) and then the importance p (`kept_channels`), all in [0, 1]."""
    import tensorflow as tf
    image = tf.keras.Input((None, None, 3), name="image")
    codes, p = model.encoder(image)
    out = tf.keras.layers.Concatenate(name="codes_importance")([codes, p])
    return tf.keras.Model(image, out, name="cwic_encoder")


def masked_bits(model, codes_importance):
    """The decoder's input from the encoder's output: bits (code > 0.5) of the kept channels
    (`kept_channels` of p), 0 elsewhere; float32 numpy [N, h, w, n]."""
    from .model import kept_channels
    v = np.asarray(codes_importance, np.float32)
    bits = (v[..., :model.n] > 0.5).astype(np.float32)
    kept = kept_channels(v[..., model.n:], model.n, model.levels).numpy()
    return bits * (np.arange(model.n, dtype=np.float32) < kept)


class CwicExporter(Exporter):
    """A CWIC model with its tables (registry kind "learned"): the codec SavedModel."""

    custom_ops = CUSTOM_OPS

    def __init__(self, model, spec=None, max_pixels=DEFAULT_MAX_PIXELS):
        super().__init__(model, spec)
        _require_tables(model)
        self.max_pixels = int(max_pixels)
        self.custom_ops = CUSTOM_OPS
        self._nets = {
            "encoder": Network("encoder", encoder_network(model), "image", "codes_importance",
                               self._encoder_cases,
                               description="the encoder: image -> codes and importance map"),
            "decoder": Network("decoder", model.decoder, "masked_bits", "image",
                               self._decoder_cases, pixels_per_input=model.STRIDE,
                               description="the decoder: masked bits -> image"),
        }

    def networks(self):
        return self._nets

    def _encoder_cases(self, height, width, quality):
        # Codes, not a picture: scored against TF only (no target image, no baseline).
        return [(name, u8_to_float(crop), None, None)
                for name, crop in photo_crops(height, width)]

    def _decoder_cases(self, height, width, quality):
        """Inputs: the TF encoder's masked bits of each crop; target: the crop."""
        encoder = self._nets["encoder"].model
        out = []
        for name, crop in photo_crops(height, width):
            x = u8_to_float(crop)
            bits = masked_bits(self.model, encoder(x, training=False).numpy())
            out.append((name, bits, x, None))
        return out

    def signatures(self):
        return coding_signatures(self.model, self.max_pixels)

    def variables(self):
        return list(self.model.encoder.variables) + list(self.model.decoder.variables)

    def notes(self):
        why = ("tensorflow-compression's range coder is not a TFLite or ONNX op: the encoder "
               "and decoder networks are exported, the context coding runs beside them")
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
