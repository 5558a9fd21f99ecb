#!/usr/bin/env bash
# Reproduces the README's codec RD table and plot on McMaster: JPEG, WebP, JPEG 2000, BPG
# (4:2:0 and 4:4:4, QP 22..47) and, when its weights are installed, cwic. Files are written
# for real and bpp counted from their bytes. Output: results/codecs/*.json, rd_mcmaster.png.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}/eval/mcmaster
OUT=results/codecs
T=.venv/bin/tfcomp
mkdir -p "$OUT"
# JPEG from q3: the learned codecs live below q10 (0.36 bpp on McMaster)
$T evaluate --codec jpeg --data "$DATA" --quality 3 5 7 10 15 20 30 40 50 60 70 80 90 --json "$OUT/jpeg.json" --no-progress
$T evaluate --codec webp --data "$DATA" --json "$OUT/webp.json" --no-progress
$T evaluate --codec jpeg2000 --data "$DATA" --json "$OUT/jpeg2000.json" --no-progress
$T evaluate --codec bpg --data "$DATA" --quality 22 27 32 37 42 47 --json "$OUT/bpg420.json" --no-progress
$T evaluate --codec bpg --chroma 444 --data "$DATA" --quality 22 27 32 37 42 47 --json "$OUT/bpg444.json" --no-progress
results=("$OUT/jpeg.json" "$OUT/webp.json" "$OUT/jpeg2000.json" "$OUT/bpg420.json" "$OUT/bpg444.json")
if $T codecs --json | python3 -c 'import json,sys; sys.exit(0 if [c for c in json.load(sys.stdin) if c["name"]=="cwic" and c["weights"]] else 1)'; then
  $T evaluate --codec cwic --data "$DATA" --json "$OUT/cwic.json" --no-progress
  results+=("$OUT/cwic.json")
fi
$T plot "${results[@]}" -o "$OUT/rd_mcmaster.png" --bd-json "$OUT/bd_rate_vs_jpeg.json" \
    --title "McMaster (18 images, 500x500): RD of the registry codecs"
$T report "${results[@]}"
