"""The input video: probe it, fingerprint it and refuse it early when it cannot work."""

from __future__ import annotations

from pathlib import Path

import attrs

from geneface.core.media import VideoInfo, probe_video, sha256_file
from geneface.errors import MediaError

# A stream whose packets stop this long before the stated duration was cut off.
TRUNCATION_TOLERANCE_S = 0.5


@attrs.frozen
class SourceInfo:
    """A probed input video plus its fingerprint."""

    info: VideoInfo
    sha256: str
    size_bytes: int
    video_end: float  # seconds: end of the last video packet actually in the file

    def to_json(self) -> dict:
        return {
            "path": str(self.info.path.resolve()),
            "name": self.info.path.name,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "duration": round(self.info.duration, 4),
            "width": self.info.width,
            "height": self.info.height,
            "fps": round(self.info.source_fps, 4),
            "codec": self.info.codec,
            "has_audio": self.info.has_audio,
        }


def _video_end(path: Path) -> float:
    """End time of the last video packet, by demuxing only (no decoding: milliseconds)."""
    import av

    end = 0.0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        try:
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                t = float((packet.pts + (packet.duration or 0)) * packet.time_base) - start
                end = max(end, t)
        except av.error.FFmpegError as exc:
            raise MediaError(f"{path}: the file is corrupt or truncated after {end:.2f} s ({exc})") from None
    return end


def inspect_source(path: Path) -> SourceInfo:
    """Probe `path`, hash it and check that its video data reach the stated duration.

    Raises MediaError for files that do not open, have no video, are empty or are cut off
    (a truncated download whose header still promises the full length).
    """
    path = Path(path)
    info = probe_video(path)  # UsageError for a missing file, MediaError if not media
    if info.duration <= 0 or info.n_frames() == 0:
        raise MediaError(f"{path}: the video is empty (duration {info.duration:.2f} s)")
    if info.width <= 0 or info.height <= 0:
        raise MediaError(f"{path}: the video has no picture size")
    end = _video_end(path)
    if end <= 0:
        raise MediaError(f"{path}: the video stream holds no frames")
    if end < info.duration - TRUNCATION_TOLERANCE_S:
        raise MediaError(
            f"{path}: the file is truncated: video data stop at {end:.2f} s of the {info.duration:.2f} s "
            "its header states (an interrupted download or copy?)"
        )
    return SourceInfo(info=info, sha256=sha256_file(path), size_bytes=path.stat().st_size, video_end=end)
