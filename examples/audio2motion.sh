#!/usr/bin/env bash
# The generic audio-to-motion half, end to end on a CPU in a few minutes, no data of your own:
#   1. a small synthetic corpus (several voices and identities, ground-truth landmarks),
#   2. a landmark SyncNet, then the VAE trained with it as its sync loss (short runs: the
#      models are rough; docs/training.md gives the settings that reach the measured figures),
#   3. new speech from text driven through mel -> vae -> landmark_sketch (geneface run).
# Everything lands in a2m_out/ next to the repository root. Re-running resumes nothing: it
# starts the training over (pass --resume to `geneface train` to continue a run).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=a2m_out
mkdir -p "$OUT"

geneface synth-corpus "$OUT/corpus" --clips 60 --size 128 --quiet
geneface train syncnet --data "$OUT/corpus" --out "$OUT/syncnet" --steps 600 --val-every 200 --quiet
geneface train audio2motion --data "$OUT/corpus" --syncnet "$OUT/syncnet/model.safetensors" \
  --out "$OUT/vae" --config examples/vae_small.yaml --steps 500 --lr 0.001 --val-every 100 --quiet
geneface say "Speech the model has never heard, turned into motion." -o "$OUT/speech.wav" --overwrite
geneface run examples/audio2motion.yaml --quiet --overwrite
echo "audio2motion: done. Watch $OUT/sketch.mp4."
