"""The engine of `geneface stream`: audio from a file or stdin, chunk by chunk, through a
`Streamer` (geneface.app.stream), frames to an mp4 and/or raw RGB24, and the latency report.

- Sources: a file is decoded once (`read_audio`) and fed in chunks of `chunk_ms`; with
  `realtime` each chunk is fed when a live source would have delivered it (its last sample's
  time from the start), and that time is its arrival, so the latency means what it says
  even when the work falls behind. `-` reads raw s16le 16 kHz mono PCM from stdin as it
  arrives (each read takes what is there, up to a chunk).
- Sinks: an mp4 (H.264, the audio muxed as it arrives, written under a temporary name and
  renamed when complete) and/or raw RGB24 frames (a file, written the same way, or stdout);
  a frame the streamer dropped to keep up is filled with the last frame written, so both
  hold every frame of the audio.
- Every output (mp4, raw file, JSON report) is checked before any work, as `geneface run`
  checks its own (`geneface.core.outputs`).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional

import attrs
import numpy as np

from geneface.app.stream import Latency, Streamer, check_streamable
from geneface.core.atomic import atomic_output
from geneface.core.media import VideoWriter, read_audio
from geneface.core.outputs import prepare_output, prepare_spec_output
from geneface.core.records import SAMPLE_RATE, VIDEO_FPS, Audio
from geneface.core.spec import PipelineSpec, validate_spec
from geneface.errors import PipeClosedError, UsageError

STDIN = "-"
PCM_BYTES = 2  # s16le


@attrs.frozen
class StreamResult:
    latency: Latency
    plan: tuple  # (label, back, ahead, exact, why) per stage, in order
    output: Optional[Path]  # the mp4, when one was written
    raw: Optional[str]  # the raw frames' file, or "-" for stdout
    report: Optional[Path]  # the JSON report, when asked for
    frames: int  # frames written (dropped ones filled)

    def to_dict(self) -> dict:
        return {"latency": self.latency.to_dict(),
                "stages": [dict(zip(("stage", "back", "ahead", "exact", "why"), row)) for row in self.plan],
                "output": str(self.output) if self.output else None, "raw": self.raw, "frames": self.frames}


def chunk_samples(chunk_ms: float) -> int:
    if not chunk_ms > 0:
        raise UsageError(f"--chunk-ms: expected a positive number of milliseconds, got {chunk_ms:g}")
    return max(1, int(round(chunk_ms * SAMPLE_RATE / 1000)))


def file_chunks(audio: Audio, size: int, realtime: bool, clock: Callable[[], float] = time.perf_counter,
                sleep: Callable[[float], None] = time.sleep) -> Iterator[tuple[np.ndarray, Optional[float]]]:
    """(chunk, arrival time or None for "now") over a decoded file; `realtime` paces them."""
    started = clock()
    for start in range(0, len(audio.samples), size):
        chunk = audio.samples[start:start + size]
        if not realtime:
            yield chunk, None
            continue
        due = started + (start + len(chunk)) / SAMPLE_RATE  # when a live source has its last sample
        wait = due - clock()
        if wait > 0:
            sleep(wait)
        yield chunk, due


def pcm_chunks(stream: BinaryIO, size: int) -> Iterator[tuple[np.ndarray, Optional[float]]]:
    """s16le mono PCM from `stream` as it arrives, up to `size` samples a read."""
    read = getattr(stream, "read1", stream.read)  # read1: what is there now, without waiting for a full chunk
    carry = b""
    while True:
        data = read(size * PCM_BYTES)
        if not data:
            break
        data = carry + data
        whole = len(data) - len(data) % PCM_BYTES
        carry = data[whole:]
        if whole:
            yield np.frombuffer(data[:whole], "<i2").astype(np.float32) / 32768.0, None


class FrameSink:
    """Frames (index, uint8 H x W x 3) in order to an mp4 writer and/or a raw byte stream;
    a gap (dropped frames) is filled with the last frame written (or the next one, at the start)."""

    def __init__(self, writer: Optional[VideoWriter], raw: Optional[BinaryIO]):
        self.writer, self.raw = writer, raw
        self.written = 0
        self._last: Optional[np.ndarray] = None

    def audio(self, samples: np.ndarray) -> None:
        if self.writer is not None:
            self.writer.add_audio(samples)

    def frames(self, frames: list) -> None:
        for index, frame in frames:
            while self.written < index:
                self._put(self._last if self._last is not None else frame)
            self._put(frame)
        if self.raw is not None:
            self.raw.flush()  # a reader downstream sees each batch as it is made

    def _put(self, frame: np.ndarray) -> None:
        if self.writer is not None:
            self.writer.write(frame)
        if self.raw is not None:
            self.raw.write(np.ascontiguousarray(frame).tobytes())
        self._last = frame
        self.written += 1


def _prepare(spec: PipelineSpec, registry, audio: str, output: Optional[Path], raw: Optional[str],
             report: Optional[Path], overwrite: bool):
    """(the validated spec, the mp4 or None, the raw file or None): the spec validated with the
    mp4 as its output, then every output checked, before any work (as `geneface run`). Without
    -o the mp4 is the spec's output, unless raw frames were asked for."""
    audio_path = None if audio == STDIN else Path(audio)
    if audio_path is not None and not audio_path.is_file():
        raise UsageError(f"--audio {audio}: no such file (give a file, or - for s16le 16 kHz mono PCM on stdin)")
    check_streamable(spec)  # before -o's suffix is checked against what the spec produces
    if output is None and raw is None:
        output = spec.output or spec.default_output()
    spec = attrs.evolve(spec, output=Path(output) if output is not None else None)
    resolved = validate_spec(spec, registry, have_audio=True, have_motion=False)
    inputs = [audio_path]
    mp4 = prepare_spec_output(spec, inputs=inputs, overwrite=overwrite) if output is not None else None
    raw_file = None
    if raw is not None and raw != STDIN:
        raw_file = prepare_output(Path(raw), overwrite=overwrite, inputs=[*inputs, mp4], what="--raw")
    if report is not None:
        prepare_output(Path(report), overwrite=overwrite, inputs=[*inputs, mp4, raw_file], what="--json",
                       suffixes=(".json",))
    return resolved, mp4, raw_file


def _stdin() -> BinaryIO:
    # Python sets sys.stdin to None when file descriptor 0 is closed (`geneface stream ... <&-`).
    if sys.stdin is None or getattr(sys.stdin, "buffer", None) is None:
        raise UsageError("--audio -: stdin is closed; pipe s16le 16 kHz mono PCM into it, or give a file")
    return sys.stdin.buffer


def run_stream(spec: PipelineSpec, registry, audio: str, output: Optional[Path] = None, raw: Optional[str] = None,
               chunk_ms: float = 200.0, lookahead: Optional[float] = 0.4, realtime: bool = False,
               overwrite: bool = False, report: Optional[Path] = None, max_lag: Optional[float] = None,
               stdin: Optional[BinaryIO] = None, stdout: Optional[BinaryIO] = None) -> StreamResult:
    """Stream `audio` (a file, or "-" for s16le 16 kHz mono PCM on stdin) through `spec`."""
    size = chunk_samples(chunk_ms)
    if audio == STDIN and realtime:
        raise UsageError("--realtime paces a file; audio from stdin already arrives at its own pace")
    resolved, mp4, raw_file = _prepare(spec, registry, audio, output, raw, report, overwrite)
    streamer = Streamer(resolved, registry, lookahead=lookahead, max_lag=max_lag)
    streamer.warm_up()  # before the first chunk: a live source's clock starts after it
    if audio == STDIN:
        chunks = pcm_chunks(stdin if stdin is not None else _stdin(), size)
    else:
        decoded = read_audio(Path(audio))
        if len(decoded.samples) == 0:
            raise UsageError(f"{audio}: audio has zero length")
        chunks = file_chunks(decoded, size, realtime)

    with contextlib.ExitStack() as stack:
        writer = None
        if mp4 is not None:
            writer = stack.enter_context(VideoWriter(mp4, fps=VIDEO_FPS, audio=Audio(np.zeros(0, np.float32)),
                                                     overwrite=overwrite))
        sink_raw = None
        if raw == STDIN:
            sink_raw = stdout if stdout is not None else sys.stdout.buffer
        elif raw_file is not None:
            tmp = stack.enter_context(atomic_output(raw_file, overwrite=overwrite))
            sink_raw = stack.enter_context(open(tmp, "wb"))
        sink = FrameSink(writer, sink_raw)
        try:
            for chunk, arrived in chunks:
                sink.audio(chunk)
                sink.frames(streamer.feed(chunk, arrived_at=arrived))
            sink.frames(streamer.finish())
        except BrokenPipeError:
            if raw != STDIN:
                raise
            # The reader of stdout went away (`| head -c 1000`, a player closed): stop, say where.
            # Unfinished outputs beside it (an mp4) are removed as for any stopped run.
            raise PipeClosedError(f"--raw -: the reader of stdout closed it after {sink.written} "
                                  f"frame{'' if sink.written == 1 else 's'}; stopped") from None

    plan = tuple((p.label, p.context.back, p.context.ahead, p.context.exact, p.context.why)
                 for p in streamer.plan.stages)
    result = StreamResult(streamer.latency(), plan, mp4, raw, Path(report) if report else None, sink.written)
    if report is not None:
        with atomic_output(Path(report), overwrite=overwrite) as tmp:
            tmp.write_text(json.dumps({**result.to_dict(), "spec": str(resolved.spec.source), "chunk_ms": chunk_ms,
                                       "realtime": realtime}, indent=2) + "\n")
    return result
