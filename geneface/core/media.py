"""Reading and writing media through PyAV (FFmpeg's libraries in a wheel; no system ffmpeg).

- `read_audio`: any audio or video file -> mono float32 `Audio` at 16 kHz.
- `probe_video` / `iter_video_frames`: any common video, variable frame rate included,
  resampled to a constant 25 fps by taking, for each output instant, the frame shown then.
- `VideoWriter`: H.264 mp4 with the audio muxed as it goes, trimmed or padded so that audio
  and video have the same length, written to a temporary name and renamed when complete; the
  audio may also arrive as it goes (`add_audio`, for a stream).
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional

import attrs
import numpy as np

from geneface.core.atomic import atomic_output
from geneface.core.records import SAMPLE_RATE, VIDEO_FPS, Audio
from geneface.errors import MediaError, UsageError


def _require_file(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: not readable")
    return path


def _open(path: Path):
    import av

    path = _require_file(path)
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:  # corrupt, truncated or not media at all
        raise MediaError(f"{path}: cannot open as media ({exc})") from None


def read_audio(path: Path, sample_rate: int = SAMPLE_RATE) -> Audio:
    """Decode the first audio stream of `path`, downmixed to mono and resampled."""
    import av

    container = _open(path)
    with container:
        if not container.streams.audio:
            raise MediaError(f"{path}: has no audio stream")
        stream = container.streams.audio[0]
        declared = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            raise MediaError(f"{path}: audio stream cannot be decoded ({exc})") from None
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    del chunks  # two copies of the samples at most: two hours of audio is 461 MB a copy
    if declared is not None:
        # AAC pads its last frame; the container's stated duration is the real length.
        samples = samples[: int(round(declared * sample_rate))]
    np.nan_to_num(samples, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return Audio(np.clip(samples, -1.0, 1.0, out=samples), sample_rate)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file (a dataset records its source's, to notice a changed video)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_wav(path: Path, audio: Audio, overwrite: bool = True) -> None:
    """16-bit PCM wav, written atomically."""
    import soundfile

    with atomic_output(Path(path), overwrite=overwrite) as tmp:
        soundfile.write(str(tmp), audio.samples, audio.sample_rate, subtype="PCM_16", format="WAV")


# Extension -> libsndfile (format, subtype): what `write_audio` can write.
_AUDIO_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}


def audio_suffixes() -> tuple[str, ...]:
    """The audio file extensions `write_audio` can write with this libsndfile."""
    import soundfile

    have = soundfile.available_formats()
    return tuple(ext for ext, (fmt, _sub) in _AUDIO_FORMATS.items() if fmt in have)


def write_audio(path: Path, audio: Audio, overwrite: bool = True) -> None:
    """Write `audio` in the format its extension names (see `audio_suffixes`), atomically."""
    import soundfile

    path = Path(path)
    if path.suffix.lower() not in audio_suffixes():
        raise UsageError(f"{path}: cannot write '{path.suffix}' audio (supported: {', '.join(audio_suffixes())})")
    fmt, subtype = _AUDIO_FORMATS[path.suffix.lower()]
    with atomic_output(path, overwrite=overwrite) as tmp:
        soundfile.write(str(tmp), audio.samples, audio.sample_rate, subtype=subtype, format=fmt)


@attrs.frozen
class VideoInfo:
    """What `probe_video` learns about a video before decoding it."""

    path: Path
    width: int
    height: int
    duration: float  # seconds
    source_fps: float  # the container's average rate; may be fractional or variable
    has_audio: bool
    codec: str

    def n_frames(self, fps: float = VIDEO_FPS) -> int:
        return max(0, int(math.floor(self.duration * fps + 1e-6)))


def probe_video(path: Path) -> VideoInfo:
    container = _open(path)
    with container:
        if not container.streams.video:
            raise MediaError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None or not ctx.name:
            raise MediaError(f"{path}: unsupported video codec")
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        if not duration and container.duration:
            duration = container.duration / 1_000_000.0
        rate = float(stream.average_rate) if stream.average_rate else 0.0
        if not duration and stream.frames and rate:
            duration = stream.frames / rate
        return VideoInfo(
            path=Path(path),
            width=int(ctx.width),
            height=int(ctx.height),
            duration=float(duration or 0.0),
            source_fps=rate,
            has_audio=bool(container.streams.audio),
            codec=ctx.name,
        )


def iter_video_frames(path: Path, fps: float = VIDEO_FPS) -> Iterator[np.ndarray]:
    """Yield RGB uint8 frames of `path` resampled to a constant `fps`.

    Output frame k shows the source frame on screen at time k / fps (the latest frame whose
    timestamp is not after it), which handles variable frame rates and drops or repeats
    frames as needed. The count is floor(duration * fps).
    """
    import av

    info = probe_video(path)
    n_out = info.n_frames(fps)
    if n_out == 0:
        raise MediaError(f"{path}: video has no frames (duration {info.duration:.3f} s)")
    container = _open(path)
    produced = 0
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        previous = None
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * stream.time_base) - start
                # Emit every output instant that falls before this frame's timestamp.
                while produced < n_out and (produced / fps) < t - 1e-6:
                    if previous is None:  # first frame starts late: show it from t=0
                        previous = frame.to_ndarray(format="rgb24")
                    yield previous
                    produced += 1
                previous = frame.to_ndarray(format="rgb24")
                if produced >= n_out:
                    break
        except av.error.FFmpegError as exc:
            if produced == 0 and previous is None:
                raise MediaError(f"{path}: video cannot be decoded ({exc})") from None
            raise MediaError(f"{path}: decoding failed at frame {produced} ({exc})") from None
    if previous is None:
        raise MediaError(f"{path}: video has no frames")
    # Hold the last frame to the end of the stated duration.
    while produced < n_out:
        yield previous
        produced += 1


def read_video(path: Path, fps: float = VIDEO_FPS) -> np.ndarray:
    """All frames of `path` at `fps` as one T x H x W x 3 array (short clips only)."""
    frames = list(iter_video_frames(path, fps))
    return np.stack(frames)


class VideoWriter:
    """Stream RGB frames into an H.264 mp4 with audio muxed alongside.

    Audio is encoded progressively (one video frame's worth at a time) so nothing grows with
    the length of the video. On `close()` audio is padded with silence or trimmed to exactly
    the video's duration; the file appears under its final name only then.

        with VideoWriter(out, fps=25, audio=audio) as writer:
            for frame in frames:
                writer.write(frame)

    A stream whose audio arrives with its frames starts from an empty `Audio` and calls
    `add_audio(samples)` as they come; a frame's audio must arrive before the frame is
    written (what is missing when a frame is written becomes silence). Only the audio not yet
    muxed is kept.
    """

    def __init__(
        self,
        path: Path,
        fps: float = VIDEO_FPS,
        audio: Optional[Audio] = None,
        crf: int = 20,
        preset: str = "veryfast",
        overwrite: bool = True,
    ):
        self.path = Path(path)
        self.overwrite = overwrite
        self.fps = fps
        self.audio = audio
        self.crf = crf
        self.preset = preset
        self.n_frames = 0
        self._container = None
        self._vstream = None
        self._astream = None
        self._audio_written = 0  # samples muxed so far
        # Samples not yet muxed, from sample `_audio_written` on (a view of a whole Audio's
        # samples, or what a stream added).
        self._pending = audio.samples if audio is not None else None
        self._atomic = None
        self._tmp = None

    def __enter__(self) -> "VideoWriter":
        self._atomic = atomic_output(self.path, overwrite=self.overwrite)
        self._tmp = self._atomic.__enter__()
        return self

    def _open(self, height: int, width: int) -> None:
        import av
        from fractions import Fraction

        if height % 2 or width % 2:
            raise MediaError(f"{self.path}: H.264 needs even frame sizes, got {width}x{height}")
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        rate = Fraction(self.fps).limit_denominator(1001)
        self._vstream = self._container.add_stream("libx264", rate=rate)
        self._vstream.width = width
        self._vstream.height = height
        self._vstream.pix_fmt = "yuv420p"
        self._vstream.options = {"crf": str(self.crf), "preset": self.preset}
        if self.audio is not None:
            self._astream = self._container.add_stream("aac", rate=self.audio.sample_rate)
            self._astream.layout = "mono"

    def write(self, frame: np.ndarray) -> None:
        import av

        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise MediaError(f"frame {self.n_frames}: expected uint8 H x W x 3, got {frame.dtype} {frame.shape}")
        if self._container is None:
            self._open(frame.shape[0], frame.shape[1])
        elif frame.shape[:2] != (self._vstream.height, self._vstream.width):
            raise MediaError(
                f"frame {self.n_frames}: size {frame.shape[1]}x{frame.shape[0]} differs from "
                f"the first frame's {self._vstream.width}x{self._vstream.height}"
            )
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._vstream.encode(vf):
            self._container.mux(packet)
        self.n_frames += 1
        self._write_audio_until(self.n_frames / self.fps)

    def add_audio(self, samples: np.ndarray) -> None:
        """Append samples (mono float32 at the rate of the `audio` given) to the audio track."""
        if self.audio is None:
            raise ValueError("VideoWriter.add_audio needs a writer made with audio (an empty Audio for a stream)")
        samples = np.asarray(samples, np.float32).reshape(-1)
        self._pending = np.concatenate([self._pending, samples]) if len(self._pending) else samples

    def _write_audio_until(self, seconds: float) -> None:
        import av

        if self._astream is None:
            return
        sr = self.audio.sample_rate
        end = int(round(seconds * sr))
        if end <= self._audio_written:
            return
        want = end - self._audio_written
        chunk, self._pending = self._pending[:want], self._pending[want:]
        if len(chunk) < want:  # audio shorter than video: pad silence
            chunk = np.concatenate([chunk, np.zeros(want - len(chunk), np.float32)])
        af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1).astype(np.float32), format="fltp", layout="mono")
        af.sample_rate = sr
        af.pts = self._audio_written
        af.time_base = __import__("fractions").Fraction(1, sr)
        for packet in self._astream.encode(af):
            self._container.mux(packet)
        self._audio_written = end

    def _finish(self) -> None:
        if self._container is None:
            raise MediaError(f"{self.path}: no frames were written")
        for packet in self._vstream.encode(None):
            self._container.mux(packet)
        if self._astream is not None:
            for packet in self._astream.encode(None):
                self._container.mux(packet)
        self._container.close()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self._finish()
            except BaseException as error:  # the half-written file must not be renamed into place
                self._atomic.__exit__(type(error), error, error.__traceback__)
                raise
            self._atomic.__exit__(None, None, None)
            return
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
        self._atomic.__exit__(exc_type, exc, tb)


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float = VIDEO_FPS, audio: Optional[Audio] = None) -> int:
    """Write `frames` (and `audio`) to `path`; returns the number of frames written."""
    with VideoWriter(path, fps=fps, audio=audio) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.n_frames
