#!/usr/bin/env bash
# The same motion (2 s of the demo person's own held-out motion) through every renderer,
# after `geneface demo`. Fits nearest_frame (seconds) if needed. vanilla_nerf only with
# --with-vanilla: it trains 10 min and renders about 0.04 frames/s on a CPU (20 min here).
set -euo pipefail
cd "$(dirname "$0")"
W=../../demo_out/work
mkdir -p ../../demo_out/renderers
python - "$W/person_dataset" ../../demo_out/renderers/held_out_motion.npz <<'PY'
import sys
from geneface.core.dataset import Dataset, held_out_start
from geneface.core.motion_io import save_motion
ds = Dataset(sys.argv[1])
start = held_out_start(ds.n_frames)
save_motion(sys.argv[2], ds.motion(range(start, min(ds.n_frames, start + 50))), overwrite=True)
PY
renderers="landmark_sketch nearest_frame hashgrid_nerf"
[ -f "$W/nearest/model.safetensors" ] || geneface train renderer --plugin nearest_frame --data "$W/person_dataset" --out "$W/nearest" --quiet
if [ "${1:-}" = "--with-vanilla" ]; then
  [ -f "$W/vanilla/model.safetensors" ] || geneface train renderer --plugin vanilla_nerf --data "$W/person_dataset" \
    --out "$W/vanilla" --max-minutes 10 --steps 1000000000 --quiet
  renderers="$renderers vanilla_nerf"
fi
for r in $renderers; do
  geneface run "$r.yaml" --overwrite --quiet
done
echo "renderers: done. Compare ../../demo_out/renderers/*.mp4"
