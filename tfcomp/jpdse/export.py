"""Deployment of JPD-SE (kind "semantic"): the generator for SavedModel, TFLite and ONNX, and a
SavedModel ``decompress`` for the graph part of reading a ``.jpdse`` file.

SavedModel signatures:

* ``serving_default``: ``semantics_and_image`` float32 [N, H, W, 39] (one-hot labels 35,
  instance edges 1, decoded RGB 3 in [0, 1]; H, W multiples of the generator's size multiple)
  -> ``enhanced`` float32 [N, H, W, 3] in [0, 1]. Stock ops.
* ``decompress``: ``bpg_bytes`` scalar string (the file's BPG stream), ``labels`` uint8
  [H, W] and ``edges`` uint8 [H, W] (0/1; the decoded side information) -> ``image`` uint8
  [H, W, 3]: BPG decode (tfcomp's BPG op), semantics, edge padding, generator, crop, rounding,
  the steps of ``tfcomp decompress`` for a .jpdse file.

What cannot be in the graph: the side information is LZMA2 (raw, preset 9e; Python's lzma)
and TensorFlow has no LZMA decoder (tf.io.decode_compressed reads ZLIB/GZIP only), and the
container's CRC-32 has no TF op either; so :func:`decompress_inputs` (numpy + lzma, no
TensorFlow) parses the container and decodes the side info, and the SavedModel does the rest.
A ``compress`` signature is not exported for the same reason (and the label map is the
user's input). The SavedModel uses the BPG op: its library is copied into ``assets.extra/``
and listed in the manifest's ``custom_ops``.
"""

import numpy as np

from ..errors import BitstreamError
from ..export import DEFAULT_MAX_PIXELS, Exporter, Network, assert_pixels, photo_crops, \
    u8_to_float, uint8_row

__all__ = ["JpdseExporter", "decompress_inputs", "synthetic_labels", "BPG_LIBRARY"]

#: Where the SavedModel carries the BPG op library (relative to the SavedModel folder).
BPG_LIBRARY = "assets.extra/_bpg_ops.so"
#: Check-image label ids, darkest luma first: road, sidewalk, building, vegetation, sky.
_CHECK_LABELS = np.array([7, 8, 11, 21, 23], np.uint8)


def synthetic_labels(image):
    """A plausible Cityscapes label map for a photo without annotations: its luma in five
    bands mapped to road / sidewalk / building / vegetation / sky (for parity checks)."""
    luma = np.asarray(image, np.float64) @ [0.299, 0.587, 0.114]
    return _CHECK_LABELS[np.minimum((luma / 256.0 * 5).astype(int), 4)]


def decompress_inputs(data, weights_id=None):
    """A ``.jpdse`` file -> ({"bpg_bytes", "labels", "edges"} numpy inputs of ``decompress``,
    the model name its header names); BitstreamError for a damaged file, and, given the
    SavedModel's ``weights_id`` (hex, its manifest's ``decompress.weights_id``), for a
    version 2 file made by other weights."""
    from .codec import MAX_PIXELS, MODEL_IDS
    from .semantic import decode_side_info, unpack_jpdse
    parts = unpack_jpdse(data)
    name = MODEL_IDS.get(parts["model_id"])
    if name is None:
        raise BitstreamError(f"jpdse-bpg: unknown model id {parts['model_id']}")
    if weights_id is not None and parts["weights_id"] is not None and \
            parts["weights_id"].hex() != weights_id:
        raise BitstreamError(f"jpdse-bpg: this file was made by other {name} weights (id "
                             f"{parts['weights_id'].hex()}, the SavedModel's are {weights_id})")
    h, w = parts["height"], parts["width"]
    if h * w > MAX_PIXELS:
        raise BitstreamError(f"jpdse-bpg: header claims {w}x{h}, more than the generator's "
                             f"limit of {MAX_PIXELS} pixels")
    labels, edges = decode_side_info(parts["side_info"], h, w)
    inputs = {"bpg_bytes": np.array(parts["base_stream"], dtype=object),
              "labels": labels.astype(np.uint8), "edges": (edges > 0.5).astype(np.uint8)}
    return inputs, name


class JpdseExporter(Exporter):
    """The JPD-SE generator (tfcomp.jpdse.model.build_generator) and its decompress graph."""

    check_quality_default = 36

    def __init__(self, model, spec=None, max_pixels=None):
        super().__init__(model, spec)
        from .codec import MAX_PIXELS
        from .model import size_multiple
        config = spec.builder_kwargs.get("config", "narrow") if spec is not None else "narrow"
        self.multiple = size_multiple(config)
        self.label_scale = spec.codec_settings.get("label_scale", 1) if spec is not None else 1
        if spec is not None:
            self.check_quality_default = spec.quality_default
        self.max_pixels = int(max_pixels or min(MAX_PIXELS, DEFAULT_MAX_PIXELS))
        self.custom_ops = (BPG_LIBRARY,)
        self._net = Network("", model, "semantics_and_image", "enhanced", self._cases,
                            description="generator: semantics + decoded BPG -> enhanced")

    def networks(self):
        return {"": self._net}

    def notes(self):
        bpg = ("the BPG decoder (tfcomp's libde265 op) is not a TFLite or ONNX op: the "
               "generator is exported, BPG decoding and the side info run beside it")
        return [("savedmodel compress", "the side information is LZMA2-coded (Python's lzma; "
                 "TensorFlow has no LZMA op) and the label map is the user's input: "
                 "`tfcomp compress --codec jpdse-bpg --labels ...` writes .jpdse files"),
                ("savedmodel decompress of a whole .jpdse file", "LZMA2 side info and the "
                 "container's CRC-32 have no TF ops: decompress takes the BPG stream and the "
                 "decoded label/edge maps (tfcomp.jpdse.export.decompress_inputs)"),
                ("tflite decompress", bpg), ("onnx decompress", bpg)]

    def assets(self):
        from ..codecs import bpg
        return {BPG_LIBRARY: bpg.LIBRARY_PATH}

    def check_description(self, quality):
        return (f"BPG QP{quality} crops of scikit-image photos with synthetic label maps "
                f"(label scale {self.label_scale})")

    # -- graph ----------------------------------------------------------------------------------
    def _pad(self, x):
        """Edge-replicates [H, W, C] down and right to multiples of the size multiple."""
        import tensorflow as tf
        m = self.multiple
        for axis in (0, 1):
            n = tf.shape(x)[axis]
            idx = tf.minimum(tf.range((n + m - 1) // m * m), n - 1)
            x = tf.gather(x, idx, axis=axis)
        return x

    def signatures(self):
        import tensorflow as tf
        from ..codecs.bpg import bpg_decode
        from .semantic import semantic_input_tf
        net, generator = self._net, self.model

        @tf.function(input_signature=[
            tf.TensorSpec([], tf.string, name="bpg_bytes"),
            tf.TensorSpec([None, None], tf.uint8, name="labels"),
            tf.TensorSpec([None, None], tf.uint8, name="edges")])
        def decompress(data, labels, edges):
            decoded = bpg_decode(data, channels=3)
            hw = tf.shape(decoded)[:2]
            checks = [assert_pixels(hw[0], hw[1], self.max_pixels, "bpg_bytes"),
                      tf.debugging.Assert(tf.reduce_all(tf.equal(tf.shape(labels), hw)), [
                          "labels must have the BPG image's height and width", hw]),
                      tf.debugging.Assert(tf.reduce_all(tf.equal(tf.shape(edges), hw)), [
                          "edges must have the BPG image's height and width", hw])]
            with tf.control_dependencies(checks):
                x = tf.concat([semantic_input_tf(labels, edges=edges),
                               tf.cast(decoded, tf.float32) / 255.0], -1)
            y = generator(self._pad(x)[None], training=False)[0, :hw[0], :hw[1]]
            return {"image": tf.cast(tf.round(tf.clip_by_value(y, 0.0, 1.0) * 255.0),
                                     tf.uint8)}

        return {"serving_default": net.function(), "decompress": decompress}

    def describe(self):
        from .codec import weights_id
        return {
            "serving_default": {"inputs": {"semantics_and_image": ["float32", [-1, -1, -1, 39]]},
                                "outputs": {"enhanced": ["float32", [-1, -1, -1, 3]]},
                                "range": [0.0, 1.0], "size_multiple": self.multiple},
            "decompress": {"inputs": {"bpg_bytes": ["string", []], "labels": ["uint8", [-1, -1]],
                                      "edges": ["uint8", [-1, -1]]},
                           "outputs": {"image": ["uint8", [-1, -1, 3]]},
                           "max_pixels": self.max_pixels, "label_scale": self.label_scale,
                           "weights_id": weights_id(self.model).hex(),
                           "from_file": "tfcomp.jpdse.export.decompress_inputs(.jpdse bytes, "
                                        "weights_id)"},
        }

    # -- parity ---------------------------------------------------------------------------------
    def _receiver_case(self, crop, qp):
        """(BPG stream, decoded uint8, labels, edges) as the receiver of a .jpdse file has them."""
        from ..codecs import bpg
        from .semantic import decode_side_info, encode_side_info
        h, w = crop.shape[:2]
        side = encode_side_info(synthetic_labels(crop), None, scale=self.label_scale)
        labels, edges = decode_side_info(side, h, w)
        stream = bpg.encode(crop, qp)
        return stream, bpg.decode(stream), labels, edges

    def _cases(self, height, width, quality):
        from .semantic import semantic_input
        out = []
        for name, crop in photo_crops(height, width):
            _, decoded, labels, edges = self._receiver_case(crop, quality)
            d = u8_to_float(decoded)
            x = np.concatenate([semantic_input(labels, edges=edges)[None], d], -1)
            out.append((name, x, u8_to_float(crop), d))
        return out

    def reference_decode(self, decoded, labels, edges):
        """The CLI's decode steps (tfcomp.jpdse.codec) on numpy arrays -> uint8 [H, W, 3]."""
        from ..imageio import pad_to_multiple
        from .semantic import semantic_input
        h, w = decoded.shape[:2]
        x = np.concatenate([semantic_input(labels, edges=edges),
                            decoded.astype(np.float32) / 255.0], axis=-1)
        y = self.model(pad_to_multiple(x, self.multiple)[None], training=False).numpy()
        return np.clip(np.round(y[0, :h, :w] * 255.0), 0, 255).astype(np.uint8)

    def savedmodel_rows(self, path, quality, size, cache):
        """serving_default against the generator; decompress (at a size that needs padding)
        against the CLI's decode steps."""
        import time
        import tensorflow as tf
        from ..export import savedmodel_float_row
        loaded = tf.saved_model.load(path)
        rows = [savedmodel_float_row(loaded.signatures["serving_default"], self._net, path,
                                     quality, size, cache)]
        fn = loaded.signatures["decompress"]
        got, want, cases, times = [], [], [], []
        for _, crop in photo_crops(size[0] - 3, size[1] - 5):
            stream, decoded, labels, edges = self._receiver_case(crop, quality)
            t = time.perf_counter()
            out = fn(bpg_bytes=tf.constant(stream), labels=tf.constant(labels),
                     edges=tf.constant((edges > 0.5).astype(np.uint8)))
            times.append(time.perf_counter() - t)
            got.append(out["image"].numpy())
            want.append(self.reference_decode(decoded, labels, edges))
            cases.append((crop, decoded))
        rows.append(uint8_row("savedmodel", "decompress", "", path, got, want, cases, times))
        return rows

