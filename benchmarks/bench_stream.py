"""Latency of `geneface stream` on a spec's chain, fed in real time; prints one JSON line.

    python benchmarks/bench_stream.py --spec person.yaml [--audio speech.wav] [--chunk-ms 200]
        [--lookahead 0.4|exact] [--threads N] [--device cuda] [--max-lag SECONDS]

The audio (default: the spec's input.audio) is decoded once and fed chunk by chunk, each
chunk when a live source would have delivered it (its last sample's time since the start),
which is also its arrival time; the stages are warmed up first, as the command does. Frames
are counted, not written. Reported (seconds; docs/streaming.md defines them):
`first_frame` (first chunk's arrival to first frame emitted), `steady_lag_median` and
`steady_lag_p90` (lag of frames after the first second: emitted minus its audio's arrival),
`max_lag`, `frames`, `dropped`, `exact` and why not, the look-ahead used and needed, and
`realtime_factor` (wall time of the stream over the audio's length: above 1 means it fell
behind). `--device` moves the renderer (CPU stages stay where they are).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="pipeline spec from an audio encoder to a renderer")
    parser.add_argument("--audio", type=Path, help="speech to stream (default: the spec's input.audio)")
    parser.add_argument("--chunk-ms", type=float, default=200.0)
    parser.add_argument("--lookahead", default="0.4", help="seconds, or 'exact'")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", help="move the renderer here (e.g. cuda)")
    parser.add_argument("--max-lag", type=float, help="drop older frames of a batch this late (seconds)")
    args = parser.parse_args()

    import torch

    from geneface.app.stream import Streamer
    from geneface.app.stream_run import chunk_samples, file_chunks
    from geneface.cli.cmd_stream import parse_lookahead
    from geneface.core.media import read_audio
    from geneface.core.spec import load_spec
    from geneface.registry import get_registry

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = load_spec(args.spec)
    audio_path = args.audio or spec.input.audio
    if audio_path is None:
        parser.error("--audio: the spec has no input.audio; give one")
    audio = read_audio(audio_path)
    streamer = Streamer.from_spec(spec, get_registry(), lookahead=parse_lookahead(args.lookahead),
                                  max_lag=args.max_lag)
    renderer = streamer.renderer
    device = "cpu"
    if args.device and getattr(renderer, "net", None) is not None:
        renderer.to_device(args.device) if hasattr(renderer, "to_device") else renderer.net.to(args.device)
        device = args.device
    streamer.warm_up()

    started = time.perf_counter()
    frames = 0
    for chunk, arrived in file_chunks(audio, chunk_samples(args.chunk_ms), realtime=True):
        frames += len(streamer.feed(chunk, arrived_at=arrived))
    frames += len(streamer.finish())
    wall = time.perf_counter() - started
    lat = streamer.latency()
    print(json.dumps({
        "spec": str(args.spec), "audio": str(audio_path), "audio_seconds": round(lat.audio_seconds, 3),
        "chunk_ms": args.chunk_ms, "threads": torch.get_num_threads(), "device": device,
        "stages": [p.label for p in streamer.plan.stages],
        "first_frame": lat.first_frame, "steady_lag_median": lat.steady_lag, "steady_lag_p90": lat.lag_p90,
        "max_lag": lat.max_lag, "frames": frames, "dropped": lat.dropped, "chunks": lat.chunks,
        "lookahead": lat.lookahead, "needed_lookahead": lat.needed_lookahead,
        "exact": lat.exact, "why_not_exact": list(lat.why_not_exact),
        "realtime_factor": round(wall / lat.audio_seconds, 3) if lat.audio_seconds else None,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
