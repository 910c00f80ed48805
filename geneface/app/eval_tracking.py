"""A video re-tracked for `geneface eval`, the way `geneface process` tracks a video.

`track_video`: every frame tracked with the face tracker `geneface process` uses (or the one
given), gaps filled as `process` fills them but without its refusal of videos with many
faceless frames (an evaluation reports those: `FaceFacts`), the tracked points mapped to 68
image points (NaN rows where no face). `canonical_landmarks`: the pose fitted as `process`
fits it, giving (T, 68, 3) canonical landmarks for lip sync. `video_frames` and
`with_progress` read a video at 25 fps behind an optional progress wrapper.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Union

import attrs
import numpy as np

from geneface.core.records import VIDEO_FPS
from geneface.errors import MediaError

Progress = Callable[[Iterable, Optional[int], str], Iterable]
PathLike = Union[str, Path]


@attrs.frozen
class FaceFacts:
    """The re-tracked faces of one video: frames where the tracker found none, by index."""

    frames: int
    missing: tuple = attrs.field(converter=tuple)

    @property
    def n_missing(self) -> int:
        return len(self.missing)


@attrs.frozen(eq=False)
class TrackedVideo:
    """Every frame of a video re-tracked: the tracker's own points with gaps filled as
    `geneface process` fills them (`track`: a processing.tracking.TrackResult), which frames
    really had a face (`found`), and the 68 image points (NaN rows where none)."""

    path: str
    track: object  # geneface.processing.tracking.TrackResult
    found: np.ndarray  # (T,) bool
    points68: object  # geneface.metrics.landmarks.Tracked68

    @property
    def n_frames(self) -> int:
        return int(len(self.found))

    @property
    def faces(self) -> FaceFacts:
        return FaceFacts(self.n_frames, np.flatnonzero(~self.found).tolist())


def _tracker_layout(tracker):
    # The same map to 68 points and stable points `geneface process` uses for this tracker.
    from geneface.processing.process import _layout

    return _layout(tracker)


def video_frames(path: Path, n: Optional[int] = None) -> Iterator[np.ndarray]:
    """The video's frames at 25 fps (the first `n` if given), decoded as they are read."""
    from geneface.core.media import iter_video_frames

    frames = iter_video_frames(path, VIDEO_FPS)
    return frames if n is None else islice(frames, n)


def with_progress(frames: Iterable, total: Optional[int], description: str, progress: Optional[Progress]) -> Iterable:
    """`frames` wrapped by `progress(frames, total, description)`, or as they are without one."""
    return frames if progress is None else progress(frames, total, description)


def _fill(path: Path, points: list, confidence, n_faces):
    """Gaps filled as `geneface process` fills them, without its refusal of videos with many
    faceless frames (an evaluation reports those instead); no face at all is still an error."""
    from geneface.processing import tracking as trk
    from geneface.processing.config import ProcessConfig

    # max_failed_share 1: never refuse for the share of failures; fill_gaps' own "no face in
    # any frame" check (TrackingError, exit 2) still applies.
    return trk.fill_gaps(points, confidence, n_faces, max_gap=ProcessConfig().max_gap,
                         max_failed_share=1.0, source=str(path))


def track_video(path: PathLike, tracker, n_frames: Optional[int] = None,
                progress: Optional[Progress] = None) -> TrackedVideo:
    """Track every frame of `path` (the first `n_frames` if given) with the FaceTracker `tracker`."""
    from geneface.metrics.landmarks import Tracked68
    from geneface.processing import tracking as trk

    path = Path(path)
    to68, _ = _tracker_layout(tracker)
    size: list = []

    def remember_size(frames):
        for frame in frames:
            if not size:
                size.append(frame.shape[:2])
            yield frame

    total = n_frames
    if progress is not None and total is None:
        from geneface.core.media import probe_video

        total = probe_video(path).n_frames(VIDEO_FPS)
    frames = with_progress(remember_size(video_frames(path, n_frames)), total, f"tracking {path.name}", progress)
    points, confidence, n_faces = trk.collect(tracker.track(iter(frames)), getattr(tracker, "n_points", None))
    if not points:
        raise MediaError(f"{path}: video has no frames")
    result = _fill(path, points, confidence, n_faces)
    found = np.array([p is not None for p in points])
    lm68 = np.full((len(points), 68, 3), np.nan, np.float32)
    lm68[found] = to68(result.points[found])
    height, width = size[0]
    return TrackedVideo(str(path), result, found, Tracked68(points=lm68, width=int(width), height=int(height)))


def canonical_landmarks(tracked: TrackedVideo, tracker) -> np.ndarray:
    """(T, 68, 3) canonical landmarks (head pose removed) of every frame, as `geneface
    process` computes them: `fit_pose` with its settings, the canonical face built from the
    frames with a face only. Rows of faceless frames come from filled points: leave them out.

    `process` fits in its crop's pixels, here the frame's: the crop is a scale and a shift
    (z scaled too) and the canonical face is rescaled to a fixed eye distance, so the
    canonical landmarks are the same; only the camera (not used here) would differ.
    """
    from geneface.core import landmarks68 as L68
    from geneface.processing.config import ProcessConfig
    from geneface.processing.pose import fit_pose

    to68, stable = _tracker_layout(tracker)
    config = ProcessConfig()
    points = tracked.track.points
    size = (tracked.points68.height, tracked.points68.width)
    args = dict(fov_degrees=config.fov_degrees, fit_frames=tracked.found, smoothing=config.pose_smoothing)
    if stable is not None:
        pose = fit_pose(points, size, stable=stable, to68=to68, **args)
    else:
        pose = fit_pose(to68(points), size, stable=L68.STABLE_68, to68=lambda p: p, **args)
    return pose.canonical68
