"""`geneface stream`: audio in as it arrives, frames out with bounded look-ahead.

    geneface stream SPEC.yaml --audio FILE|- [-o out.mp4] [--raw PATH|-] [--chunk-ms 200]
        [--lookahead SECONDS|exact] [--realtime] [--max-lag SECONDS] [--overwrite] [--json REPORT.json]

The engine is `geneface.app.stream_run` (the Streamer itself: `geneface.app.stream`); this
module holds the flags and prints the latency report. docs/streaming.md.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Optional

import typer

from geneface.cli.app import app


def parse_lookahead(value: str) -> Optional[float]:
    """--lookahead: seconds, or 'exact' (None: as much as the chain needs)."""
    from geneface.errors import UsageError

    if value.strip().lower() == "exact":
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise UsageError(f"--lookahead: expected seconds or 'exact', got {value!r}") from None
    if not (math.isfinite(seconds) and seconds >= 0):
        raise UsageError(f"--lookahead: expected seconds >= 0 or 'exact', got {value!r}")
    return seconds


def _seconds(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f} s"


def report_lines(result) -> list[str]:
    """The latency report, a few lines for people (the JSON holds the same and more)."""
    lat = result.latency
    wrote = [str(p) for p in (result.output,) if p is not None]
    if result.raw is not None:
        wrote.append("raw RGB24 to stdout" if result.raw == "-" else f"{result.raw} (raw RGB24)")
    lines = [f"wrote {' and '.join(wrote)}: {result.frames} frames, {lat.audio_seconds:.2f} s of audio in "
             f"{lat.chunks} chunks",
             f"latency: first frame {_seconds(lat.first_frame)}, steady lag {_seconds(lat.steady_lag)} "
             f"(p90 {_seconds(lat.lag_p90)}), max {_seconds(lat.max_lag)}; look-ahead {lat.lookahead:.2f} s "
             f"(exact needs {lat.needed_lookahead:.2f} s); {lat.frames} frames emitted, {lat.dropped} dropped"]
    if lat.exact:
        lines.append("exact: yes (every frame equals the offline run's)")
    else:
        lines.append("exact: no (" + "; ".join(lat.why_not_exact) + ")")
    if result.report is not None:
        lines.append(f"report: {result.report}")
    return lines


@app.command()
def stream(
    spec: Path = typer.Argument(..., help="Pipeline spec (YAML) from an audio encoder to a renderer."),
    audio: str = typer.Option(..., "--audio", "-a", help="Driving speech: a file (fed in chunks), or - for raw "
                              "s16le 16 kHz mono PCM on stdin, read as it arrives."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="mp4 to write (audio muxed); default the "
                                          "spec's output, none when only --raw is given."),
    raw: Optional[str] = typer.Option(None, "--raw", help="Also (or only) write raw RGB24 frames to this file, or - "
                                      "for stdout (the report then goes to stderr)."),
    chunk_ms: float = typer.Option(200.0, "--chunk-ms", help="Milliseconds of audio per chunk fed (a file) or "
                                   "at most per read (stdin)."),
    lookahead: str = typer.Option("0.4", "--lookahead", help="Seconds of audio the stream may wait for beyond a "
                                  "frame, or 'exact': as much as the chain needs for offline-equal frames."),
    realtime: bool = typer.Option(False, "--realtime", help="Feed a file's chunks at the audio's real rate, so "
                                  "the latency is what a live source would see."),
    max_lag: Optional[float] = typer.Option(None, "--max-lag", help="Drop older frames of a batch when they are "
                                            "already this many seconds late (keeps a slow renderer live)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs that exist."),
    report: Optional[Path] = typer.Option(None, "--json", help="Also write the latency report as JSON here."),
) -> None:
    """Stream speech through a spec: frames come out while the audio is still arriving."""
    from geneface.app.stream_run import run_stream
    from geneface.core.spec import load_spec
    from geneface.registry import get_registry

    result = run_stream(load_spec(spec), get_registry(), audio, output=output, raw=raw, chunk_ms=chunk_ms,
                        lookahead=parse_lookahead(lookahead), realtime=realtime, overwrite=overwrite,
                        report=report, max_lag=max_lag)
    out = sys.stderr if raw == "-" else sys.stdout  # stdout may be carrying the frames
    for line in report_lines(result):
        print(line, file=out)
