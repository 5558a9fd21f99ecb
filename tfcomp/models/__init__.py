"""Model registry: a model name -> its architecture, shipped weights and how they were trained."""

import os

from ..errors import InputError
from ..registry import WEIGHTS_DIR, ModelSpec, method_specs

__all__ = ["ModelSpec", "register", "model_names", "get_spec", "is_available", "load_model",
           "load_extra", "describe_all", "WEIGHTS_DIR", "load_weights_checked"]

_REGISTRY = {}


def register(spec):
    """Adds a ModelSpec to the registry."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec


def model_names(kind=None):
    """Registered model names, optionally only those of one kind."""
    return [n for n, s in _REGISTRY.items() if kind is None or s.kind == kind]


def get_spec(name):
    """The ModelSpec registered as `name`; InputError naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown model {name!r}; known models: {', '.join(_REGISTRY)}") from None


_LOADED = {}


def is_available(name):
    """Whether `load_model(name)` can succeed (weights installed or already loaded)."""
    return name in _LOADED or get_spec(name).weights_present


def load_model(name, weights=None):
    """Builds the named model and loads its shipped weights (cached per process); a model
    with entropy tables (CWIC) gets them attached (`set_tables`, its rate index).

    `weights`: another weights file of that architecture instead (e.g. a training run's
    checkpoint; a fresh model every call); InputError when it is missing or does not fit.
    """
    if weights:
        spec = get_spec(name)
        if not os.path.isfile(weights):
            raise InputError(f"no such weights file: {weights}")
        model = spec.build()
        try:
            return load_weights_checked(model, weights)
        except (OSError, ValueError) as e:
            raise InputError(f"{weights} does not fit {name} ({e})") from None
    if name not in _LOADED:
        spec = get_spec(name)
        if not spec.weights_present:
            raise InputError(f"model {name!r} has no weights installed (expected "
                             f"{spec.weights_path}); train them with: {spec.trained_with}")
        model = spec.build()
        load_weights_checked(model, spec.weights_path)
        if spec.tables and hasattr(model, "set_tables"):  # a codec model carries its tables
            model.set_tables(load_extra(name), spec.codec_settings.get("rate_id",
                                                                       spec.quality_min))
        _LOADED[name] = model
    return _LOADED[name]


def load_extra(name):
    """The named model's entropy-coding tables (tfcomp.cwic.coding.ContextTables)."""
    spec = get_spec(name)
    path = spec.tables_path
    if not spec.tables or not os.path.isfile(path):
        raise InputError(f"model {name!r} has no entropy tables installed (expected {path})")
    from ..cwic.coding import ContextTables
    return ContextTables.load(path)


def _file_layers(path):
    """The layer entries of a Keras .weights.h5 file, or None for another layout."""
    import h5py
    with h5py.File(path, "r") as f:
        deps = f.get("_layer_checkpoint_dependencies")
        return None if deps is None else set(deps.keys())


def load_weights_checked(model, path):
    """model.load_weights(path), but first checks that the file holds the same layers.

    Keras' .weights.h5 loader skips layers the file lacks and ignores extra ones without a
    word, so e.g. an ungated restorer's file would load into the quality-gated restorer-blind
    and leave its gate at the initial value. Raises ValueError naming the difference.
    """
    import tempfile
    have = _file_layers(path)
    if have is not None:
        with tempfile.TemporaryDirectory(prefix="tfcomp-layers-") as tmp:
            reference = os.path.join(tmp, "reference.weights.h5")
            model.save_weights(reference)
            want = _file_layers(reference)
        if want is not None and have != want:
            lacks, extra = sorted(want - have), sorted(have - want)
            raise ValueError("the file's layers differ from the model's"
                             + (f"; the file lacks {', '.join(lacks)}" if lacks else "")
                             + (f"; the file has extra {', '.join(extra)}" if extra else ""))
    model.load_weights(path)
    return model


def describe_all():
    """Entries for `tfcomp codecs`: models used directly (those inside a codec are listed there)."""
    return [s.describe() for s in _REGISTRY.values() if not s.codec]


# Every method package's trained models (tfcomp.registry.METHODS, each package's specs.py).
for _package, _specs in method_specs():
    for _spec in _specs.MODELS:
        register(_spec)
