"""What the restorer package registers: no codec of its own (it restores decoded JPEGs), and
its two trained networks (tfcomp.registry)."""

from ..registry import ModelSpec

__all__ = ["CODECS", "MODELS"]

CODECS = {}

_BUILDER = "tfcomp.restorer.model:build_restorer"

MODELS = [
    ModelSpec(
        name="restorer-q10",
        kind="restorer",
        description="artifact-removal CNN (313,066 params), seed configuration trained at JPEG q10",
        builder=_BUILDER, builder_kwargs={"channels": 3},
        weights="restorer-q10.weights.h5",
        quality_min=10, quality_max=10, quality_default=10,
        exporter="tfcomp.export:ImageToImageExporter",
        trained_with="see README: training/train_restorer.py --quality 10"),
    ModelSpec(
        name="restorer-blind",
        kind="restorer",
        description="artifact-removal CNN (313,066 params) + blind quality gate (4,259 params), "
                    "quality-blind: network trained over JPEG q10..90, gate over q10..98",
        builder=_BUILDER, builder_kwargs={"channels": 3, "quality_gate": True},
        weights="restorer-blind.weights.h5",
        quality_min=10, quality_max=95, quality_default=10,
        exporter="tfcomp.export:ImageToImageExporter",
        trained_with="see README: training/train_restorer.py --quality-range 10 90 --quality-gate, "
                     "then --quality-range 10 98 --quality-gate --gate-only"),
    ModelSpec(
        name="restorer-gray",
        kind="restorer",
        description="artifact-removal CNN, 1 channel (309,960 params) for gray / Y images, "
                    "trained at JPEG q10",
        builder=_BUILDER, builder_kwargs={"channels": 1},
        weights="restorer-gray.weights.h5",
        quality_min=10, quality_max=10, quality_default=10,
        exporter="tfcomp.export:ImageToImageExporter",
        trained_with="see README: training/to_gray.py, then training/train_restorer.py --gray "
                     "--quality 10 --exclude ../shared/data/eval/bsd68_gray"),
]
