"""Codecs `hiding-jpeg` and `hiding-bpg`: a standard JPEG / BPG file that carries a hidden residual.

compress:   I_L = codec(I_H); I_H_enc = E(I_H, I_H - I_L); the file = codec(I_H_enc), a normal
            file any viewer opens (it shows I_H_enc after compression).
decompress: decode the file (I_L_enc), output = D(I_L_enc) (the trained decoder).
A hiding-jpeg file names its model in a JPEG comment (COM) segment,
"tfcomp-hiding:MODEL:ID" (about 40 bytes, counted in bpp), ID being the first 8 hex digits of
a SHA-256 over the encoder's and decoder's weights (`weights_id`): decoding with other weights
(e.g. `--weights` of another training run) is refused. Files of earlier versions,
"tfcomp-hiding:MODEL", decode with the named model. Decompressing a JPEG without the marker
still works: the default model's decoder then acts as a plain artifact-removal filter, and
`notice` says so. A hiding-bpg file carries the same text in a BPG extension record of tag
`BPG_MARKER_TAG` (BPG decoders skip it; about 45 bytes, 0.0015 bpp at 500x500); BPG files of earlier versions,
without it, decode with the default model's decoder and a notice.
"""

import numpy as np

from ..errors import BitstreamError, InputError
from ..codecs.base import Codec

__all__ = ["HidingJpegCodec", "HidingBpgCodec", "COMMENT_PREFIX", "BPG_MARKER_TAG", "weights_id",
           "marker", "parse_marker"]

COMMENT_PREFIX = b"tfcomp-hiding:"
#: The BPG extension tag of the marker in a hiding-bpg file (not one of BPG's five defined tags,
#: which decoders skip like any tag they do not use).
BPG_MARKER_TAG = 64


def weights_id(model):
    """8 hex digits of SHA-256 over a model's variables (tfcomp.registry.arrays_digest)."""
    from ..registry import arrays_digest
    return arrays_digest(model.get_weights()).hex()[:8]


def marker(name, model):
    """The COM segment's text that names the model and its weights."""
    return COMMENT_PREFIX + f"{name}:{weights_id(model)}".encode()


def parse_marker(comment):
    """(model name, weights id or None) from a COM segment's bytes; None if not a marker."""
    if not comment.startswith(COMMENT_PREFIX):
        return None
    text = comment[len(COMMENT_PREFIX):].decode("ascii", "replace")
    name, _, wid = text.partition(":")
    return name, (wid or None)


def _models(codec):
    from .. import models
    return [n for n in models.model_names("hiding") if models.get_spec(n).codec == codec]


class _HidingCodec(Codec):
    kind = "hiding"
    base = None          # the plain codec's registry name
    default_models = ()  # (quality or None = any, model name) in order of preference

    def __init__(self, weights=None, **options):
        # The "model" option's allowed values are the registered models of this codec.
        self.options = dict(self.options, model=tuple(_models(self.name)))
        super().__init__(**options)
        self.weights = weights  # the user's .weights.h5 of the chosen model's architecture
        self._user = {}
        from ..codecs import get_codec
        self.plain = get_codec(self.base)
        self.notice = ""

    # -- model choice ---------------------------------------------------------------
    def model_for(self, quality):
        """The model name used at `quality` (the `model` option, else the defaults)."""
        from .. import models
        name = self.settings.get("model")
        if name is None:
            for q, candidate in self.default_models:
                spec = models.get_spec(candidate)
                if (q is None or q == quality) and models.is_available(candidate) and \
                        spec.quality_min <= quality <= spec.quality_max:
                    name = candidate
                    break
            else:
                have = [f"{m} (quality {models.get_spec(m).quality_min}..{models.get_spec(m).quality_max})"
                        for _, m in self.default_models if models.is_available(m)]
                raise InputError(f"{self.name}: no trained model for quality {quality}; installed: "
                                 f"{', '.join(have) or 'none'} (see README to train more)")
        spec = models.get_spec(name)
        if not spec.quality_min <= quality <= spec.quality_max:
            raise InputError(f"{self.name}: model {name} was trained for quality "
                             f"{spec.quality_min}..{spec.quality_max}, not {quality}")
        return name

    @property
    def weights_present(self):
        from .. import models
        return any(models.is_available(m) for _, m in self.default_models)

    def _model(self, name):
        """The hiding model `name` with its shipped weights, or the --weights file."""
        from .. import models
        if not self.weights:
            return models.load_model(name)
        if name not in self._user:
            self._user[name] = models.load_model(name, weights=self.weights)
        return self._user[name]

    def _networks(self, name):
        model = self._model(name)
        return model.encoder, model.decoder

    # -- encode / decode ------------------------------------------------------------
    def _encode(self, image, quality):
        if image.shape[2] != 3:
            raise InputError(f"{self.name}: the hiding networks take RGB images; got a "
                             f"{image.shape[2]}-channel image")
        from ..restorer.restore import run_tiled_uint8
        name = self.model_for(quality)
        encoder, _ = self._networks(name)
        plain = self.plain.decode(self.plain.encode(image, quality))

        def encoder_input(y0, y1, x0, x1):  # [x, x - plain] of one tile, in [0, 1]
            x = image[y0:y1, x0:x1].astype(np.float32) / 255.0
            p = plain[y0:y1, x0:x1].astype(np.float32) / 255.0
            return np.concatenate([x, x - p], axis=-1)[None]

        sent = run_tiled_uint8(encoder, encoder_input, image.shape[0], image.shape[1])
        return self._write(sent, quality, name)

    def _decode(self, data):
        from ..restorer.restore import restore_array
        name = self._model_from_file(data)
        decoded = self.plain.decode(data)
        if decoded.shape[2] != 3:
            raise InputError(f"{self.name}: expected an RGB file, got {decoded.shape[2]} channel(s)")
        _, decoder = self._networks(name)
        return restore_array(decoder, decoded)

    def _write(self, sent, quality, name):
        return self.plain.encode(sent, quality)

    def _marker(self, data):
        """(model name, weights id or None) from the file's marker; None without one."""
        return None

    def _model_from_file(self, data):
        """The hiding model whose decoder restores this file: the one its marker names (its
        weights id checked), else the `model` option, else the default with a notice."""
        self.notice = ""
        found = self._marker(data)
        forced = self.settings.get("model")
        if found is not None and found[0] in _models(self.name) and forced in (None, found[0]):
            name, wid = found
            # load_model names a missing weights file if need be
            have = weights_id(self._model(name))
            if wid is not None and wid != have:
                raise BitstreamError(
                    f"{self.name}: this file was made by other {name} weights (id {wid}; "
                    f"these are {have}): pass the --weights that made it")
            return name
        if forced:
            return forced
        if found is not None:
            self.notice = f"file names an unknown hiding model {found[0]!r}; "
        else:
            self.notice = f"no hidden-residual marker in this {self.base.upper()} file; "
        name = self.model_for(self.quality_default)
        self.notice += f"decoded with {name}'s decoder acting as an artifact-removal filter"
        return name


class HidingJpegCodec(_HidingCodec):
    """JPEG (4:2:0, Pillow/libjpeg-turbo) with a residual hidden by the trained encoder."""

    name = "hiding-jpeg"
    description = "learning to hide residual around JPEG: a standard .jpg plus a decoder network"
    extension = ".jpg"
    base = "jpeg"
    quality_min, quality_max, quality_default = 1, 100, 50
    sweep = (30, 40, 50, 60, 70)
    # q50: strategy 1 first (about as good at equal bpp as s2, files 4 % over plain JPEG
    # instead of 18 %, and a plain viewer sees plain-JPEG quality; README), its continuation
    # s1b before it (ahead of s1 on Set14 at equal bpp).
    # Other qualities: the strategy-1 quality-range model, in its log-sampled continuation
    # (chosen on Set14: its worst margin over JPEG + restorer at equal bpp at q20 / q50 / q80
    # is better than range-s1's), then the earlier ones.
    default_models = ((50, "hiding-jpeg-q50-s1b"), (50, "hiding-jpeg-q50-s1"),
                      (50, "hiding-jpeg-q50-s2"),
                      (None, "hiding-jpeg-range-s1-log"), (None, "hiding-jpeg-range-s1"),
                      (None, "hiding-jpeg-blind"))

    def _write(self, sent, quality, name):
        return self.plain.jpeg_bytes(sent, quality, comment=marker(name, self._model(name)))

    def _marker(self, data):
        return parse_marker(_jpeg_comment(data))


def _jpeg_comment(data):
    """The COM segment Pillow reads from a JPEG file (b"" if none or unreadable)."""
    import io
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as img:
            comment = img.info.get("comment", b"")
    except Exception:  # the decode that follows reports a broken file properly
        comment = b""
    if isinstance(comment, str):
        comment = comment.encode("latin-1", "replace")
    return comment


class HidingBpgCodec(_HidingCodec):
    """BPG (the C op, QP, 4:2:0) with a residual hidden by the trained encoder."""

    name = "hiding-bpg"
    description = "learning to hide residual around BPG: a standard .bpg plus a decoder network"
    extension = ".bpg"
    base = "bpg"
    quality_min, quality_max, quality_default = 0, 51, 30
    higher_is_better = False
    sweep = (26, 28, 30, 32, 34)
    # QP30: the model trained with the BPG rate term first (ahead of plain BPG at equal bpp,
    # README); the earlier one only ties it.
    default_models = ((30, "hiding-bpg-qp30-rate"), (30, "hiding-bpg-qp30-s2"))

    def _write(self, sent, quality, name):
        from ..codecs.bpg import with_extension
        return with_extension(self.plain.encode(sent, quality), BPG_MARKER_TAG,
                              marker(name, self._model(name)))

    def _marker(self, data):
        from ..codecs.bpg import extensions
        for tag, payload in extensions(data):
            if tag == BPG_MARKER_TAG:
                return parse_marker(payload)
        return None

    def sniff(self, data):
        return False
