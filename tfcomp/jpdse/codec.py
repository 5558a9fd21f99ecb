"""Codec `jpdse-bpg`: BPG + losslessly coded semantics, enhanced at the receiver by JPD-SE.

File (tfcomp.jpdse.semantic.pack_jpdse): magic "JPDS", version (2), model id, QP, size,
side-info length, the generator's weights id (8 bytes of tfcomp.registry.arrays_digest; a file
decodes only with the weights that made it: the shipped ones or the same `--weights`), CRC-32,
then the side information (tfcomp.jpdse.semantic.encode_side_info: the lossless
label map + the instance edges it does not predict, or, for a model trained on coarse
labels, the label map at 1/2..1/16 resolution) and the BPG stream. bpp counts every byte.
The receiver decodes the BPG image and the semantics and runs the generator of the model the
file names. Semantics are *sent* (not recomputed from the decoded image at the receiver):
no segmentation network can be trained or downloaded here that would be reliable on
heavily compressed frames, and a wrong label map would steer the generator wrongly; the
price is the side information's bytes, which the README's rate counts in full.
"""

import numpy as np

from .. import limits
from ..errors import BitstreamError, InputError
from ..imageio import pad_to_multiple
from ..codecs.base import Codec

__all__ = ["JpdseBpgCodec", "MODEL_IDS", "MAX_PIXELS", "weights_id"]

#: Model id in the file -> model name (tfcomp.models registry).
MODEL_IDS = {1: "jpdse-bpg-p3", 2: "jpdse-bpg-p2"}
#: The generator runs on the whole image: cap its size (memory), checked before any work,
#: below the pixel budget (tfcomp.limits) that applies as well.
MAX_PIXELS = 2048 * 2048


def weights_id(generator):
    """The 8 bytes a version 2 file carries to name the generator's weights."""
    from ..registry import arrays_digest
    return arrays_digest(generator.get_weights())[:8]


def _label_array(value, what):
    """A path or an array -> integer [H, W] array."""
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        from .semantic import _read_array
        import os
        if not os.path.isfile(value):
            raise InputError(f"{what}: no such file {value}")
        try:
            value = _read_array(value)
        except (OSError, ValueError) as e:
            raise InputError(f"{what}: cannot read {value} as an image ({e})") from None
    arr = np.asarray(value)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{what} must be a single-channel integer map, got shape "
                         f"{arr.shape} and dtype {arr.dtype}")
    return arr


class JpdseBpgCodec(Codec):
    """BPG (4:2:0, the C op) + label map and instance edges; the generator restores."""

    name = "jpdse-bpg"
    kind = "semantic"
    description = ("JPD-SE on BPG: BPG + the Cityscapes semantics its model needs (shipped: "
                   "label map at 1/16), enhanced by a semantic generator; quality = QP, "
                   "needs --labels")
    extension = ".jpdse"
    quality_min, quality_max, quality_default = 0, 51, 36
    higher_is_better = False
    sweep = (33, 36, 39, 42)

    def __init__(self, labels=None, instances=None, label_scale=None, weights=None, **options):
        self.options = dict(self.options, model=tuple(MODEL_IDS.values()))
        super().__init__(**options)
        self.labels, self.instances = labels, instances
        self.label_scale = label_scale  # None: what the model was trained with
        self.weights = weights  # the user's .weights.h5 of the chosen model's architecture
        self._generators = {}

    def _generator(self, name):
        """(the generator `name` with its shipped weights or --weights, its weights id)."""
        from .. import models
        if name not in self._generators:
            g = models.load_model(name, weights=self.weights) if self.weights else \
                models.load_model(name)
            self._generators[name] = (g, weights_id(g))
        return self._generators[name]

    def _label_scale(self, name):
        from ..models import get_spec
        from .semantic import LABEL_SCALES
        scale = self.label_scale or get_spec(name).codec_settings.get("label_scale", 1)
        if scale not in LABEL_SCALES:
            raise InputError(f"{self.name}: label scale {scale} not one of {LABEL_SCALES}")
        return scale

    @property
    def weights_present(self):
        from .. import models
        return any(models.is_available(m) for m in MODEL_IDS.values())

    def _model_name(self):
        from .. import models
        name = self.settings.get("model")
        if name:
            return name
        for candidate in MODEL_IDS.values():  # phase 3 first
            if self.weights or models.is_available(candidate):
                return candidate
        raise InputError(f"{self.name}: no trained model installed ({', '.join(MODEL_IDS.values())}); "
                         "see README to train one")

    def _semantics(self, shape):
        if self.labels is None:
            raise InputError(f"{self.name} needs the image's label map (--labels LABELS.png: "
                             "Cityscapes labelIds at the image's size)")
        labels = _label_array(self.labels, "labels")
        if labels.shape != shape:
            raise InputError(f"labels are {labels.shape[1]}x{labels.shape[0]} but the image is "
                             f"{shape[1]}x{shape[0]}")
        if labels.min() < 0 or labels.max() > 255:
            raise InputError("labels must be in 0..255 (Cityscapes labelIds)")
        if self.instances is None:
            edges = labels  # label boundaries only (no instance ids given)
        else:
            edges = _label_array(self.instances, "instances")
            if edges.shape != shape:
                raise InputError(f"instances are {edges.shape[1]}x{edges.shape[0]} but the image "
                                 f"is {shape[1]}x{shape[0]}")
        return labels.astype(np.uint8), edges

    def _encode(self, image, quality):
        from ..models import get_spec
        from .semantic import encode_side_info, pack_jpdse
        from ..codecs import bpg
        if image.shape[2] != 3:
            raise InputError(f"{self.name}: RGB images only")
        limits.check_pixels(image.shape[1], image.shape[0], f"{self.name}: the image is too "
                            "large", cap=MAX_PIXELS, cap_reason="the generator")
        labels, edges = self._semantics(image.shape[:2])
        name = self._model_name()
        get_spec(name)  # a known model
        model_id = {v: k for k, v in MODEL_IDS.items()}[name]
        _, wid = self._generator(name)  # a missing or wrong --weights fails before any work
        side = encode_side_info(labels, edges, scale=self._label_scale(name))
        return pack_jpdse(bpg.encode(image, quality), side, image.shape[0], image.shape[1],
                          quality, model_id, wid)

    def _decode(self, data):
        from .. import models
        from .model import size_multiple
        from .semantic import decode_side_info, semantic_input, unpack_jpdse
        from ..codecs import bpg
        parts = unpack_jpdse(data)
        name = MODEL_IDS.get(parts["model_id"])
        if name is None:
            raise BitstreamError(f"{self.name}: unknown model id {parts['model_id']}")
        name = self.settings.get("model") or name
        h, w = parts["height"], parts["width"]
        limits.check_pixels(w, h, f"{self.name}: the file's image is too large", BitstreamError,
                            cap=MAX_PIXELS, cap_reason="the generator")
        base_size = limits.bpg_size(parts["base_stream"])
        if base_size is not None and base_size != (w, h):
            raise BitstreamError(f"{self.name}: BPG stream is {base_size[0]}x{base_size[1]}, "
                                 f"header says {w}x{h}")
        generator, have = self._generator(name)
        if parts["weights_id"] is not None and parts["weights_id"] != have:
            raise BitstreamError(
                f"{self.name}: this file was made by other {name} weights (id "
                f"{parts['weights_id'].hex()}; these are {have.hex()}): pass the --weights "
                "that made it")
        decoded = bpg.decode(parts["base_stream"])
        if decoded.shape[:2] != (h, w) or decoded.shape[2] != 3:
            raise BitstreamError(f"{self.name}: BPG stream is {decoded.shape[1]}x{decoded.shape[0]}, "
                                 f"header says {w}x{h}")
        labels, edges = decode_side_info(parts["side_info"], h, w)
        m = size_multiple(models.get_spec(name).builder_kwargs.get("config", "narrow"))
        x = np.concatenate([semantic_input(labels, edges=edges),
                            decoded.astype(np.float32) / 255.0], axis=-1)
        y = generator(pad_to_multiple(x, m)[None], training=False).numpy()[0, :h, :w]
        return np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)

    def sniff(self, data):
        return data[:4] == b"JPDS"
