"""Model registry: a model name -> its architecture, shipped weights and how they were trained."""

import dataclasses
import os

from ..errors import InputError

__all__ = ["ModelSpec", "register", "model_names", "get_spec", "is_available", "load_model", "load_extra", "describe_all",
           "WEIGHTS_DIR", "load_weights_checked"]

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one trained network."""

    name: str
    kind: str                      # "restorer", later "learned", "hiding", "semantic"
    description: str
    builder: str                   # "module:function" returning an uncompiled Keras model
    builder_kwargs: dict
    weights: str                   # file name under tfcomp/weights/
    quality_min: int = 1
    quality_max: int = 100
    quality_default: int = 75
    trained_with: str = ""         # the command that produced the weights
    tables: str = ""               # optional entropy-coding tables under tfcomp/weights/
    codec: str = ""                # the registry codec that uses this model, if any
    #: Deployment (tfcomp.export): "module:function" building the model's export signatures;
    #: "" = the default for its kind (see tfcomp.export.EXPORTERS).
    exporter: str = ""
    #: Python modules a process must import before loading the exported SavedModel because
    #: the graph uses their custom ops (e.g. "tensorflow_compression"); () = stock TF only.
    custom_ops: tuple = ()
    #: Settings the model's codec must use because the model was trained with them
    #: (e.g. {"label_scale": 4} for a jpdse-bpg generator trained on coarse labels).
    codec_settings: dict = dataclasses.field(default_factory=dict)

    @property
    def weights_path(self):
        return os.path.join(WEIGHTS_DIR, self.weights)

    @property
    def weights_present(self):
        return os.path.isfile(self.weights_path) and (
            not self.tables or os.path.isfile(os.path.join(WEIGHTS_DIR, self.tables)))

    def build(self):
        """The architecture with freshly initialised weights."""
        import importlib
        module, fn = self.builder.split(":")
        return getattr(importlib.import_module(module), fn)(**self.builder_kwargs)

    def describe(self):
        return {"name": self.name, "kind": self.kind, "description": self.description,
                "quality": {"min": self.quality_min, "max": self.quality_max,
                            "default": self.quality_default},
                "qualities": list(range(self.quality_min, self.quality_max + 1)),
                "weights": self.weights_present}


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
            model.set_tables(load_extra(name), spec.quality_min)
        _LOADED[name] = model
    return _LOADED[name]


def load_extra(name):
    """The named model's entropy-coding tables (tfcomp.cwic.coding.ContextTables)."""
    spec = get_spec(name)
    path = os.path.join(WEIGHTS_DIR, spec.tables)
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


_RESTORER = "tfcomp.restorer.model:build_restorer"

register(ModelSpec(
    name="restorer-q10",
    kind="restorer",
    description="artifact-removal CNN (313,066 params), seed configuration trained at JPEG q10",
    builder=_RESTORER, builder_kwargs={"channels": 3},
    weights="restorer-q10.weights.h5",
    quality_min=10, quality_max=10, quality_default=10,
    trained_with="see README: training/train_restorer.py --quality 10"))

register(ModelSpec(
    name="restorer-blind",
    kind="restorer",
    description="artifact-removal CNN (313,066 params) + blind quality gate (4,259 params), "
                "quality-blind: trained over JPEG q10..90",
    builder=_RESTORER, builder_kwargs={"channels": 3, "quality_gate": True},
    weights="restorer-blind.weights.h5",
    quality_min=10, quality_max=90, quality_default=10,
    trained_with="see README: training/train_restorer.py --quality-range 10 90 --quality-gate"))

# Content-weighted codec (codec "cwic"): one narrow-configuration model per rate index, trained
# for MS-SSIM (+ 20 MSE); rate 2 from scratch, rates 1 and 3 fine-tuned from it (README).
_CWIC_HOW = "training/train_cwic.py --distortion ms-ssim --mse-weight 20 "
for _rate, _target, _how in (
        (1, 0.15, "--target 0.15 --gamma 0.4: 4,000 steps from cwic-2"),
        (2, 0.33, "--target 0.33 --gamma 0.1: 4,000 steps (ms-ssim only) + 20,000"),
        (3, 0.6, "--target 0.6 --gamma 0.1: 4,000 steps from cwic-2")):
    register(ModelSpec(
        name=f"cwic-{_rate}",
        kind="learned",
        description=f"content-weighted codec, narrow config (2.3 M params), MS-SSIM-trained, "
                    f"target kept-bit fraction {_target}",
        builder="tfcomp.cwic.model:build_cwic", builder_kwargs={"config": "narrow"},
        weights=f"cwic-{_rate}.weights.h5", tables=f"cwic-{_rate}.ctx.npz",
        quality_min=_rate, quality_max=_rate, quality_default=_rate, codec="cwic",
        trained_with=f"{_CWIC_HOW}{_how}; see README"))

# Learning to hide residual (codecs "hiding-jpeg", "hiding-bpg"): E + D around the real codec.
_HIDING = "tfcomp.hiding.model:build_hiding"
for _name, _codec, _kwargs, _qrange, _how in (
        ("hiding-jpeg-q50-s2", "hiding-jpeg", {"codec": "jpeg", "quality": 50, "strategy": 2},
         (50, 50), "JPEG q50, strategy 2 (identity gradient through the codec)"),
        ("hiding-jpeg-q50-s1", "hiding-jpeg", {"codec": "jpeg", "quality": 50, "strategy": 1},
         (50, 50), "JPEG q50, strategy 1 (gradient through the JPEG simulation)"),
        ("hiding-jpeg-blind", "hiding-jpeg",
         {"codec": "jpeg", "quality": 50, "quality_range": (10, 90), "strategy": 2},
         (10, 90), "JPEG q10..90, strategy 2"),
        ("hiding-bpg-qp30-s2", "hiding-bpg", {"codec": "bpg", "quality": 30, "strategy": 2},
         (30, 30), "BPG QP30, strategy 2")):
    register(ModelSpec(
        name=_name, kind="hiding",
        description=f"residual hiding encoder + decoder, {_how}",
        builder=_HIDING, builder_kwargs=_kwargs, weights=f"{_name}.weights.h5",
        quality_min=_qrange[0], quality_max=_qrange[1], quality_default=_qrange[0],
        codec=_codec,
        trained_with=f"see README: training/train_hiding.py --out tfcomp/weights/{_name}.weights.h5"))

# JPD-SE (codec "jpdse-bpg"): the generator only (the discriminator is for training).
for _phase, _how in ((3, "phase 3 (distortion only), PSNR-oriented"),
                     (2, "phase 2 (GAN + feature matching + VGG + L1), perception-oriented")):
    register(ModelSpec(
        name=f"jpdse-bpg-p{_phase}", kind="semantic",
        description=f"JPD-SE generator (narrow pix2pixHD global generator + residual "
                    f"full-resolution branch, labels at 1/16 as side information) after {_how}",
        builder="tfcomp.jpdse.model:build_generator", builder_kwargs={"config": "narrow_local"},
        weights=f"jpdse-bpg-p{_phase}.weights.h5", quality_min=0, quality_max=51,
        quality_default=36, codec="jpdse-bpg", codec_settings={"label_scale": 16},
        trained_with=f"see README: training/train_jpdse.py --phase {_phase} "
                     f"--config narrow_local --label-scale 16"))
