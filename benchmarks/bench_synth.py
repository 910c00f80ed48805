"""Speed of the synthetic subject: seconds to make a 10 s, 256 px clip folder.

    python benchmarks/bench_synth.py                 # median of 3 runs
    python benchmarks/bench_synth.py --tracker       # + mediapipe tracker versus ground truth

Prints one JSON line. A run is everything `geneface synth` does after start-up: speech,
animation, rendering, H.264 + AAC encoding, ground truth and meta files. The one-time
tracking of the photo (per process) is reported separately. The target is under 20 s on
a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--tracker", action="store_true", help="also check the mediapipe tracker against the truth")
    args = parser.parse_args()

    from geneface.synth.clip import ClipSpec, write_clip
    from geneface.synth.photo import track_photo

    t0 = time.perf_counter()
    track_photo()
    photo_s = time.perf_counter() - t0

    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            spec = ClipSpec(seconds=args.seconds, size=args.size, seed=run)
            t0 = time.perf_counter()
            write_clip(spec, Path(tmp) / f"clip{run}")
            times.append(time.perf_counter() - t0)
    result = {
        "benchmark": "synth_clip",
        "clip_seconds": args.seconds,
        "size": args.size,
        "runs": args.runs,
        "seconds_median": round(statistics.median(times), 3),
        "seconds_all": [round(t, 3) for t in times],
        "realtime_factor": round(args.seconds / statistics.median(times), 2),
        "photo_tracking_seconds": round(photo_s, 3),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
    }
    if args.tracker:
        from geneface.app.components import face_tracker
        from geneface.registry import get_registry
        from geneface.synth.check import tracker_vs_truth

        result["tracker"] = tracker_vs_truth(face_tracker("mediapipe", get_registry()), seconds=args.seconds, seed=0, size=args.size)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
