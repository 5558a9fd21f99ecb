#!/usr/bin/env bash
# Reproduces the README's restorer tables: the shipped restorers, JPEG q10/20/30/40,
# McMaster (RGB protocol) and BSD68 (gray Y protocol); the gray model on both in gray Y.
# Writes results/restorers/*.json + plots.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=results/restorers
mkdir -p "$OUT"
for model in restorer-q10 restorer-blind; do
  .venv/bin/tfcomp evaluate --restorer "$model" --data "$DATA/eval/mcmaster" \
      --quality 10 20 30 40 --json "$OUT/$model-mcmaster.json" --no-progress
  .venv/bin/tfcomp evaluate --restorer "$model" --data "$DATA/eval/bsd68_gray" --gray \
      --quality 10 20 30 40 --json "$OUT/$model-bsd68-gray.json" --no-progress
done
# The gray model: BSD68 (the gray benchmark; inside train/bsd100, see README) and McMaster's Y
# (clean), both gray-Y protocol.
.venv/bin/tfcomp evaluate --restorer restorer-gray --data "$DATA/eval/mcmaster" --gray \
    --quality 10 20 30 40 --json "$OUT/restorer-gray-mcmaster.json" --no-progress
.venv/bin/tfcomp evaluate --restorer restorer-gray --data "$DATA/eval/bsd68_gray" --gray \
    --quality 10 20 30 40 --json "$OUT/restorer-gray-bsd68-gray.json" --no-progress
# Quality-blindness check: the blind model must not hurt at high qualities either.
.venv/bin/tfcomp evaluate --restorer restorer-blind --data "$DATA/eval/mcmaster" \
    --quality 50 60 70 80 90 95 --json "$OUT/restorer-blind-mcmaster-high.json" --no-progress
.venv/bin/tfcomp report "$OUT"/restorer-{q10,blind}-mcmaster.json "$OUT"/*-bsd68-gray.json \
    "$OUT/restorer-gray-mcmaster.json" "$OUT/restorer-blind-mcmaster-high.json"
