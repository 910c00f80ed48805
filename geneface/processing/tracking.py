"""Run a FaceTracker over a video and turn its per-frame output into clean arrays.

Frames without a face are handled here: short gaps are interpolated (flag INTERPOLATED),
longer ones are filled the same way only so that arrays stay continuous, but flagged FAILED
so trainers skip them; too many failed frames stop processing with the time ranges listed.
"""

from __future__ import annotations

from typing import Iterable, Optional

import attrs
import numpy as np

from geneface.core.arrays import true_runs
from geneface.core.records import VIDEO_FPS
from geneface.core.stages import TrackedFrame
from geneface.errors import GenefaceError

# Per-frame flag bits (tracking.npz "flags").
INTERPOLATED = 1  # no face found; points interpolated over a short gap
FAILED = 2  # no face found in a long gap; points filled for continuity only, not for training
MULTI_FACE = 4  # more than one face seen; the tracked one was kept
LOW_CONFIDENCE = 8  # the tracker's confidence fell below the configured floor


class TrackingError(GenefaceError):
    """The face could not be tracked well enough to make a dataset: the video is at fault (exit 2)."""

    exit_code = 2


@attrs.frozen(eq=False)
class TrackResult:
    points: np.ndarray  # (T, N, 3) float32, source-image pixels, gaps filled
    confidence: np.ndarray  # (T,) float32, 0 where no face was found
    n_faces: np.ndarray  # (T,) uint8
    flags: np.ndarray  # (T,) uint8 bit set of the flags above

    @property
    def n_frames(self) -> int:
        return int(self.points.shape[0])

    @property
    def usable(self) -> np.ndarray:
        """Frames whose points come from the tracker (not interpolated or failed)."""
        return (self.flags & (INTERPOLATED | FAILED)) == 0


def format_time(frame: int, fps: float = VIDEO_FPS) -> str:
    seconds = frame / fps
    return f"{int(seconds // 60)}:{seconds % 60:05.2f}"


def format_ranges(ranges: list[tuple[int, int]], fps: float = VIDEO_FPS, limit: int = 8) -> str:
    parts = [f"{format_time(a, fps)}-{format_time(b, fps)}" for a, b in ranges[:limit]]
    if len(ranges) > limit:
        parts.append(f"and {len(ranges) - limit} more")
    return ", ".join(parts)


def collect(frames: Iterable[TrackedFrame], n_points: Optional[int] = None, progress=None) -> tuple[list, np.ndarray, np.ndarray]:
    """Gather a tracker's per-frame output; `progress(n)` is called after each frame.

    Every frame's points must be (n_points, 3); with `n_points` None, the first frame's
    count sets it.
    """
    points: list[Optional[np.ndarray]] = []
    confidence, n_faces = [], []
    for tracked in frames:
        if tracked.points is not None:
            if n_points is None:
                n_points = len(tracked.points)
            if tracked.points.shape != (n_points, 3):
                raise GenefaceError(f"tracker returned {tracked.points.shape} points, expected ({n_points}, 3)")
        points.append(tracked.points)
        confidence.append(tracked.confidence)
        n_faces.append(min(tracked.n_faces, 255))
        if progress is not None:
            progress(1)
    return points, np.asarray(confidence, np.float32), np.asarray(n_faces, np.uint8)


def fill_gaps(
    points: list[Optional[np.ndarray]],
    confidence: np.ndarray,
    n_faces: np.ndarray,
    max_gap: int = 5,
    max_failed_share: float = 0.05,
    min_confidence: float = 0.0,
    fps: float = VIDEO_FPS,
    source: str = "video",
) -> TrackResult:
    """Interpolate missing frames, flag them, and refuse videos with too many failures."""
    n = len(points)
    if n == 0:
        raise TrackingError(f"{source}: no frames to track")
    found = np.array([p is not None for p in points])
    if not found.any():
        raise TrackingError(
            f"{source}: no face found in any of its {n} frames. The tracker needs one face, seen "
            "roughly from the front and at least about 80 px across; crop the video closer to "
            "the face or use a higher-resolution recording"
        )
    flags = np.zeros(n, np.uint8)
    flags[n_faces > 1] |= MULTI_FACE
    flags[found & (confidence < min_confidence)] |= LOW_CONFIDENCE
    failed_ranges = []
    for start, end in true_runs(~found):
        if end - start <= max_gap:
            flags[start:end] |= INTERPOLATED
        else:
            flags[start:end] |= FAILED
            failed_ranges.append((start, end))
    n_failed = int(sum(b - a for a, b in failed_ranges))
    if n_failed > max_failed_share * n:
        raise TrackingError(
            f"{source}: no face found in {n_failed} of {n} frames ({100 * n_failed / n:.1f}%, limit "
            f"{100 * max_failed_share:.0f}%) at {format_ranges(failed_ranges, fps)}. Trim those parts "
            "out of the video, or raise --max-failed if the rest is worth keeping"
        )
    known = np.flatnonzero(found)
    stacked = np.stack([points[i] for i in known]).astype(np.float32)
    out = np.empty((n,) + stacked.shape[1:], np.float32)
    out[known] = stacked
    missing = np.flatnonzero(~found)
    if len(missing):
        # Linear interpolation in time per coordinate; ends hold the nearest tracked frame.
        flat = stacked.reshape(len(known), -1)
        right = np.searchsorted(known, missing)
        left_i = known[np.clip(right - 1, 0, len(known) - 1)]
        right_i = known[np.clip(right, 0, len(known) - 1)]
        span = np.maximum(right_i - left_i, 1)
        w = np.clip((missing - left_i) / span, 0.0, 1.0).astype(np.float32)
        left_v = flat[np.clip(right - 1, 0, len(known) - 1)]
        right_v = flat[np.clip(right, 0, len(known) - 1)]
        out.reshape(n, -1)[missing] = (1 - w[:, None]) * left_v + w[:, None] * right_v
    return TrackResult(points=out, confidence=confidence, n_faces=n_faces, flags=flags)


def check_face_size(result: TrackResult, min_face_px: float, source: str = "video") -> float:
    """Median face width (px, source image) over tracked frames; error if below the minimum."""
    usable = result.usable
    widths = np.ptp(result.points[usable, :, 0], axis=1)
    width = float(np.median(widths))
    if width < min_face_px:
        raise TrackingError(
            f"{source}: the face is only about {width:.0f} px across (at least {min_face_px:.0f} px "
            "needed for usable landmarks and a sharp 512 px crop). Use a higher-resolution "
            "recording, or one where the face fills more of the frame"
        )
    return width
