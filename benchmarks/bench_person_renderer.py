"""Renderer training on a person of many minutes: peak memory and time per step at 1 minute and
at all of it (issue 35: frames are read per batch, so a 40-minute person is never in memory;
target: peak within 1.5x of the 1-minute person's, time per step within 15 %).

Persons are made of processed clips (one dataset per clip, e.g. GRID s1 at 128 px) with
`geneface.core.person.write_person_manifest` in a scratch folder (`--work`, never the clips'
folder): the same held-out clips (the last `--held-out` of the clips, sorted by name) for
both, trained on the first clips up to `--minutes` of video, and on every other clip. Each is
trained in a fresh process (`geneface train renderer`'s code path, `train_plugin`), so its
peak is its own:

- peak memory: the training process's resident high-water mark (`ru_maxrss` of that child,
  everything from the interpreter's start: imports, dataset, model, optimiser, training,
  validation at the end);
- time per step: the median of the wall time between consecutive steps, the first
  `--warmup` steps left out.

    python benchmarks/bench_person_renderer.py --clips /work/data/grid128/clips --steps 60 \\
        [--plugin hashgrid_nerf] [--minutes 1] [--held-out 4] [--work /tmp/bench_person]

One JSON line: for each person its training minutes, clips, frames, peak MB and median
seconds per step, and the ratios (all / 1 minute).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FPS = 25.0


def complete_clips(folder: Path) -> list[Path]:
    """The finished clip datasets under `folder` (a manifest written last), sorted by name."""
    return sorted(p for p in folder.iterdir() if (p / "manifest.json").is_file())


def make_person(out: Path, train: list[Path], held_out: list[Path]) -> Path:
    from geneface.core.person import write_person_manifest

    out.mkdir(parents=True, exist_ok=True)
    write_person_manifest(out, [*train, *held_out], held_out_from=len(train))
    return out


def clip_frames(clip: Path) -> int:
    return int(json.loads((clip / "manifest.json").read_text())["n_frames"])


def train_child(person: Path, out: Path, plugin: str, steps: int, warmup: int, batch: int) -> dict:
    """In this process (a child of the benchmark): train and time the steps."""
    from geneface.registry import get_registry
    from geneface.app.train import train_plugin

    registry = get_registry()
    entry = registry.get("renderer", plugin)
    stamps: list[float] = []
    started = time.monotonic()
    train_plugin(entry, [person], out, args=["--profile", "quick"],
                 loop={"steps": steps, "batch_size": batch, "val_every": steps, "threads": 1},
                 config=_config(out), progress=False, on_step=lambda step: stamps.append(time.monotonic()),
                 registry=registry)
    gaps = [b - a for a, b in zip(stamps[:-1], stamps[1:])][warmup:]
    gaps.sort()
    return {"steps": len(stamps), "median_step_s": gaps[len(gaps) // 2] if gaps else None,
            "train_s": time.monotonic() - started}


def _config(out: Path) -> Path:
    # Validation: two held-out frames, no images (the cost measured is training's).
    path = out.with_name(out.name + ".yaml")
    path.write_text("task:\n  val_frames: 2\n  val_images: 0\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, required=True, help="folder of processed clip datasets (read only)")
    parser.add_argument("--plugin", default="hashgrid_nerf")
    parser.add_argument("--minutes", type=float, default=1.0, help="the short person's training minutes")
    parser.add_argument("--held-out", type=int, default=4, help="held-out clips (the last ones by name)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N finished clips (0: all)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()

    clips = complete_clips(args.clips)
    clips = clips[:args.limit] if args.limit else clips
    if len(clips) < args.held_out + 2:
        raise SystemExit(f"{args.clips}: {len(clips)} finished clips, too few")
    held, pool = clips[-args.held_out:], clips[:-args.held_out]
    short, frames = [], 0
    for c in pool:
        if frames >= args.minutes * 60 * FPS:
            break
        short.append(c)
        frames += clip_frames(c)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_person_"))
    if work.resolve().is_relative_to(args.clips.resolve()):
        raise SystemExit("--work must not be inside --clips (the clips are read only)")
    rows = {}
    try:
        for name, train in (("short", short), ("all", pool)):
            person = make_person(work / f"person_{name}", train, held)
            result = measure_with_peak(person, work / f"run_{name}", args)
            n = sum(clip_frames(c) for c in train)
            rows[name] = {"train_minutes": round(n / FPS / 60.0, 2), "train_clips": len(train), "train_frames": n,
                          "held_out_clips": len(held), **result}
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    short_row, all_row = rows["short"], rows["all"]
    print(json.dumps({
        "benchmark": "person_renderer_training", "plugin": args.plugin, "steps": args.steps,
        "batch_size": args.batch_size, "profile": "quick", "threads": 1, "clips": str(args.clips),
        "short": short_row, "all": all_row,
        "peak_ratio": round(all_row["peak_mb"] / short_row["peak_mb"], 3),
        "step_time_ratio": round(all_row["median_step_s"] / short_row["median_step_s"], 3),
        "peak": "ru_maxrss of the training process (interpreter, imports, data, model, training, final validation)",
        "step_time": f"median wall time between consecutive steps, first {args.warmup} left out",
    }))


def measure_with_peak(person: Path, out: Path, args) -> dict:
    """`measure`, with the child's peak resident memory from its own rusage."""
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "from bench_person_renderer import train_child; from pathlib import Path; "
            f"print('RESULT', json.dumps(train_child(Path({str(person)!r}), Path({str(out)!r}), "
            f"{args.plugin!r}, {args.steps}, {args.warmup}, {args.batch_size})))")
    with tempfile.TemporaryFile("w+") as log, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=err,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        _, status, usage = os.wait4(proc.pid, 0)
        log.seek(0)
        err.seek(0)
        stdout, stderr = log.read(), err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"training on {person} failed:\n{stderr[-3000:]}")
    line = next(x for x in stdout.splitlines() if x.startswith("RESULT "))
    return {**json.loads(line[len("RESULT "):]), "peak_mb": round(usage.ru_maxrss / 1024.0, 1)}


if __name__ == "__main__":
    main()
