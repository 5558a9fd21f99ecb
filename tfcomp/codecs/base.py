"""The codec interface: encode an image to bytes, decode bytes to an image."""

import abc

import numpy as np

from .. import limits
from ..errors import BitstreamError, InputError

__all__ = ["Codec", "as_image"]


def as_image(image):
    """Checks a codec input: uint8 HxW, HxWx1 or HxWx3 -> (HxWxC array, C)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputError(f"codec input must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise InputError(f"codec input must be HxW, HxWx1 or HxWx3, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"codec input is empty: shape {image.shape}")
    return image, image.shape[2]


class Codec(abc.ABC):
    """One image codec: a named quality knob, `encode` to bytes and `decode` from bytes.

    Subclasses set the class attributes and implement `_encode` and `_decode`.
    `quality_min`/`quality_max`/`quality_default` describe the knob; `qualities`
    lists the valid values when the knob is discrete (None when every integer in
    the range is valid). `higher_is_better` says which way the knob goes.
    """

    name = None
    kind = "classical"
    description = ""
    extension = ".bin"
    quality_min = 0
    quality_max = 100
    quality_default = 75
    qualities = None
    higher_is_better = True
    #: Qualities `tfcomp evaluate` sweeps when none are given.
    sweep = (10, 20, 30, 40, 50, 60, 70, 80, 90)
    #: Option names the codec accepts (e.g. "chroma"), with their allowed values.
    options = {}

    def __init__(self, **options):
        for key, value in options.items():
            if value is None:
                continue
            allowed = self.options.get(key)
            if allowed is None:
                raise InputError(f"codec {self.name!r} has no option {key!r}")
            if value not in allowed:
                raise InputError(
                    f"codec {self.name!r}: option {key}={value!r} not in {list(allowed)}")
        self.settings = {k: v for k, v in options.items() if v is not None}

    # -- interface -----------------------------------------------------------------
    @property
    def weights_present(self):
        """Whether everything the codec needs (e.g. trained weights) is installed."""
        return True

    def check_quality(self, quality):
        """Returns `quality` as a number in range, or raises InputError."""
        if quality is None:
            return self.quality_default
        if isinstance(quality, float) and quality.is_integer():
            quality = int(quality)
        if not isinstance(quality, (int, np.integer)) or isinstance(quality, bool):
            raise InputError(f"codec {self.name!r}: quality must be an integer, got {quality!r}")
        if self.qualities is not None:
            if quality not in self.qualities:
                raise InputError(
                    f"codec {self.name!r}: quality {quality} not in {list(self.qualities)}")
        elif not self.quality_min <= quality <= self.quality_max:
            raise InputError(f"codec {self.name!r}: quality {quality} outside "
                             f"{self.quality_min}..{self.quality_max}")
        return quality

    def encode(self, image, quality=None):
        """Encodes a uint8 HxW[xC] image into the bytes of a complete file (within the budget)."""
        image, _ = as_image(image)
        limits.check_pixels(image.shape[1], image.shape[0],
                            f"{self.name}: the image to encode is too large")
        return self._encode(image, self.check_quality(quality))

    def decode(self, data):
        """Decodes the bytes of a complete file into a uint8 HxWx3 (or HxWx1) image."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InputError(f"codec {self.name!r}: decode expects bytes")
        if len(data) == 0:
            raise BitstreamError(f"{self.name}: empty file")
        return self._decode(bytes(data))

    def sniff(self, data):
        """True if `data` starts like a file of this codec (used to pick a decoder)."""
        return False

    def describe(self):
        """The codec's entry for `tfcomp codecs --json`."""
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "quality": {"min": self.quality_min, "max": self.quality_max,
                        "default": self.quality_default},
            "qualities": list(self.qualities) if self.qualities is not None else
            list(range(int(self.quality_min), int(self.quality_max) + 1)),
            "higher_is_better": self.higher_is_better,
            "options": {k: list(v) for k, v in self.options.items()},
            "weights": bool(self.weights_present),
        }

    @abc.abstractmethod
    def _encode(self, image, quality):
        """uint8 HxWxC (C = 1 or 3), a checked quality -> file bytes."""

    @abc.abstractmethod
    def _decode(self, data):
        """Non-empty file bytes -> uint8 HxWx3 or HxWx1; BitstreamError when invalid."""
