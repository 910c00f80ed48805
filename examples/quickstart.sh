#!/usr/bin/env bash
# The main job on the embedded default, end to end on a fresh machine, no data of your own:
#   1. speech from text and a synthetic talking subject saying it (geneface synth),
#   2. that video processed into a training dataset: tracking, head pose and camera, masks,
#      background, audio features (geneface process), with a tracking preview,
#   3. the tracked motion drawn as a landmark sketch video with the speech (geneface run).
# Everything lands in quickstart_out/ next to the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=quickstart_out
mkdir -p "$OUT"

geneface synth -o "$OUT/subject" --seconds 8 --size 256 --seed 1 --overwrite --quiet \
  --text "The quick brown fox jumps over the lazy dog. A talking face, made from nothing but text."
geneface process "$OUT/subject/video.mp4" -o "$OUT/dataset" --size 256 --overwrite --quiet
geneface dataset info "$OUT/dataset"
geneface dataset preview "$OUT/dataset" -o "$OUT/preview.mp4" --overwrite
geneface validate examples/sketch.yaml
geneface run examples/sketch.yaml --quiet --overwrite
echo "quickstart: done. Watch $OUT/subject/video.mp4 (the subject), $OUT/preview.mp4 (tracking) and $OUT/sketch.mp4 (motion)."
