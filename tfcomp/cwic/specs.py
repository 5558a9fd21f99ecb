"""What the CWIC package registers: the codec `cwic` and one trained model per rate index
(tfcomp.registry)."""

from ..registry import ModelSpec

__all__ = ["CODECS", "MODELS"]

CODECS = {"cwic": "tfcomp.cwic.codec:CwicCodec"}

# One narrow-configuration model per rate index, trained for MS-SSIM (+ 20 MSE); rate 2 from
# scratch, rates 1 and 3 fine-tuned from it (README).
_HOW = "training/train_cwic.py --distortion ms-ssim --mse-weight 20 "

MODELS = [
    ModelSpec(
        name=f"cwic-{rate}",
        kind="learned",
        description=f"content-weighted codec, narrow config (2.3 M params), MS-SSIM-trained, "
                    f"target kept-bit fraction {target}",
        builder="tfcomp.cwic.model:build_cwic", builder_kwargs={"config": "narrow"},
        weights=f"cwic-{rate}.weights.h5", tables=f"cwic-{rate}.ctx.npz",
        quality_min=rate, quality_max=rate, quality_default=rate, codec="cwic",
        exporter="tfcomp.cwic.export:CwicExporter",
        trained_with=f"{_HOW}{how}; see README")
    for rate, target, how in (
        (1, 0.15, "--target 0.15 --gamma 0.4: 4,000 steps from cwic-2"),
        (2, 0.33, "--target 0.33 --gamma 0.1: 4,000 steps (ms-ssim only) + 20,000"),
        (3, 0.6, "--target 0.6 --gamma 0.1: 4,000 steps from cwic-2"))
]
