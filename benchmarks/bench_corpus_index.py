"""How fast training starts on a large indexed corpus, and what lazy clips cost; one JSON line.

    python benchmarks/bench_corpus_index.py [--entries 10000] [--lazy-clips 1000] [--repeat 5]

1. An index of `--entries` synthetic entries (5 % of them cut by a tracking failure, 2 % flagged,
   800 speakers, 2-20 s clips) is written with geneface.core.corpus_index and read back
   `--repeat` times: the median seconds of `read_index`, of listing its training clips
   (`read_index_clips`), and of the speaker-balanced weights and sampler over them.
2. `--lazy-clips` clips' arrays (canonical landmarks and 80-wide features, 250 frames each) are
   written to disk, and 200 batches of 64 windows of 32 frames are drawn from them as the VAE
   trainer draws them: the resident memory this adds, against the bytes that loading those
   clips into memory would take, and the median seconds per batch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _entries(n: int, rng: np.random.Generator):
    from geneface.core.corpus_index import IndexEntry

    mean, std = np.zeros((68, 3), np.float32), np.ones((68, 3), np.float32)
    for i in range(n):
        frames = int(rng.integers(50, 500))
        cut = rng.random() < 0.05
        segments = ((0, frames // 2 - 3), (frames // 2, frames)) if cut else ((0, frames),)
        yield IndexEntry(f"spk{i % 800:04d}/clip{i:06d}", f"spk{i % 800:04d}", frames, segments, mean, std,
                         (("mel", 80),), 0, "estimated", bool(rng.random() < 0.02), 3 if cut else 0, 128)


def _median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _rss_mb() -> float:
    from geneface.core.measure import rss_bytes

    return rss_bytes() / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--lazy-clips", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from geneface.core import corpus_index as ci
    from geneface.training.data import ClipDraw, clip_weights
    from geneface.training.lazy_clips import LazyClip, read_index_clips

    rng = np.random.default_rng(0)
    out: dict = {"benchmark": "corpus_index", "entries": args.entries}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        ci.write_index(ci.index_of(root, _entries(args.entries, rng)))
        out["write_s"] = round(time.perf_counter() - t0, 3)
        out["index_bytes"] = (root / ci.INDEX).stat().st_size
        out["read_index_s"] = round(_median_seconds(lambda: ci.read_index(root), args.repeat), 4)
        index = ci.read_index(root)
        out["list_clips_s"] = round(_median_seconds(lambda: read_index_clips(index, "mel"), args.repeat), 4)
        clips, _ = read_index_clips(index, "mel")
        out["training_clips"] = len(clips)
        out["weights_and_sampler_s"] = round(_median_seconds(
            lambda: ClipDraw(clip_weights(clips, 32, "speaker")), args.repeat), 4)
        out["read_to_sampler_s"] = round(out["read_index_s"] + out["list_clips_s"] + out["weights_and_sampler_s"], 4)

        # Lazy clips on disk: resident memory while drawing batches, against loading them.
        n, frames = args.lazy_clips, 250
        mean, std = np.zeros((68, 3), np.float32), np.ones((68, 3), np.float32)
        lazy = []
        for i in range(n):
            folder = root / "arrays" / f"c{i:05d}"
            (folder / "landmarks").mkdir(parents=True)
            (folder / "audio_features").mkdir()
            np.save(folder / "landmarks" / "canonical68.npy", rng.standard_normal((frames, 68, 3)).astype(np.float32))
            np.save(folder / "audio_features" / "mel.npy", rng.standard_normal((2 * frames, 80)).astype(np.float32))
            lazy.append(LazyClip(f"c{i}", f"s{i % 50}", str(folder), 0, frames, "mel", 80, mean, std))
        draw = ClipDraw(clip_weights(lazy, 32, "speaker"))
        before = _rss_mb()
        batch_times = []
        for _ in range(200):
            t0 = time.perf_counter()
            for _ in range(64):
                c = lazy[draw(rng)]
                t = int(rng.integers(c.n_frames - 32 + 1))
                c.landmarks[t: t + 32], c.features[2 * t: 2 * (t + 32)]
            batch_times.append(time.perf_counter() - t0)
        out["lazy"] = {
            "clips": n, "frames_each": frames,
            "resident_growth_mb": round(_rss_mb() - before, 1),
            "in_memory_would_be_mb": round(n * frames * (204 + 160) * 4 / 2**20, 1),
            "batch_64x32_median_s": round(statistics.median(batch_times), 4),
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
