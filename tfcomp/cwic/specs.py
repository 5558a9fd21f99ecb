"""What the CWIC package registers (tfcomp.registry): two codecs of the same .cwic format,
`cwic` (the MS-SSIM-trained rate set) and `cwic-mse` (the MSE-trained set), each with one
trained model per rate index (the codec's quality).

A file's header carries the model's *rate id*, unique over both sets: the rate index plus the
set's :data:`RATE_BASE` (cwic-2 writes 2, cwic-mse-2 writes 18), so any .cwic file names the
registry model that decodes it (and its model id checks that it is that model)."""

from ..registry import ModelSpec

__all__ = ["CODECS", "MODELS"]

CODECS = {"cwic": "tfcomp.cwic.codec:CwicCodec", "cwic-mse": "tfcomp.cwic.codec:CwicMseCodec"}

#: Rate id of a set's rate index r in the file header: RATE_BASE[codec] + r (r < RATE_SPAN).
RATE_SPAN = 16
RATE_BASE = {"cwic": 0, "cwic-mse": RATE_SPAN}

# One narrow-configuration model per rate index and set. MS-SSIM set (+ 20 MSE): rate 2 from
# scratch, rates 1 and 3 fine-tuned from it. MSE set (PSNR's operating point): rate 2
# fine-tuned from cwic-2's networks with the paper's distortion, rates 1 and 3 from it (README).
_HOW = {"cwic": ("MS-SSIM", "training/train_cwic.py --distortion ms-ssim --mse-weight 20 "),
        "cwic-mse": ("MSE", "training/train_cwic.py --distortion mse --precision mixed_bfloat16 ")}
_TRAINED = [
    ("cwic", 1, 0.15, "--target 0.15 --gamma 0.4: 4,000 steps from the first cwic-2"),
    ("cwic", 2, 0.33, "--target 0.33 --gamma 0.1: 4,000 steps (ms-ssim only) + 20,000 + 14,000 "
                       "+ 2 x 5,000 (192x192 patches)"),
    ("cwic", 3, 0.6, "--target 0.6 --gamma 0.1: 4,000 steps from the third cwic-2 (lr 2.5e-5)"),
    ("cwic-mse", 1, 0.15, "--target 0.15 --gamma 8e-3: 4,000 steps from cwic-mse-2"),
    ("cwic-mse", 2, 0.33, "--target 0.33 --gamma 2e-3: 14,000 steps from cwic-2 + 12,000"),
    ("cwic-mse", 3, 0.6, "--target 0.6 --gamma 2e-3: 4,000 steps from cwic-mse-2"),
]

MODELS = [
    ModelSpec(
        name=f"{codec}-{rate}", kind="learned",
        description=f"content-weighted codec, narrow config (2.3 M params), "
                    f"{_HOW[codec][0]}-trained, target kept-bit fraction {target}",
        builder="tfcomp.cwic.model:build_cwic", builder_kwargs={"config": "narrow"},
        weights=f"{codec}-{rate}.weights.h5", tables=f"{codec}-{rate}.ctx.npz",
        quality_min=rate, quality_max=rate, quality_default=rate, codec=codec,
        codec_settings={"rate_id": RATE_BASE[codec] + rate},
        exporter="tfcomp.cwic.export:CwicExporter", trained_with=f"{_HOW[codec][1]}{how}; see README")
    for codec, rate, target, how in _TRAINED
]
