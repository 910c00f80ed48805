"""`hashgrid_nerf` against the nearest training frame on every person of at least 10 s in a
folder of real clips (../shared/data by default), one budget for all; prints one JSON line.

    python benchmarks/bench_renderer_people.py --work WORK [--clips ../shared/data] \\
        [--min-seconds 10] [--size 256] [--budget 4] [--threads 2] \\
        [--plugins hashgrid_nerf,nearest_frame] [--json OUT.json] [--overwrite]

1. Picks the clips: every .mp4 under `--clips` of at least `--min-seconds`, one clip per
   person (the longest): a person is the file name without a trailing `_clipN` /
   `_clipN_short`, so the StyleTalk Obama addresses count once, not three times.
2. Processes them at `--size` px with `geneface process-corpus` into WORK/datasets (links to
   the clips in WORK/clips, never copies; a finished dataset is reused, so a rerun with
   `--overwrite` only benches again).
3. Runs `geneface bench renderers` over all of them into WORK/bench (an existing one is
   replaced only with `--overwrite`, refused before any work): each renderer trained for the
   same `--budget` minutes on each person and scored on that person's held-out last 1/11
   (PSNR and SSIM full frame and face box, mouth LMD).

The JSON holds the persons (clip, seconds), the settings and WORK/bench/summary.json's
per-renderer wins and losses and per-person values and differences.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from geneface.core.outputs import JsonLine

HERE = Path(__file__).resolve()
PERSON = re.compile(r"_clip\d+(_short)?$")


def pick_persons(clips: Path, min_seconds: float) -> list[tuple[str, Path, float]]:
    """(person, clip, seconds), the longest clip of each person with at least `min_seconds`."""
    from geneface.core.media import probe_video

    best: dict[str, tuple[Path, float]] = {}
    for clip in sorted(clips.rglob("*.mp4")):
        seconds = probe_video(clip).duration
        person = PERSON.sub("", clip.stem)
        if seconds >= min_seconds and (person not in best or seconds > best[person][1]):
            best[person] = (clip, seconds)
    return [(person, clip, round(seconds, 2)) for person, (clip, seconds) in sorted(best.items())]


def geneface(*args: str) -> None:
    cmd = [sys.executable, "-m", "geneface", *args]
    done = subprocess.run(cmd)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="Folder for the clips' links, datasets and bench.")
    parser.add_argument("--clips", type=Path, default=HERE.parents[2] / "shared" / "data")
    parser.add_argument("--min-seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--budget", type=float, default=4.0, help="Training minutes per renderer and person.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plugins", default="hashgrid_nerf,nearest_frame")
    JsonLine.add_flags(parser, overwrite_help="Replace an existing --json file and WORK/bench.")
    args = parser.parse_args()
    out = JsonLine.from_args(parser, args)  # before any work
    if not args.clips.is_dir():
        parser.error(f"--clips {args.clips}: no such folder")
    bench = args.work / "bench"
    if bench.exists() and not args.overwrite:
        parser.error(f"{bench} exists (pass --overwrite to replace the bench; finished datasets are kept)")
    try:
        args.work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"--work {args.work}: cannot create it ({exc.strerror or exc})")
    if not os.access(args.work, os.W_OK):
        parser.error(f"--work {args.work}: not writable")
    persons = pick_persons(args.clips, args.min_seconds)
    if not persons:
        parser.error(f"--clips {args.clips}: no clip of at least {args.min_seconds:g} s")

    links, datasets = args.work / "clips", args.work / "datasets"
    for person, clip, _ in persons:
        link = links / person / clip.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(clip.resolve())
    workers = str(max(1, min(2, os.cpu_count() or 1)))
    geneface("process-corpus", str(links), str(datasets), "--size", str(args.size), "-j", workers)

    data = [a for person, clip, _ in persons for a in ("--data", str(datasets / person / clip.stem))]
    geneface("bench", "renderers", *data, "--plugins", args.plugins, "--budget", str(args.budget),
             "--threads", str(args.threads), "--device", "cpu", "--out", str(bench), "--overwrite", "-q")
    summary = json.loads((bench / "summary.json").read_text())
    out.emit({"benchmark": "renderer_people", "size": args.size, "budget_minutes": args.budget,
              "threads": args.threads, "persons": [{"person": p, "clip": str(c), "seconds": s} for p, c, s in persons],
              "summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
