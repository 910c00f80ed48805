"""Speed of audio -> motion (the `vae` generator) on 60 s of speech; prints one JSON line.

    python benchmarks/bench_motion.py [--checkpoint vae/model.safetensors] [--seconds 60] [--repeat 3]

The motion time covers `VAEGenerator.generate` (flow prior, windowed decoder, de-normalising)
and excludes feature extraction, which is timed on its own (`mel`, the default encoder).
Audio: the speech files in ../shared/data/audio joined and looped to the length asked for, or
a generated voiced signal when that folder is absent. Without --checkpoint the model has
METHOD.md's full size with random weights: the speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

SHARED_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"


def speech(seconds: float) -> tuple[np.ndarray, str]:
    from geneface.core.media import read_audio

    files = sorted(SHARED_AUDIO.glob("*.wav")) if SHARED_AUDIO.is_dir() else []
    if files:
        y = np.concatenate([read_audio(f).samples for f in files])
        source = ",".join(f.name for f in files)
    else:  # a voiced, syllable-modulated stand-in
        t = np.arange(int(seconds * 16_000)) / 16_000
        phase = 2 * np.pi * np.cumsum(120 + 30 * np.sin(np.pi * t)) / 16_000
        y = 0.3 * sum(np.sin(k * phase) / k for k in range(1, 8)) * np.clip(np.sin(8 * np.pi * t), 0, None) ** 2
        source = "generated"
    n = int(seconds * 16_000)
    return np.resize(y, n).astype(np.float32), source


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="a trained vae checkpoint (default: random full-size model)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs after one warm-up; the median is reported")
    args = parser.parse_args()

    import torch

    from geneface.core.records import Audio
    from geneface.plugins.mel import MelEncoder
    from geneface.plugins.vae import VAEConfig, VAEGenerator

    samples, source = speech(args.seconds)
    audio = Audio(samples, 16_000)
    t0 = time.perf_counter()
    features = MelEncoder().encode(audio)
    feature_s = time.perf_counter() - t0

    if args.checkpoint:
        from geneface.registry import get_registry

        generator = get_registry().load(args.checkpoint, "motion_generator", "--checkpoint")
    else:
        torch.manual_seed(0)
        generator = VAEGenerator(VAEConfig(audio_width=features.width))
    generator.generate(features)  # warm-up: first-call allocations
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        motion = generator.generate(features)
        times.append(time.perf_counter() - t0)
    motion_s = statistics.median(times)
    print(json.dumps({
        "benchmark": "motion",
        "audio_s": args.seconds,
        "audio_source": source,
        "frames": motion.n_frames,
        "motion_s": round(motion_s, 4),
        "motion_runs_s": [round(t, 4) for t in times],
        "motion_x_realtime": round(args.seconds / motion_s, 1),
        "feature_encoder": "mel",
        "feature_s": round(feature_s, 4),
        "window": generator.config.window,
        "params": sum(p.numel() for p in generator.net.parameters()),
        "checkpoint": str(args.checkpoint) if args.checkpoint else None,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "device": "cpu",
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
