"""Held-out PSNR of `hashgrid_nerf` against wall-clock training time; prints one JSON line.

    python benchmarks/bench_train_render.py --data DATASET [--steps 5000] [--profile quick] [--threads N]
                                            [--out DIR]
    python benchmarks/bench_train_render.py --run RUN_DIR [--evaluate]   # the curve of a finished run

Trains with `geneface train renderer --plugin hashgrid_nerf` (validation on the held-out last
1/11 of the video at the profile's interval), then reads the curve back: for each
validation, the seconds since the run started (its validation folder's time against
run.json's), full-frame PSNR and face-box PSNR. Validation may use a subset of the held-out
frames (the `quick` profile: 8); `--evaluate` renders every held-out frame with the run's
`model.safetensors` through the renderer contract (their tracked landmarks and poses) and
adds PSNR, SSIM (full frame and face box) and LMD beside the nearest-training-frame
baseline as `held_out`; `--image PATH` writes real | rendered | error of three of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Optional


def curve(run: Path) -> list[dict]:
    start = (run / "run.json").stat().st_mtime
    val: dict[int, dict] = {}
    for line in (run / "metrics.csv").read_text().splitlines()[1:]:
        step, phase, name, value = line.split(",")
        if phase == "val":
            val.setdefault(int(step), {})[name] = float(value)
    out = []
    for step in sorted(val):
        folder = run / "validation" / f"step-{step:08d}"
        seconds = folder.stat().st_mtime - start if folder.is_dir() else None
        out.append({"step": step, "seconds": None if seconds is None else round(seconds, 1),
                    "psnr": round(val[step].get("psnr", float("nan")), 3),
                    "psnr_face": round(val[step].get("psnr_face", float("nan")), 3)})
    return out


def evaluate(run: Path, data: str, image: Optional[Path] = None) -> dict:
    """Self-driven scores of the run's best model on every held-out frame, beside the
    nearest-training-frame baseline, all with geneface.metrics: PSNR and SSIM (full frame, and
    in the box of the real frame's 68 landmarks grown by 10 %), and LMD on mouth landmarks
    re-tracked from both videos. `image`: real | rendered | error of three held-out frames."""
    import time

    import numpy as np

    from geneface.core.dataset import Dataset
    from geneface.core.runner import load_trained_stage
    from geneface.metrics.image import face_box, score_sequence
    from geneface.metrics.landmarks import lmd_of_frames, track68
    from geneface.core.dataset import held_out_start

    ds = Dataset(data)
    stage = load_trained_stage(run / "model.safetensors", "renderer", "--run")
    start = held_out_start(ds.n_frames)
    frames = np.arange(start, ds.n_frames)
    motion, camera = ds.motion(frames), ds.camera()
    camera = type(camera)(camera.focal, camera.width, camera.height, camera.c2w[frames], camera.cx, camera.cy)
    t0 = time.perf_counter()
    rendered = list(stage.render(motion, camera))
    seconds = (time.perf_counter() - t0) / len(frames)
    real = [ds.frame(int(i)) for i in frames]
    boxes = [face_box(ds.landmarks_image()[int(i)], ds.size) for i in frames]
    # The baseline: the training frame whose tracked landmarks (68 points in the image, so
    # head pose counts too) are nearest.
    train = ds.split("train")
    train = train[train < start]
    tracked = ds.landmarks_image()[:, :, :2].reshape(ds.n_frames, -1)
    nearest = [int(train[np.argmin(((tracked[train] - tracked[i]) ** 2).sum(1))]) for i in frames]
    baseline = [ds.frame(i) for i in nearest]
    truth = track68(real)
    out = {"frames": len(frames), "first_frame": int(start), "seconds_per_frame": round(seconds, 2)}
    for name, video in (("rendered", rendered), ("nearest_frame", baseline)):
        scores, _ = score_sequence(video, real, boxes)
        lmd = lmd_of_frames(video, truth, resolution=ds.size, allow_missing=True)
        out[name] = {"psnr": round(scores.psnr, 3), "ssim": round(scores.ssim, 4),
                     "psnr_face": round(scores.psnr_face, 3), "ssim_face": round(scores.ssim_face, 4),
                     "lmd_px": round(lmd.lmd, 3), "lmd_frames": lmd.n_scored}
    if image is not None:
        _comparison(image, real, rendered, [len(frames) // 6, len(frames) // 2, 5 * len(frames) // 6])
    return out


def _comparison(path: Path, real, rendered, picks) -> None:
    import cv2
    import numpy as np

    rows = []
    for k in picks:
        err = np.abs(real[k].astype(np.float32) - rendered[k].astype(np.float32)).mean(-1)
        heat = cv2.applyColorMap(np.clip(err * 4, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
        rows.append(np.concatenate([real[k], rendered[k], heat], axis=1))
    grid = np.concatenate(rows, axis=0)
    grid = cv2.resize(grid, (grid.shape[1] // 2, grid.shape[0] // 2), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), np.ascontiguousarray(grid[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a `geneface process` dataset")
    parser.add_argument("--run", help="an existing run folder to read instead of training")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", help="run folder (default: a temporary one)")
    parser.add_argument("--evaluate", action="store_true", help="also score every held-out frame with the best model")
    parser.add_argument("--image", help="with --evaluate: write real | rendered | error of three held-out frames here")
    args = parser.parse_args()
    if not (args.run or args.data):
        parser.error("give --data DATASET or --run RUN_DIR")
    if args.run:
        run = Path(args.run)
    else:
        from geneface.cli import main as geneface

        run = Path(args.out or tempfile.mkdtemp(prefix="bench_train_render_")) / "run"
        code = geneface(["train", "renderer", "--plugin", "hashgrid_nerf", "--data", args.data, "--out", str(run),
                         "--steps", str(args.steps), "--profile", args.profile, "--threads", str(args.threads), "-q"])
        if code:
            return code
    points = curve(run)
    record = json.loads((run / "run.json").read_text())
    held_out = evaluate(run, record["data"], Path(args.image) if args.image else None) if args.evaluate else None
    print(json.dumps({"bench": "train_render", "plugin": "hashgrid_nerf", "run": str(run),
                      "data": record.get("data"), "steps": record["train"]["steps"],
                      "batch_size": record["train"]["batch_size"], "curve": points,
                      "best_psnr": max((p["psnr"] for p in points), default=None),
                      "best_psnr_face": max((p["psnr_face"] for p in points), default=None),
                      "held_out": held_out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
