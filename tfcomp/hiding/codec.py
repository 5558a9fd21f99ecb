"""Codecs `hiding-jpeg` and `hiding-bpg`: a standard JPEG / BPG file that carries a hidden residual.

compress:   I_L = codec(I_H); I_H_enc = E(I_H, I_H - I_L); the file = codec(I_H_enc), a normal
            file any viewer opens (it shows I_H_enc after compression).
decompress: decode the file (I_L_enc), output = D(I_L_enc) (the trained decoder).
A hiding-jpeg file names its model in a JPEG comment (COM) segment, "tfcomp-hiding:MODEL"
(about 30 bytes, counted in bpp); decompressing a JPEG without it still works: the default
model's decoder then acts as a plain artifact-removal filter, and `notice` says so.
"""

import numpy as np

from ..errors import InputError
from ..codecs.base import Codec

__all__ = ["HidingJpegCodec", "HidingBpgCodec", "COMMENT_PREFIX"]

COMMENT_PREFIX = b"tfcomp-hiding:"


def _models(codec):
    from .. import models
    return [n for n in models.model_names("hiding") if models.get_spec(n).codec == codec]


class _HidingCodec(Codec):
    kind = "hiding"
    base = None          # the plain codec's registry name
    default_models = ()  # (quality or None = any, model name) in order of preference

    def __init__(self, **options):
        # The "model" option's allowed values are the registered models of this codec.
        self.options = dict(self.options, model=tuple(_models(self.name)))
        super().__init__(**options)
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

    def _networks(self, name):
        from .. import models
        model = models.load_model(name)
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

    def _model_from_file(self, data):
        name = self.settings.get("model")
        if name is None:
            name = self.model_for(self.quality_default)
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
    # instead of 18 %, and a plain viewer sees plain-JPEG quality; README).
    default_models = ((50, "hiding-jpeg-q50-s1"), (50, "hiding-jpeg-q50-s2"),
                      (None, "hiding-jpeg-blind"))

    def _write(self, sent, quality, name):
        return self.plain.jpeg_bytes(sent, quality, comment=COMMENT_PREFIX + name.encode())

    def _model_from_file(self, data):
        import io
        from PIL import Image
        from .. import models
        self.notice = ""
        if self.settings.get("model"):
            return self.settings["model"]
        try:
            with Image.open(io.BytesIO(data), formats=["JPEG"]) as img:
                comment = img.info.get("comment", b"")
        except Exception:  # the decode that follows reports a broken file properly
            comment = b""
        if isinstance(comment, str):
            comment = comment.encode("latin-1", "replace")
        if comment.startswith(COMMENT_PREFIX):
            name = comment[len(COMMENT_PREFIX):].decode("ascii", "replace")
            if name in _models(self.name):
                return name  # load_model names the missing weights file if need be
            self.notice = f"file names an unknown hiding model {name!r}; "
        else:
            self.notice = "no hidden-residual marker in this JPEG; "
        name = self.model_for(self.quality_default)
        self.notice += f"decoded with {name}'s decoder acting as an artifact-removal filter"
        return name


class HidingBpgCodec(_HidingCodec):
    """BPG (the C op, QP, 4:2:0) with a residual hidden by the trained encoder."""

    name = "hiding-bpg"
    description = "learning to hide residual around BPG: a standard .bpg plus a decoder network"
    extension = ".bpg"
    base = "bpg"
    quality_min, quality_max, quality_default = 0, 51, 30
    higher_is_better = False
    sweep = (26, 28, 30, 32, 34)
    default_models = ((30, "hiding-bpg-qp30-s2"),)

    def sniff(self, data):
        return False
