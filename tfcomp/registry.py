"""The one list of method packages, and the record every trained model is registered with.

A method package (tfcomp/restorer, tfcomp/cwic, tfcomp/hiding, tfcomp/jpdse, ...) declares in
its ``specs`` module the codecs it adds (``CODECS``: codec name -> "module:Class") and its
trained models (``MODELS``: ModelSpec records with builder, weights, exporter and the command
that trained them). The codec registry (:mod:`tfcomp.codecs`) and the model registry
(:mod:`tfcomp.models`) are filled from :data:`METHODS`, so the CLI, evaluation, export,
serving and the zoo all resolve a name the same way. Adding a method = its package + one
line in METHODS (README "Adding a model"). Importing this module loads no TensorFlow.
"""

import dataclasses
import importlib
import os

__all__ = ["METHODS", "ModelSpec", "WEIGHTS_DIR", "method_specs", "arrays_digest"]

#: The method packages, in registration order (each has a ``specs`` module).
METHODS = ("tfcomp.restorer", "tfcomp.cwic", "tfcomp.hiding", "tfcomp.jpdse")

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")


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
    def tables_path(self):
        """The entropy-coding tables file under WEIGHTS_DIR ("" if the model has none)."""
        return os.path.join(WEIGHTS_DIR, self.tables) if self.tables else ""

    @property
    def weights_present(self):
        return os.path.isfile(self.weights_path) and (
            not self.tables or os.path.isfile(self.tables_path))

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



def method_specs():
    """[(package name, its specs module)] for every package in METHODS."""
    return [(m, importlib.import_module(m + ".specs")) for m in METHODS]


def arrays_digest(arrays, prefix=b""):
    """SHA-256 (32 bytes) over `prefix` and each array's dtype, shape and bytes, in order: the
    identity of a set of weights (cwic's and hiding's model ids)."""
    import hashlib
    import numpy as np
    digest = hashlib.sha256(prefix)
    for value in arrays:
        value = np.ascontiguousarray(value)
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.digest()
