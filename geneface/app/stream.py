"""Streaming: audio in as it arrives, video frames out with bounded look-ahead (`geneface stream`).

A `Streamer` is built from a validated spec (`validate_spec`, then the stages built by
`geneface.app.run.Pipeline`, as `geneface run` builds them) whose stages run from an audio
encoder to a renderer. `feed(samples)` takes mono float32 16 kHz audio in chunks of any size
and returns the frames that became final, as (frame index, uint8 H x W x 3); `finish()`
flushes the rest with the true end of the audio, as an offline run ends.

How it works, for any chain. Every stage declares the context it needs
(`Stage.stream_context`, geneface.core.stages): look-back and look-ahead in video frames. The
chain needs their sums (`StreamPlan`). After each chunk, with `avail` video frames of audio
fully arrived, frames up to `avail - ahead` are final, where `ahead` is what the chain needs
or the caller's bound on look-ahead when that is smaller (then the output is approximate).
The stages before the renderer run on a window of the audio holding the look-back, the new
frames and the look-ahead only (never the whole history: time and memory per chunk stay
bounded however long the stream), each told where the window starts in the run
(`RunContext.offset`); the renderer draws the newly final frames only, once each, with the
head path the offline run would give them (`resolve_head_path`'s precedence, asked for
growing lengths: every built-in path loops its poses with `ping_pong`, so frame k's pose does
not depend on the length, which is checked).

Exact: when every stage declares an exact context and the look-ahead is what the chain
needs, each emitted frame equals the frame `geneface run` renders from the whole audio, bit
for bit where the stages' arithmetic does not depend on the window's length (the CPU stages
here: tests/test_stream.py). `Latency.exact` and `why_not_exact` say whether a stream was.

Latency (`Latency`), on the clock the streamer is given: a frame's lag is the time it was
emitted (returned by `feed`/`finish`) minus the time its audio had fully arrived (the
chunk's `arrived_at`, by default the moment `feed` was called). `first_frame`: from the
first chunk's arrival to the first frame emitted; `steady_lag` and `lag_p90`: median and
90th percentile of the lags of frames after the first second; `max_lag`: the largest.
With `max_lag` set, a batch of final frames whose oldest is already later than that is cut
to its newest frame (the older ones are dropped and counted), so a slow renderer falls
behind by at most one batch instead of without bound.
"""

from __future__ import annotations

import math
import time
from array import array
from collections import deque
from typing import Callable, Optional

import attrs
import numpy as np

from geneface.app.run import Pipeline, resolve_head_path, warn
from geneface.core.kinds import STAGE_KINDS
from geneface.core.records import SAMPLE_RATE, VIDEO_FPS, Audio, Camera, Motion, frames_for_duration
from geneface.core.spec import PipelineSpec, ResolvedSpec, validate_spec
from geneface.core.stages import PostProcessor, Renderer, RunContext, Stage, StreamContext
from geneface.errors import GenefaceError, StageMismatchError, UsageError

DEFAULT_LOOKAHEAD = 0.4  # seconds: a live default; None asks for what the chain needs (exact)
FRAME_SAMPLES = SAMPLE_RATE // int(VIDEO_FPS)  # 640 samples of audio per video frame
HEAD_PATH_PROBE = 64  # frames: the head path is checked to be the same at two lengths


def seconds(frames: int) -> float:
    return frames / VIDEO_FPS


def label(stage: Stage) -> str:
    return f"{stage.kind} '{stage.name}'"


@attrs.frozen
class StagePlan:
    """One stage of a stream: its name in messages and the context it declared."""

    label: str
    context: StreamContext


@attrs.frozen
class StreamPlan:
    """What a chain needs to stream, and what the stream will do.

    `back`, `need`: the chain's look-back and look-ahead (sums over its stages, video frames);
    `ahead`: the look-ahead the stream waits for (`need`, or the caller's bound when smaller);
    `problems`: why the output will not equal the offline output (empty: it will).
    """

    stages: tuple
    back: int
    need: int
    ahead: int
    problems: tuple

    @property
    def exact(self) -> bool:
        return not self.problems


def plan_stream(stages, lookahead: Optional[float]) -> StreamPlan:
    """The plan for `stages` (built, in order) with a look-ahead bound in seconds (None: as much
    as the chain needs). A stage that cannot stream is a one-line UsageError naming it."""
    if lookahead is not None and not (math.isfinite(lookahead) and lookahead >= 0):
        raise UsageError(f"--lookahead: expected seconds >= 0 or 'exact', got {lookahead}")
    plans = []
    for stage in stages:
        context = stage.stream_context()
        if context is None:
            raise UsageError(f"{label(stage)} cannot stream: {stage.stream_problem()}")
        plans.append(StagePlan(label(stage), context))
    back = sum(p.context.back for p in plans)
    need = sum(p.context.ahead for p in plans)
    problems = [f"{p.label} is approximate ({p.context.why})" for p in plans if not p.context.exact]
    ahead = need
    if lookahead is not None:
        bound = int(math.floor(lookahead * VIDEO_FPS + 1e-9))
        if bound < need:
            ahead = bound
            parts = ", ".join(f"{p.label} {seconds(p.context.ahead):.2f} s" for p in plans if p.context.ahead)
            problems.append(f"look-ahead bounded to {seconds(bound):.2f} s, the chain needs {seconds(need):.2f} s "
                            f"({parts})")
    return StreamPlan(tuple(plans), back, need, ahead, tuple(problems))


@attrs.frozen
class Latency:
    """How a stream kept up (times in seconds; see the module doc for the definitions)."""

    first_frame: Optional[float]  # first chunk arrived -> first frame emitted
    steady_lag: Optional[float]  # median lag of the frames after the first second
    lag_p90: Optional[float]  # 90th percentile of the same
    max_lag: Optional[float]  # the largest lag of any frame
    frames: int  # emitted
    dropped: int  # skipped to keep up (max_lag)
    chunks: int  # calls to feed
    audio_seconds: float  # audio received
    lookahead: float  # look-ahead the stream waited for
    needed_lookahead: float  # look-ahead the chain needs for exact output
    exact: bool  # the frames equal the offline run's
    why_not_exact: tuple = attrs.field(default=(), converter=tuple)

    def to_dict(self) -> dict:
        return {**attrs.asdict(self), "why_not_exact": list(self.why_not_exact)}


class HeadPathStream:
    """The renderer's head path for frames start..stop-1 of a run of unknown length.

    Resolved by `resolve_head_path` (the offline precedence: input.poses, the post-processor's,
    the renderer's own) for a length past the frames asked for, growing by doubling. That is
    only right when frame k's pose does not depend on the length, as with every built-in
    path (looped back and forth by `ping_pong`); it is checked on two lengths at the start,
    and on every growth against the frames still kept.
    """

    def __init__(self, renderer: Renderer, post: Optional[PostProcessor], poses: Optional[Camera],
                 poses_path=None):
        self._source = (f"input.poses ({poses_path})" if poses is not None
                        else f"{label(post)}'s head path" if post is not None and post.head_path(1) is not None
                        else f"{label(renderer)}'s own head path")

        def resolve(n: int) -> Optional[Camera]:
            return resolve_head_path(renderer, n, poses, poses_path, None,
                                     post.head_path(n) if post is not None else None, warn_length=False)

        self._resolve = resolve
        self._poses = poses
        self._poses_path = poses_path
        self._warned = False
        self._start = 0
        self._camera = resolve(HEAD_PATH_PROBE)  # a renderer that needs one and has none fails here
        if self._camera is not None:
            longer = resolve(2 * HEAD_PATH_PROBE + 1)
            if not np.array_equal(longer.c2w[:HEAD_PATH_PROBE], self._camera.c2w):
                raise UsageError(f"{self._source} depends on the length of the run, so a stream cannot give frame k "
                                 "the pose an offline run would")

    def part(self, start: int, stop: int) -> Optional[Camera]:
        """Poses for frames start..stop-1 (start at or after the last `start` asked for)."""
        if self._camera is None:
            return None
        if self._poses is not None and stop > self._poses.n_frames and not self._warned:
            warn(f"input.poses: {self._poses_path} has {self._poses.n_frames} poses; the stream is longer, "
                 "looping them back and forth")
            self._warned = True
        end = self._start + self._camera.n_frames
        if stop > end:
            full = self._resolve(max(stop, 2 * end))
            kept = full.c2w[self._start:end]
            if not np.array_equal(kept, self._camera.c2w):
                raise GenefaceError(f"{self._source} changed frames {self._start}..{end - 1} when the run grew "
                                    f"to {full.n_frames} frames; it cannot stream")
            self._camera = attrs.evolve(full, c2w=full.c2w[start:])
            self._start = start
        elif start > self._start:  # frames before `start` are never asked for again
            self._camera = attrs.evolve(self._camera, c2w=self._camera.c2w[start - self._start:])
            self._start = start
        return attrs.evolve(self._camera, c2w=self._camera.c2w[start - self._start: stop - self._start])


def check_streamable(spec) -> None:
    """A stream runs from audio to video: say so (in one line) of a spec whose stages do not,
    before anything else is said about it (its output's suffix, say)."""
    first, last = STAGE_KINDS[spec.stages[0].kind], STAGE_KINDS[spec.stages[-1].kind]
    if first.consumes != "audio" or last.produces != "video":
        raise UsageError(f"{spec.source}: a stream runs from audio to video; the spec's stages run from "
                         f"{first.name} to {last.name} (it needs an audio_encoder first and a renderer last)")


class Streamer:
    """A spec's stages run on audio as it arrives (module doc). Not thread-safe: one feeder."""

    def __init__(self, resolved: ResolvedSpec, registry, lookahead: Optional[float] = DEFAULT_LOOKAHEAD,
                 max_lag: Optional[float] = None, clock: Callable[[], float] = time.perf_counter):
        spec = resolved.spec
        check_streamable(spec)
        if spec.paste_back:
            raise UsageError("output.paste_back: a stream does not paste back onto the source video; "
                             "set it to false (or run `geneface run --paste-back` on the whole audio)")
        if max_lag is not None and not max_lag > 0:
            raise UsageError(f"--max-lag: expected seconds > 0, got {max_lag}")
        self.pipeline = Pipeline(resolved, registry)
        *self.stages, self.renderer = self.pipeline.stages
        self.plan = plan_stream(self.pipeline.stages, lookahead)
        self._render_context = self.plan.stages[-1].context
        post = next((s for s in self.stages if isinstance(s, PostProcessor)), None)
        self._head = HeadPathStream(self.renderer, post, resolved.poses, spec.input.poses)
        self.max_lag = max_lag
        self._clock = clock
        self._buffer = np.zeros(0, np.float32)  # audio from sample `_buffer_start` on
        self._buffer_start = 0
        self._n_samples = 0  # received
        self._avail = 0  # video frames whose audio has fully arrived
        self._emitted = 0  # the next frame to emit
        self._arrivals: deque = deque()  # arrival time of frames _emitted .. _avail - 1
        self._last_arrival: Optional[float] = None
        self._first_arrival: Optional[float] = None
        self._first_out: Optional[float] = None
        self._lags = array("d")  # per emitted frame, in order: 16 bytes a frame with the next (1.4 MB an hour)
        self._lag_frames = array("q")
        self._dropped = 0
        self._chunks = 0
        self._finished = False

    @classmethod
    def from_spec(cls, spec: PipelineSpec, registry, **kwargs) -> "Streamer":
        """Validate `spec` (its audio comes from the stream, not input.audio) and build the streamer."""
        return cls(validate_spec(spec, registry, have_audio=True, have_motion=False), registry, **kwargs)

    # -- what the caller may want to know -------------------------------------------------------

    def frame_size(self) -> tuple[int, int]:
        return tuple(self.renderer.frame_size())

    @property
    def frames_emitted(self) -> int:
        return self._emitted

    def warm_up(self) -> None:
        """Run every stage once on a short stretch of silence, outside the stream (nothing is
        emitted or kept): first calls load libraries, compile kernels and fill caches, which
        would otherwise land on the first frame's latency."""
        n = self.plan.back + self.plan.need + 1
        audio = Audio(np.zeros(n * FRAME_SAMPLES, np.float32))
        record, producer, context = audio, "warm-up silence", RunContext(audio, None, streamed=True)
        for stage in self.stages:
            record = self.pipeline.apply_stage(stage, record, context, producer)
            producer = label(stage)
        camera = self._head.part(0, 1)
        first = attrs.evolve(record, landmarks=record.landmarks[:1])
        for _ in self.renderer.render_part(first, camera, 0, 1):
            pass

    # -- the stream -------------------------------------------------------------------------------

    def feed(self, samples: np.ndarray, arrived_at: Optional[float] = None) -> list:
        """Take the next chunk (mono float32 at 16 kHz, any length); the frames that became final,
        as (frame index, uint8 H x W x 3). `arrived_at`: when the chunk's last sample arrived, on
        this streamer's clock (default: now), for the latency record."""
        if self._finished:
            raise UsageError("the stream has finished; start a new one to feed more audio")
        chunk = np.asarray(samples, dtype=np.float32)
        if chunk.ndim != 1:
            raise UsageError(f"audio chunk {self._chunks}: expected mono samples (1-D), got shape {chunk.shape}")
        if not np.all(np.isfinite(chunk)):
            raise UsageError(f"audio chunk {self._chunks}: NaN or infinite samples")
        arrived = self._clock() if arrived_at is None else float(arrived_at)
        self._chunks += 1
        if self._first_arrival is None:
            self._first_arrival = arrived
        self._last_arrival = arrived
        self._buffer = np.concatenate([self._buffer, chunk]) if len(self._buffer) else chunk.copy()
        self._n_samples += len(chunk)
        avail = self._n_samples // FRAME_SAMPLES
        self._arrivals.extend([arrived] * (avail - self._avail))
        self._avail = avail
        return self._advance(avail - self.plan.ahead, avail, self._avail * FRAME_SAMPLES, final=False)

    def finish(self) -> list:
        """The frames still to come, with the true end of the audio (as offline)."""
        if self._finished:
            raise UsageError("the stream has already finished")
        self._finished = True
        if self._n_samples == 0:
            raise UsageError("the stream received no audio")
        total = frames_for_duration(self._n_samples / SAMPLE_RATE)
        if total < 1:
            raise UsageError(f"the stream's audio is {self._n_samples} samples, shorter than half a video frame "
                             f"({FRAME_SAMPLES // 2} samples)")
        self._arrivals.extend([self._last_arrival] * (total - self._avail))  # arrived with the last chunk
        return self._advance(total, total, self._n_samples, final=True)

    def latency(self) -> Latency:
        lags = np.asarray(self._lags, np.float64)
        steady = lags[np.asarray(self._lag_frames, np.int64) >= int(VIDEO_FPS)] if len(lags) else lags
        why = list(self.plan.problems)
        if self._dropped:
            why.append(f"{self._dropped} frame(s) dropped to keep the lag under {self.max_lag:g} s")
        first = None if self._first_out is None else self._first_out - self._first_arrival
        return Latency(
            first_frame=first,
            steady_lag=float(np.median(steady)) if len(steady) else None,
            lag_p90=float(np.percentile(steady, 90)) if len(steady) else None,
            max_lag=float(lags.max()) if len(lags) else None,
            frames=len(lags), dropped=self._dropped, chunks=self._chunks,
            audio_seconds=self._n_samples / SAMPLE_RATE,
            lookahead=seconds(self.plan.ahead), needed_lookahead=seconds(self.plan.need),
            exact=not why, why_not_exact=why,
        )

    # -- the work ---------------------------------------------------------------------------------

    def _advance(self, final_to: int, window_end: int, sample_end: int, final: bool) -> list:
        """Emit frames `_emitted` .. `final_to` - 1, from a window of the run ending at frame
        `window_end` (its audio ending at sample `sample_end`)."""
        start = self._emitted
        if final_to <= start:
            return []
        plan = self.plan
        first = max(0, start - plan.back)  # the window's first frame
        audio = Audio(self._buffer[first * FRAME_SAMPLES - self._buffer_start: sample_end - self._buffer_start])
        whole = first == 0 and final  # the window is the whole run: stages see what offline sees
        context = RunContext(audio, None, offset=first, streamed=not whole)
        record, producer = audio, "the stream's audio"
        for stage in self.stages:
            record = self.pipeline.apply_stage(stage, record, context, producer)
            producer = label(stage)
        if not isinstance(record, Motion) or record.n_frames != window_end - first:
            got = f"{record.n_frames} frames" if isinstance(record, Motion) else type(record).__name__
            raise StageMismatchError(f"{producer} made {got} from {window_end - first} frames of audio")
        self.pipeline.check_seam(record, producer, self.renderer)

        keep = start  # the first frame drawn: later than `start` when older ones are dropped
        if self.max_lag is not None and not final:
            now = self._clock()
            while keep < final_to - 1 and now - self._arrivals[keep - start] > self.max_lag:
                keep += 1
        lo = max(first, keep - self._render_context.back)
        hi = min(window_end, final_to + self._render_context.ahead)
        part = attrs.evolve(record, landmarks=record.landmarks[lo - first: hi - first])
        frames = list(self.renderer.render_part(part, self._head.part(lo, hi), keep - lo, final_to - lo))
        if len(frames) != final_to - keep:
            raise StageMismatchError(f"{label(self.renderer)} drew {len(frames)} frames for frames {keep}.."
                                     f"{final_to - 1}")
        done = self._clock()
        for i in range(start, final_to):
            arrived = self._arrivals.popleft()
            if i >= keep:
                self._lags.append(done - arrived)
                self._lag_frames.append(i)
        if frames and self._first_out is None:
            self._first_out = done
        self._dropped += keep - start
        self._emitted = final_to
        # Audio before the next window's first frame is never read again.
        drop = max(0, final_to - plan.back) * FRAME_SAMPLES - self._buffer_start
        if drop > 0:
            self._buffer = self._buffer[drop:]
            self._buffer_start += drop
        return [(keep + i, frame) for i, frame in enumerate(frames)]
