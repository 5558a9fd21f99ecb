#!/usr/bin/env bash
# CWIC on McMaster: RD points of the installed rate models of both sets, cwic (MS-SSIM-trained)
# and cwic-mse (MSE-trained), files written and bytes counted; the context model's saving over
# raw bits, the context-family study, a reconstruction figure, the ablation (when its two
# variants have been trained into runs/, see README) and the RD plot /
# BD-rates with the classical codecs (run training/eval_codecs.sh first for those).
# Output: results/codecs/cwic*.json (cwic-mse.json too), cwic_crops.png, rd_mcmaster.png, bd_rate_vs_jpeg.json.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}/eval/mcmaster
TRAIN=${DATA%/eval/mcmaster}/train/bsd100
OUT=results/codecs
T=.venv/bin/tfcomp
PY=.venv/bin/python
$T evaluate --codec cwic --data "$DATA" --json "$OUT/cwic.json" --no-progress
$T evaluate --codec cwic-mse --data "$DATA" --json "$OUT/cwic-mse.json" --no-progress
$PY training/cwic_coding_report.py --data "$DATA" --json "$OUT/cwic_coding.json"
$PY training/cwic_context_report.py --model cwic-2 --train-data "$TRAIN" --data "$DATA" \
    --json "$OUT/cwic_contexts.json"
$PY training/cwic_figure.py --image "$DATA/05.png" -o "$OUT/cwic_crops.png"
if [[ -f runs/cwic-abl-plain/out.weights.h5 && -f runs/cwic-abl-bin/out.weights.h5 ]]; then
  $PY training/cwic_ablation.py --data "$DATA" --plain runs/cwic-abl-plain/out.weights.h5 \
      --binarizer runs/cwic-abl-bin/out.weights.h5 --full cwic-2 --json "$OUT/cwic_ablation.json"
else
  echo "ablation skipped: train runs/cwic-abl-plain and runs/cwic-abl-bin first (README)"
fi
R=("$OUT/jpeg.json" "$OUT/webp.json" "$OUT/jpeg2000.json" "$OUT/bpg420.json" "$OUT/bpg444.json" "$OUT/cwic.json"
   "$OUT/cwic-mse.json")
$T plot "${R[@]}" -o "$OUT/rd_mcmaster.png" --bd-json "$OUT/bd_rate_vs_jpeg.json" \
    --title "McMaster (18 images, 500x500): RD of the registry codecs"
$T report "${R[@]}" | tee "$OUT/report.md"
