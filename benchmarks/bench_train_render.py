"""Held-out PSNR of `hashgrid_nerf` against wall-clock training time; prints one JSON line.

    python benchmarks/bench_train_render.py --data DATASET [--steps 5000] [--profile quick] [--threads N]
                                            [--out DIR]
    python benchmarks/bench_train_render.py --run RUN_DIR [--evaluate]   # the curve of a finished run

Trains with `geneface train renderer --plugin hashgrid_nerf` (validation on the held-out last
1/11 of the video at the profile's interval), then reads the curve back: for each
validation, the seconds since the run started (its validation folder's time against
run.json's `started`), full-frame PSNR and face-box PSNR. Validation may use a subset of the held-out
frames (the `quick` profile: 8); `--evaluate` renders every held-out frame with the run's
`model.safetensors` through the renderer contract (their tracked landmarks and poses) and
adds PSNR, SSIM (full frame and face box), LMD, speed and memory beside the
nearest-training-frame baseline as `held_out`, with the helpers of `geneface bench
renderers` (geneface.metrics.held_out and render_cost; `geneface bench renderers` compares
every renderer this way); `--image PATH` writes real | rendered | error of three of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Optional


def run_start(run: Path) -> Optional[float]:
    """When the run's training began (wall clock, seconds since the epoch): run.json's `started`.

    Not run.json's modification time: the trainer writes run.json again when it stops the
    run (`stopped`: a time budget, an early stop), so for such a run that time is its end,
    and every validation came before it (negative seconds). A run from before `started` was
    recorded: the file's time when it was never rewritten, else unknown (None).
    """
    record = json.loads((run / "run.json").read_text())
    if record.get("started") is not None:
        return float(record["started"])
    return None if record.get("stopped") else (run / "run.json").stat().st_mtime


def curve(run: Path) -> list[dict]:
    start = run_start(run)
    val: dict[int, dict] = {}
    for line in (run / "metrics.csv").read_text().splitlines()[1:]:
        step, phase, name, value = line.split(",")
        if phase == "val":
            val.setdefault(int(step), {})[name] = float(value)
    out = []
    for step in sorted(val):
        folder = run / "validation" / f"step-{step:08d}"
        seconds = folder.stat().st_mtime - start if folder.is_dir() and start is not None else None
        out.append({"step": step, "seconds": None if seconds is None else round(seconds, 1),
                    "psnr": round(val[step].get("psnr", float("nan")), 3),
                    "psnr_face": round(val[step].get("psnr_face", float("nan")), 3)})
    return out


def evaluate(run: Path, data: str, image: Optional[Path] = None) -> dict:
    """Self-driven scores of the run's best model on every held-out frame, beside the
    nearest-training-frame baseline, with `geneface bench renderers`' helpers
    (geneface.metrics.held_out, render_cost): PSNR and SSIM (full frame, and in the box of the real
    frame's 68 landmarks grown by 10 %), LMD on mouth landmarks re-tracked from both videos,
    speed (median per frame) and peak memory while rendering. `image`: real | rendered |
    error of three held-out frames."""
    from geneface.app.components import face_tracker
    from geneface.core.person import open_dataset
    from geneface.core.image_grid import pick_rows, write_png
    from geneface.metrics.held_out import (face_boxes, held_out_frames, nearest_training_frames, score_frames,
                                           track_truth)
    from geneface.metrics.render_cost import clip_runs, load_renderer, render_timed
    from geneface.registry import get_registry

    registry = get_registry()
    ds = open_dataset(data)
    frames = held_out_frames(ds)
    rendered: list = []
    _, stats = render_timed(lambda: load_renderer(registry, run / "model.safetensors", where="--run"),
                            ds.motion(frames), ds.camera(frames), lambda k, frame: rendered.append(frame),
                            (ds.size, ds.size), clips=clip_runs(ds.clip_index()[frames]))
    real = [ds.frame(int(i)) for i in frames]
    boxes = face_boxes(ds, frames)
    baseline = [ds.frame(i) for i in nearest_training_frames(ds, frames)]
    tracker = face_tracker(None, registry)
    truth = track_truth(ds, frames, tracker)
    speed = stats.as_dict()
    out = {"frames": len(frames), "first_frame": int(frames[0]),
           "seconds_per_frame": round(stats.total_seconds / len(frames), 2),
           "fps_median": None if speed["fps"] is None else round(speed["fps"], 2),
           "memory_mb": None if speed["memory_mb"] is None else round(speed["memory_mb"], 1),
           "memory_kind": speed["memory_kind"]}
    for name, video in (("rendered", rendered), ("nearest_frame", baseline)):
        s = score_frames(iter(video), iter(real), boxes, truth, ds.size, rendered_again=iter(video), tracker=tracker)
        out[name] = {"psnr": round(s["psnr"], 3), "ssim": round(s["ssim"], 4),
                     "psnr_face": round(s["psnr_face"], 3), "ssim_face": round(s["ssim_face"], 4),
                     "lmd_px": None if s["lmd_px"] is None else round(s["lmd_px"], 3), "lmd_frames": s["lmd_frames"]}
    if image is not None:
        write_png(image, error_grid(real, rendered, pick_rows(len(frames)), scale=0.5))
    return out


def error_grid(real, rendered, picks, scale: float = 1.0):
    """Rows of real | rendered | error (mean absolute error x 4, jet) for frames `picks`; uint8 RGB."""
    import cv2
    import numpy as np

    from geneface.training.person_renderer_task import comparison_image

    rows = [comparison_image(np.asarray(real[k]) / 255.0, np.asarray(rendered[k]) / 255.0) for k in picks]
    grid = np.concatenate(rows, axis=0)
    if scale != 1.0:
        grid = cv2.resize(grid, (max(1, round(grid.shape[1] * scale)), max(1, round(grid.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    return grid


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
