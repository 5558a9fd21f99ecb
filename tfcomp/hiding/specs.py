"""What the residual-hiding package registers: the codecs `hiding-jpeg` and `hiding-bpg`
(their files are plain JPEG / BPG files) and the trained encoder + decoder pairs
(tfcomp.registry)."""

from ..registry import ModelSpec

__all__ = ["CODECS", "MODELS"]

CODECS = {
    "hiding-jpeg": "tfcomp.hiding.codec:HidingJpegCodec",
    "hiding-bpg": "tfcomp.hiding.codec:HidingBpgCodec",
}

MODELS = [
    ModelSpec(
        name=name, kind="hiding",
        description=f"residual hiding encoder + decoder, {how}",
        builder="tfcomp.hiding.model:build_hiding", builder_kwargs=kwargs,
        weights=f"{name}.weights.h5",
        quality_min=qrange[0], quality_max=qrange[1], quality_default=qrange[0],
        codec=codec, exporter="tfcomp.hiding.export:HidingExporter",
        trained_with=f"see README: training/train_hiding.py --out tfcomp/weights/{name}.weights.h5")
    for name, codec, kwargs, qrange, how in (
        ("hiding-jpeg-q50-s2", "hiding-jpeg", {"codec": "jpeg", "quality": 50, "strategy": 2},
         (50, 50), "JPEG q50, strategy 2 (identity gradient through the codec)"),
        ("hiding-jpeg-q50-s1", "hiding-jpeg", {"codec": "jpeg", "quality": 50, "strategy": 1},
         (50, 50), "JPEG q50, strategy 1 (gradient through the JPEG simulation)"),
        ("hiding-jpeg-q50-s1b", "hiding-jpeg", {"codec": "jpeg", "quality": 50, "strategy": 1},
         (50, 50), "JPEG q50, strategy 1, 600 more steps at a lower learning rate"),
        ("hiding-jpeg-blind", "hiding-jpeg",
         {"codec": "jpeg", "quality": 50, "quality_range": (10, 90), "strategy": 2},
         (10, 90), "JPEG q10..90, strategy 2"),
        ("hiding-jpeg-range-s1", "hiding-jpeg",
         {"codec": "jpeg", "quality": 50, "quality_range": (10, 90), "strategy": 1,
          "decoder_gate": True},
         (10, 90), "JPEG q10..90, strategy 1, the quality-gated restorer as decoder"),
        ("hiding-jpeg-range-s1-log", "hiding-jpeg",
         {"codec": "jpeg", "quality": 50, "quality_range": (10, 90), "strategy": 1,
          "decoder_gate": True, "quality_sampling": "log"},
         (10, 90), "JPEG q10..90, strategy 1, gated decoder, then 800 steps with low qualities "
                   "drawn more often (log-uniform)"),
        ("hiding-bpg-qp30-s2", "hiding-bpg", {"codec": "bpg", "quality": 30, "strategy": 2},
         (30, 30), "BPG QP30, strategy 2"),
        ("hiding-bpg-qp30-rate", "hiding-bpg", {"codec": "bpg", "quality": 30, "strategy": 2},
         (30, 30), "BPG QP30, strategy 2, trained with the BPG rate term"))
]
