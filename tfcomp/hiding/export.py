"""Deployment of the hiding codecs: a SavedModel with `compress` / `decompress`, and the encoder
and decoder networks for TFLite and ONNX (tfcomp.export drives it; kind "hiding").

SavedModel signatures (one image per call, the tensorflow-compression codec pattern):

* ``compress``: ``image`` uint8 [H, W, 3] + ``quality`` int32 scalar (JPEG quality or BPG QP,
  within the model's trained range) -> ``hidden`` uint8 [H, W, 3] (I_H_enc, the image the
  codec codes) and ``jpeg_bytes`` / ``bpg_bytes`` (the file, a plain JPEG / BPG).
* ``decompress``: ``jpeg_bytes`` / ``bpg_bytes`` scalar string -> ``image`` uint8 [H, W, 3]
  (the decoder's output; JPEG decoded with the accurate integer IDCT, as Pillow does).

In-graph JPEG: TensorFlow's encoder is libjpeg-turbo with the settings Pillow uses (baseline,
4:2:0, no Huffman optimisation, the same quality scaling), so the entropy-coded data is the
same; only the JFIF header differs (TF writes 300x300 dpi, Pillow a 1:1 aspect ratio with no
unit) and Pillow adds the "tfcomp-hiding:MODEL" comment segment. ``compress`` rewrites those
5 header bytes and inserts the comment where Pillow puts it, so its files are byte-identical
to ``tfcomp compress --codec hiding-jpeg`` (which stays Pillow-based; tests check both ways).
The BPG variant runs tfcomp's BPG op in the graph and adds the marker as the CLI does (a BPG
extension record, tfcomp.codecs.bpg.with_extension_graph), so its files are byte-identical
too; its SavedModel needs the op library, which is copied into ``assets.extra/`` and listed
in the manifest's ``custom_ops``.
"""

import struct

import numpy as np

from ..errors import InputError
from ..export import DEFAULT_MAX_PIXELS, Exporter, Network, assert_pixels, photo_crops, \
    u8_to_float

__all__ = ["HidingExporter", "pillow_style_jpeg", "PILLOW_JFIF_DENSITY", "BPG_LIBRARY"]

#: Pillow's JFIF density fields (units 0 = aspect ratio only, 1 x 1); TF writes 1, 300 x 300.
PILLOW_JFIF_DENSITY = b"\x00\x00\x01\x00\x01"
_JFIF_PREFIX = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
#: Where a BPG SavedModel carries the op library (relative to the SavedModel folder).
BPG_LIBRARY = "assets.extra/_bpg_ops.so"


def pillow_style_jpeg(image, quality, comment=b""):
    """uint8 [H, W, 3] tensor -> the JPEG file Pillow writes for it (graph ops only).

    TF's libjpeg-turbo encoder with Pillow's JFIF density bytes and, if given, a COM segment
    right after the JFIF segment (where Pillow puts ``comment=``).
    """
    import tensorflow as tf
    from ..codecs.graph_jpeg import jpeg_encode
    data = jpeg_encode(image, quality)
    ok = tf.debugging.Assert(tf.strings.substr(data, 0, len(_JFIF_PREFIX)) == _JFIF_PREFIX,
                             ["the JPEG encoder did not write a JFIF header"])
    com = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment if comment else b""
    with tf.control_dependencies([ok]):
        return tf.strings.join([tf.strings.substr(data, 0, 13), PILLOW_JFIF_DENSITY,
                                tf.strings.substr(data, 18, 2), com,
                                tf.strings.substr(data, 20, -1)])


class HidingExporter(Exporter):
    """A HidingModel (tfcomp.hiding.model): SavedModel codec + encoder/decoder networks."""

    def __init__(self, model, spec=None, max_pixels=DEFAULT_MAX_PIXELS):
        super().__init__(model, spec)
        self.codec = model.codec  # "jpeg" or "bpg"
        self.max_pixels = int(max_pixels)
        lo = spec.quality_min if spec is not None else model.quality
        hi = spec.quality_max if spec is not None else model.quality
        self.quality_range = (int(lo), int(hi))
        self.check_quality_default = spec.quality_default if spec is not None else model.quality
        self.bytes_name = f"{self.codec}_bytes"
        if self.codec == "bpg":
            self.custom_ops = (BPG_LIBRARY,)
        self._nets = {
            "encoder": Network("encoder", model.encoder, "image_and_residual", "hidden",
                               self._encoder_cases, description="E: [I_H, I_H - I_L] -> I_H_enc"),
            "decoder": Network("decoder", model.decoder, "image", "restored",
                               self._decoder_cases, description="D: decoded file -> output"),
        }

    # -- what applies ---------------------------------------------------------------------
    def networks(self):
        return self._nets

    def notes(self):
        coder = ("the JPEG coder (libjpeg)" if self.codec == "jpeg" else
                 "the BPG coder (tfcomp's libx265/libde265 op)")
        why = (f"{coder} is not a TFLite or ONNX op: the encoder and decoder networks are "
               "exported, the codec runs beside them")
        return [("tflite compress/decompress", why), ("onnx compress/decompress", why)]

    def assets(self):
        if self.codec != "bpg":
            return {}
        from ..codecs import bpg
        return {BPG_LIBRARY: bpg.LIBRARY_PATH}

    def check_quality(self, quality=None):
        q = self.check_quality_default if quality is None else int(quality)
        lo, hi = self.quality_range
        if not lo <= q <= hi:
            raise InputError(f"{self.name} was trained for quality {lo}..{hi}, not {q}")
        return q

    def check_description(self, quality):
        what = f"JPEG q{quality}" if self.codec == "jpeg" else f"BPG QP{quality}"
        return f"{what} ({self.name}) on crops of scikit-image photos"

    # -- graph pieces -----------------------------------------------------------------------
    def _plain_graph(self, image, quality):
        """The plain codec's round trip of uint8 [H, W, 3] in the graph (as the CLI's)."""
        import tensorflow as tf
        if self.codec == "jpeg":
            from ..codecs.graph_jpeg import jpeg_roundtrip
            return jpeg_roundtrip(image, quality)
        from ..codecs.bpg import bpg_roundtrip
        return bpg_roundtrip(image, quality)[0]

    def comment(self):
        """The marker text the CLI writes into a file of this model (hiding-jpeg: a COM
        segment, hiding-bpg: an extension record), computed eagerly (it hashes the weights):
        a constant of the compress graph."""
        from .codec import marker
        return marker(self.model_name, self.model)

    def _write_graph(self, sent, quality, comment):
        if self.codec == "jpeg":
            return pillow_style_jpeg(sent, quality, comment)
        from ..codecs.bpg import LEVEL_DEFAULT, bpg_encode, with_extension_graph
        from .codec import BPG_MARKER_TAG
        return with_extension_graph(bpg_encode(sent, quality, "420", LEVEL_DEFAULT, False),
                                    BPG_MARKER_TAG, comment)

    def _read_graph(self, data):
        """File bytes -> uint8 [H, W, 3], the size checked from the header first."""
        import tensorflow as tf
        if self.codec == "jpeg":
            ok = tf.debugging.Assert(tf.io.is_jpeg(data), [f"{self.bytes_name}: not a JPEG file"])
            with tf.control_dependencies([ok]):
                hw = tf.image.extract_jpeg_shape(data)
            with tf.control_dependencies([assert_pixels(hw[0], hw[1], self.max_pixels,
                                                        self.bytes_name)]):
                return tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")
        from ..codecs.bpg import bpg_decode
        image = bpg_decode(data, channels=3)  # the op refuses sizes above its own cap
        with tf.control_dependencies([assert_pixels(tf.shape(image)[0], tf.shape(image)[1],
                                                    self.max_pixels, self.bytes_name)]):
            return tf.identity(image)

    @staticmethod
    def _to_u8(x):
        import tensorflow as tf
        return tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)

    def signatures(self):
        import tensorflow as tf
        lo, hi = self.quality_range
        model = self.model
        comment = self.comment()  # JPEG: the COM segment's text; BPG: the extension record's

        @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image"),
                                      tf.TensorSpec([], tf.int32, name="quality")])
        def compress(image, quality):
            checks = [assert_pixels(tf.shape(image)[0], tf.shape(image)[1], self.max_pixels,
                                    "image"),
                      tf.debugging.Assert(tf.logical_and(quality >= lo, quality <= hi), [
                          f"quality: {self.model_name} was trained for {lo}..{hi}; got", quality])]
            with tf.control_dependencies(checks):
                plain = self._plain_graph(image, quality)
            x = tf.cast(image, tf.float32)[None] / 255.0
            p = tf.cast(plain, tf.float32)[None] / 255.0
            sent = self._to_u8(model.encoder(tf.concat([x, x - p], -1), training=False))[0]
            return {"hidden": sent, self.bytes_name: self._write_graph(sent, quality, comment)}

        @tf.function(input_signature=[tf.TensorSpec([], tf.string, name=self.bytes_name)])
        def decompress(data):
            decoded = self._read_graph(data)
            x = tf.cast(decoded, tf.float32)[None] / 255.0
            return {"image": self._to_u8(model.decoder(x, training=False))[0]}

        return {"compress": compress, "decompress": decompress}

    def describe(self):
        lo, hi = self.quality_range
        return {
            "compress": {"inputs": {"image": ["uint8", [-1, -1, 3]], "quality": ["int32", []]},
                         "outputs": {"hidden": ["uint8", [-1, -1, 3]],
                                     self.bytes_name: ["string", []]},
                         "quality": [lo, hi], "max_pixels": self.max_pixels,
                         "file": f"a plain {self.codec.upper()} file, byte-identical to "
                                 f"`tfcomp compress --codec hiding-{self.codec}`"},
            "decompress": {"inputs": {self.bytes_name: ["string", []]},
                           "outputs": {"image": ["uint8", [-1, -1, 3]]},
                           "max_pixels": self.max_pixels},
        }

    # -- parity -------------------------------------------------------------------------------
    def _plain(self):
        from ..codecs import get_codec
        return get_codec(self.codec)

    def cli_codec(self):
        """The registry codec (`tfcomp compress/decompress --codec hiding-...`) running this
        exporter's networks: the CLI's own code path, with the exported weights."""
        from ..codecs import get_codec
        codec = get_codec(f"hiding-{self.codec}")
        codec.model_for = lambda quality: self.model_name
        codec._model_from_file = lambda data: self.model_name
        codec._model = lambda name: self.model
        codec._networks = lambda name: (self.model.encoder, self.model.decoder)
        return codec

    def _encoder_cases(self, height, width, quality):
        plain = self._plain()
        out = []
        for name, crop in photo_crops(height, width):
            p = plain.decode(plain.encode(crop, quality))
            x, pf = u8_to_float(crop), u8_to_float(p)
            out.append((name, np.concatenate([x, x - pf], -1), x, pf))
        return out

    def _decoder_cases(self, height, width, quality):
        plain = self._plain()
        out = []
        for name, x, target, _ in self._encoder_cases(height, width, quality):
            hidden = np.clip(self.model.encoder(x, training=False).numpy()[0], 0, 1)
            sent = np.round(hidden * 255.0).astype(np.uint8)
            decoded = u8_to_float(plain.decode(plain.encode(sent, quality)))
            out.append((name, decoded, target, decoded))
        return out
