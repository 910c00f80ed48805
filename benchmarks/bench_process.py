"""Throughput of `geneface process` on a real clip; prints one JSON line.

    python benchmarks/bench_process.py [VIDEO] [--size 512] [--repeat 1]

Default VIDEO: ../shared/data/video/german_news_20s.mp4 (skipped with a JSON note when that
folder is absent). The dataset goes to a temporary folder that is removed afterwards. The
wall time covers everything `geneface process` does in-process (probe, hash, tracking,
masks, frames, pose, audio, features, manifest), excluding only interpreter start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "german_news_20s.mp4"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=1, help="Runs; the best is reported with all of them.")
    args = parser.parse_args()
    if not args.video.exists():
        print(json.dumps({"benchmark": "process", "skipped": f"{args.video} not found"}))
        return 0

    from geneface.app.process import process_video
    from geneface.registry import get_registry
    from geneface.processing import ProcessConfig

    runs = []
    last = None
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = process_video(args.video, Path(tmp) / "ds", ProcessConfig(size=args.size), quiet=True, log=lambda m: None, registry=get_registry())
            seconds = time.perf_counter() - t0
            last = result.manifest
        runs.append(seconds)
    best = min(runs)
    q = last["quality"]
    print(json.dumps({
        "benchmark": "process",
        "video": args.video.name,
        "size": args.size,
        "frames": last["n_frames"],
        "seconds": round(best, 3),
        "fps": round(last["n_frames"] / best, 2),
        "runs_seconds": [round(r, 3) for r in runs],
        "reprojection_error_px_mean": q["reprojection_error_px"]["mean"],
        "reprojection_error_px_max": q["reprojection_error_px"]["max"],
        "head_hull_coverage_min": q["head_hull_coverage"]["min"],
        "tracking_failures": q["tracking_failures"],
        "stage_seconds": last["timings"],
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
