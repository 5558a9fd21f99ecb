"""What the JPD-SE package registers: the codec `jpdse-bpg` and its trained generators (the
discriminator is for training only) (tfcomp.registry)."""

from ..registry import ModelSpec

__all__ = ["CODECS", "MODELS"]

CODECS = {"jpdse-bpg": "tfcomp.jpdse.codec:JpdseBpgCodec"}

MODELS = [
    ModelSpec(
        name=f"jpdse-bpg-p{phase}", kind="semantic",
        description=f"JPD-SE generator (narrow pix2pixHD global generator + residual "
                    f"full-resolution branch, labels at 1/16 as side information) after {how}",
        builder="tfcomp.jpdse.model:build_generator", builder_kwargs={"config": "narrow_local"},
        weights=f"jpdse-bpg-p{phase}.weights.h5", quality_min=0, quality_max=51,
        quality_default=36, codec="jpdse-bpg", codec_settings={"label_scale": 16},
        exporter="tfcomp.jpdse.export:JpdseExporter",
        trained_with=f"see README: training/train_jpdse.py --phase {phase} "
                     f"--config narrow_local --label-scale 16")
    for phase, how in ((3, "phase 3 (distortion only), PSNR-oriented"),
                       (2, "phase 2 (GAN + feature matching + VGG + L1), perception-oriented"))
]
