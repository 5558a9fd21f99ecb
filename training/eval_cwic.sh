#!/usr/bin/env bash
# CWIC on McMaster: RD points of the installed rate models (files written, bytes counted), the
# context model's saving over raw bits, and the RD plot / BD-rates with the classical codecs
# (run training/eval_codecs.sh first for those). Output: results/codecs/cwic*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}/eval/mcmaster
OUT=results/codecs
T=.venv/bin/tfcomp
$T evaluate --codec cwic --data "$DATA" --json "$OUT/cwic.json" --no-progress
.venv/bin/python training/cwic_coding_report.py --data "$DATA" --json "$OUT/cwic_coding.json"
R=("$OUT/jpeg.json" "$OUT/webp.json" "$OUT/jpeg2000.json" "$OUT/bpg420.json" "$OUT/bpg444.json" "$OUT/cwic.json")
$T plot "${R[@]}" -o "$OUT/rd_mcmaster.png" --bd-json "$OUT/bd_rate_vs_jpeg.json" \
    --title "McMaster (18 images, 500x500): RD of the registry codecs"
$T report "${R[@]}" | tee "$OUT/report.md"
