"""Corpus processing at scale, simulated on this machine; prints one JSON line.

    python benchmarks/bench_corpus.py [--clips 200] [--workers 2] [--size 128] [--json FILE [--overwrite]]

A corpus of `--clips` clips is made by repeating the LRS3-like clips of
../shared/data/corpus (the 224 x 224 VoxCeleb clips, `*PC-AVS*`: the size and length of LRS3's
utterances), each repeat under its own speaker folder (links, no copies). It is processed
twice, from nothing, with the same settings and worker count: by the local process pool
(`--workers N`) and by a local Ray (`--ray local --workers N`), each a `geneface
process-corpus` subprocess, timed from start to exit.

Reported per backend: wall seconds, clips/s, frames/s, and the per-clip overhead: the wall
time a clip costs a worker (`wall * workers / clips`) less the median time that processing a
clip takes in one warm process (measured first, on each distinct clip). Then an estimate of
the wall time for LRS3's 400 hours (36 M frames at 25 fps) on N machines of C cores, from the
better backend's measured frames/s per core, assuming clips of the same length, no I/O limit
and linear scaling (say so when quoting it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from geneface.core.outputs import JsonLine

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus"
LRS3_HOURS = 400
MACHINES = (1, 10, 50, 100)


def _make_corpus(sources: list[Path], n: int, root: Path) -> Path:
    src = root / "in"
    for i in range(n):
        clip = sources[i % len(sources)]
        folder = src / f"spk{i:04d}"
        folder.mkdir(parents=True)
        (folder / clip.name).symlink_to(clip)
    return src


def _warm_clip_seconds(sources: list[Path], size: int, root: Path) -> tuple[list[float], list[int]]:
    """Each distinct clip processed once in this process, after one warm-up (imports, models)."""
    from geneface.app.process import process_video
    from geneface.registry import get_registry
    from geneface.processing import ProcessConfig

    config = ProcessConfig(size=size, max_failed=0.5)
    process_video(sources[0], root / "warm" / "x", config, quiet=True, log=lambda m: None, registry=get_registry())
    seconds, frames = [], []
    for i, clip in enumerate(sources):
        t0 = time.perf_counter()
        result = process_video(clip, root / "warm" / f"c{i}", config, quiet=True, log=lambda m: None, registry=get_registry())
        seconds.append(time.perf_counter() - t0)
        frames.append(int(result.manifest["n_frames"]))
    return seconds, frames


def _run(cmd: list[str], out: Path) -> dict:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    report = json.loads((out / "corpus_report.json").read_text()) if (out / "corpus_report.json").exists() else {}
    done = [c for c in report.get("clips", []) if c["status"] == "done"]
    return {"returncode": proc.returncode, "wall_s": round(wall, 2), "clips_done": len(done),
            "clips_failed": report.get("counts", {}).get("failed"),
            "frames": sum(c["n_frames"] or 0 for c in done), "stderr_tail": proc.stderr[-300:] if proc.returncode else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--cores", type=int, default=32, help="Cores per machine in the extrapolation.")
    JsonLine.add_flags(parser)
    args = parser.parse_args()
    out = JsonLine.from_args(parser, args)  # before any work
    sources = sorted(CORPUS.glob("*PC-AVS*.mp4"))
    if not sources:
        print(json.dumps({"benchmark": "corpus", "skipped": f"no *PC-AVS*.mp4 clips in {CORPUS}"}))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        warm, warm_frames = _warm_clip_seconds(sources, args.size, root)
        src = _make_corpus(sources, args.clips, root)
        common = [str(src), "--workers", str(args.workers), "--size", str(args.size), "--quiet"]
        base = [sys.executable, "-m", "geneface", "process-corpus"]
        results = {}
        for name, extra in (("pool", []), ("ray", ["--ray", "local"])):
            out = root / name
            results[name] = _run(base + [common[0], str(out)] + common[1:] + extra, out)
    per_clip = statistics.median(warm)
    for r in results.values():
        wall, n = r["wall_s"], max(1, r["clips_done"])
        r["clips_per_s"] = round(n / wall, 3)
        r["frames_per_s"] = round(r["frames"] / wall, 2)
        r["overhead_per_clip_s"] = round(wall * args.workers / n - per_clip, 3)
    best = max(results, key=lambda k: results[k]["frames_per_s"])
    fps_per_core = results[best]["frames_per_s"] / args.workers
    total_frames = LRS3_HOURS * 3600 * 25
    estimate = {f"{m}x{args.cores}_cores_hours": round(total_frames / (fps_per_core * args.cores * m) / 3600, 2)
                for m in MACHINES}
    out.emit({
        "benchmark": "corpus", "clips": args.clips, "workers": args.workers, "size": args.size,
        "distinct_clips": len(sources), "mean_clip_frames": round(statistics.mean(warm_frames), 1),
        "warm_clip_seconds_median": round(per_clip, 3),
        "warm_fps_one_process": round(sum(warm_frames) / sum(warm), 2),
        "pool": results["pool"], "ray": results["ray"],
        "ray_over_pool_wall": round(results["ray"]["wall_s"] / results["pool"]["wall_s"], 3),
        "extrapolation": {"basis": f"{best}: {fps_per_core:.2f} frames/s per core, {LRS3_HOURS} h = {total_frames} "
                          "frames, linear scaling, no I/O limit (an estimate)", **estimate},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
