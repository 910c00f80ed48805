"""Render throughput of landmark_sketch, frames only (no video encoding).

    taskset -c 0 python -m geneface_landmark_viz.bench --size 256 --frames 500 --repeats 7

Prints the median frames per second over the repeats (and the spread). Pin to one core with
taskset for a one-core figure; cv2's own thread pool is limited to one thread here.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv=None) -> None:
    import cv2

    from geneface_landmark_viz.sketch import LandmarkSketch, SketchConfig
    from geneface_landmark_viz.synthetic import talking_motion

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-side", action="store_true", help="front panel only")
    args = parser.parse_args(argv)

    cv2.setNumThreads(1)
    renderer = LandmarkSketch(SketchConfig(size=args.size, show_side=not args.no_side))
    motion = talking_motion(args.frames)
    for _ in renderer.render(talking_motion(10)):  # warm-up: imports, font cache
        pass
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        n = sum(1 for _ in renderer.render(motion))
        rates.append(n / (time.perf_counter() - start))
    height, width = renderer.frame_size()
    print(
        f"landmark_sketch {width}x{height}: median {statistics.median(rates):.0f} frames/s "
        f"over {args.repeats} runs of {args.frames} frames (min {min(rates):.0f}, max {max(rates):.0f})"
    )


if __name__ == "__main__":
    main()
