"""Codec registry: one name -> one implementation, used by the CLI, evaluation and training;
filled with the classical codecs and those the method packages declare (tfcomp.registry)."""

import importlib

from ..errors import BitstreamError, InputError
from ..registry import method_specs
from .base import Codec

__all__ = ["Codec", "register", "codec_names", "get_codec", "codec_for_bytes", "describe_all"]

# name -> "module:Class", imported on first use so that classical codecs never load TensorFlow:
# the classical codecs, then those of every method package (tfcomp.registry.METHODS).
_REGISTRY = {
    "jpeg": "tfcomp.codecs.classical:JpegCodec",
    "webp": "tfcomp.codecs.classical:WebpCodec",
    "jpeg2000": "tfcomp.codecs.classical:Jpeg2000Codec",
    "bpg": "tfcomp.codecs.bpg:BpgCodec",
}
for _package, _specs in method_specs():
    _REGISTRY.update(_specs.CODECS)


def register(name, target):
    """Registers a codec class (or "module:Class" string) under `name`."""
    if name in _REGISTRY:
        raise ValueError(f"codec {name!r} is already registered")
    _REGISTRY[name] = target


def codec_names():
    """All registered codec names, in registration order."""
    return list(_REGISTRY)


def _codec_class(name):
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown codec {name!r}; known codecs: {', '.join(_REGISTRY)}") from None
    if isinstance(target, str):
        module, cls = target.split(":")
        target = getattr(importlib.import_module(module), cls)
        _REGISTRY[name] = target
    return target


def get_codec(name, **options):
    """Returns an instance of the codec registered as `name` with `options` (e.g. chroma)."""
    return _codec_class(name)(**options)


def codec_for_bytes(data):
    """Finds the codec whose file format `data` is, from its header bytes."""
    for name in _REGISTRY:
        codec = get_codec(name)
        if codec.sniff(data):
            return codec
    raise BitstreamError("unrecognised file format (not a file any registered codec wrote); "
                         "pass --codec if the format cannot identify itself")


def describe_all():
    """Descriptions of every codec and restorer model, for `tfcomp codecs`."""
    from .. import models
    return [get_codec(n).describe() for n in _REGISTRY] + models.describe_all()
