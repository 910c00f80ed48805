"""Rendering speed and memory of `hashgrid_nerf`, and its held-out PSNR, at several sizes and
thread counts, optionally against an earlier version of the code; prints one JSON line.

    python benchmarks/bench_render.py --model RUN128/model.safetensors:DATA128 \\
        [--model RUN512/model.safetensors:DATA512 ...] [--synthetic 256] [--threads 1,2] \\
        [--frames 24] [--device cpu|cuda] [--before TREE] [--json OUT.json]

`--model CHECKPOINT[:DATASET]`: a trained renderer, driven by the held-out frames of its
dataset (their tracked landmarks and poses, the last 1/11 of the video) and scored on them
(PSNR full frame and face box, `geneface.metrics`); without a dataset, its own training
poses and mean landmarks (speed only). `--synthetic SIZE`: an untrained model of that side
with a real head's proportions (speed only; `synthetic_stage`).

Every measurement runs in its own process (torch's thread count and the resident-memory
high-water mark are per process), the same way for each version: `--before TREE` (a
checkout of an earlier commit, e.g. `git worktree add /tmp/before 03a86e6`) runs the same
measurements with that tree's `geneface` first on the import path, in the same run, so the
JSON holds before, after and their ratio from one machine state. Speed: frames per second
over the frames after the first (warm-up) one, getting each frame from the renderer's stream
(`geneface.metrics.render_cost.render_timed`), i.e. throughput (a renderer drawing frames side
by side hands them over in pairs, so the median gap between frames would mislead); memory: the process's peak resident memory
(CPU) or torch's peak allocation (CUDA).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve()


def synthetic_stage(size: int, overrides: dict):
    """An untrained `hashgrid_nerf` of side `size` with a trained head's proportions: head
    region 18 % of the frame, person region 55 %, occupancy on a ball filling 11 % of the
    head's box, so the rays and samples per frame are about a real subject's."""
    import numpy as np
    import torch

    from geneface.plugins.hashgrid_nerf import HashGridNeRF

    from geneface.core.config import structure

    stage = HashGridNeRF(structure(HashGridNeRF.Config, {"size": size, "n_poses": 1, "n_latents": 1, **overrides}))
    net = stage.net
    y, x = np.mgrid[0:size, 0:size] / size
    head = (x - 0.5) ** 2 + (y - 0.4) ** 2 < 0.24**2
    person = head | ((y > 0.55) & (np.abs(x - 0.5) < 0.25 + 0.5 * (y - 0.55)))
    d, half = 1.5, 0.15
    with torch.no_grad():
        net.head_region.copy_(torch.from_numpy(head))
        net.person_region.copy_(torch.from_numpy(person))
        net.c2w[0, 2, 3] = -d  # camera on the -z axis looking at the head
        net.intrinsics.copy_(torch.tensor([0.48 * size * d / (2 * half), size / 2, size / 2]))
        net.occupancy.lo.fill_(-half)
        net.occupancy.hi.fill_(half)
        r = net.occupancy.config.resolution
        g = (torch.arange(r) + 0.5) / r * 2 - 1
        ball = (g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2) < 0.6**2
        net.occupancy.occupied.copy_(ball)
    return stage


def known_keys(data: dict, cls) -> dict:
    """`data` with only the keys the attrs class `cls` (and its nested config classes) knows."""
    import typing

    import attrs

    hints = typing.get_type_hints(cls)
    out = {}
    for key, value in data.items():
        if key not in hints:
            continue
        kind = hints[key]
        out[key] = known_keys(value, kind) if isinstance(value, dict) and attrs.has(kind) else value
    return out


def measure(model: str, threads: int, frames: int, device: str, overrides: dict) -> dict:
    """One measurement, in this process: `model` is CHECKPOINT[:DATASET] or `synthetic:SIZE`;
    `overrides`: renderer config keys set over the checkpoint's."""
    import numpy as np
    import torch

    from geneface.core.records import Motion
    from geneface.metrics.render_cost import render_timed

    torch.set_num_threads(threads)
    out: dict = {"model": model, "threads": threads, "device": device}
    real = boxes = None
    clips: list = []
    if model.startswith("synthetic:"):
        stage = synthetic_stage(int(model.split(":", 1)[1]), overrides)
        stage.net.to(device)
        mean = stage.net.condition.mean.cpu().numpy()
        motion, camera = Motion(np.repeat(mean[None], frames + 1, 0)), None
    else:
        import attrs

        from geneface.core.checkpoint import read_checkpoint
        from geneface.registry import get_registry

        checkpoint, _, data = model.partition(":")
        registry = get_registry()
        ckpt = read_checkpoint(Path(checkpoint), expect_kind="renderer")
        # An earlier version (--before) does not know the render settings newer checkpoints
        # carry (march, fill, precision); it renders with its own, so they are left out.
        config_cls = registry.get("renderer", ckpt.plugin, where=checkpoint).cls.Config
        ckpt = attrs.evolve(ckpt, config=known_keys(ckpt.config, config_cls))
        stage = registry.load(Path(checkpoint), "renderer", "--model", overrides=overrides or None, loaded=ckpt)
        stage.net.to(device)
        if data:
            from geneface.core.person import open_dataset
            from geneface.metrics.held_out import face_boxes, held_out_frames
            from geneface.metrics.render_cost import clip_runs

            ds = open_dataset(data)
            held = held_out_frames(ds)[: frames + 1]
            motion, camera = ds.motion(held), ds.camera(held)
            clips = clip_runs(ds.clip_index()[held])  # each frame over its own clip's plate
            real, boxes = [ds.frame(int(i)) for i in held], face_boxes(ds, held)
        else:
            mean = stage.net.condition.mean.cpu().numpy()
            motion, camera = Motion(np.repeat(mean[None], frames + 1, 0)), None
    out["size"] = int(stage.config.size)
    rendered: list = []
    _, stats = render_timed(lambda: stage, motion, camera, lambda k, frame: rendered.append(frame),
                            **({"clips": clips} if clips else {}))  # an older version (--before) has no clips
    timed = stats.seconds[1:]
    # Throughput (frames over their total time), not one over the median gap: a renderer that
    # draws frames side by side hands them over in bursts, whose median gap says nothing.
    out.update(fps=round(len(timed) / sum(timed), 3), ms_per_frame=round(1000 * sum(timed) / len(timed), 1),
               median_gap_ms=round(1000 * statistics.median(timed), 1),
               frames_timed=len(stats.seconds) - 1,
               peak_memory_mb=None if stats.memory_bytes is None else round(stats.memory_bytes / 2**20, 1),
               memory_kind=stats.memory_kind)
    if real is not None:
        from geneface.metrics.held_out import score_frames

        scores = score_frames(iter(rendered), iter(real), boxes)
        out.update(psnr=round(scores["psnr"], 3), psnr_face=round(scores["psnr_face"], 3), scored_frames=len(real))
    return out


def run_child(model: str, threads: int, frames: int, device: str, tree: str | None, overrides: str) -> dict:
    """`measure` in a fresh process, with `tree`'s geneface first on the import path."""
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(tree).resolve())] + [p for p in [env.get("PYTHONPATH")] if p])
    env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, str(HERE), "--child", model, "--threads", str(threads), "--frames", str(frames),
           "--device", device, "--config", overrides]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench_render: {model} ({'before' if tree else 'after'}) failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="CHECKPOINT[:DATASET]; repeat for several")
    parser.add_argument("--synthetic", default="", help="sides of synthetic models, e.g. 256,512")
    parser.add_argument("--threads", default="1,2", help="torch CPU thread counts, e.g. 1,2")
    parser.add_argument("--frames", type=int, default=24, help="timed frames after one warm-up (the median is reported)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--before", help="a source tree of an earlier version to measure the same way")
    parser.add_argument("--config", default="{}", help="renderer config keys (JSON) set for the current version, e.g. "
                        "'{\"fill_threshold\": 0.03}'")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    if "--child" not in sys.argv:  # a child may run an earlier tree's geneface (--before), without JsonLine
        from geneface.core.outputs import JsonLine

        JsonLine.add_flags(parser)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, int(args.threads), args.frames, args.device, json.loads(args.config))))
        return 0
    out = JsonLine.from_args(parser, args)  # before any work
    models = list(args.model) + [f"synthetic:{s}" for s in args.synthetic.split(",") if s]
    if not models:
        parser.error("give --model CHECKPOINT[:DATASET] and/or --synthetic SIZES")
    threads = [int(t) for t in args.threads.split(",")] if args.device == "cpu" else [1]
    versions = [("before", args.before), ("after", None)] if args.before else [("after", None)]
    results = []
    for model in models:
        for n in threads:
            row = {"model": model, "threads": n, "device": args.device}
            for name, tree in versions:
                row[name] = run_child(model, n, args.frames, args.device, tree, "{}" if tree else args.config)
                print(f"{name:6s} {model} threads={n}: {row[name]['fps']} fps", file=sys.stderr)
            row["size"] = row["after"]["size"]
            if args.before:
                row["speedup"] = round(row["after"]["fps"] / row["before"]["fps"], 2)
                if "psnr" in row["after"]:
                    row["psnr_change_db"] = round(row["after"]["psnr"] - row["before"]["psnr"], 3)
                    row["psnr_face_change_db"] = round(row["after"]["psnr_face"] - row["before"]["psnr_face"], 3)
            results.append(row)
    out.emit({"bench": "render", "plugin": "hashgrid_nerf", "device": args.device, "frames": args.frames,
              "before": args.before, "config": json.loads(args.config), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
