"""LMD, the landmark distance of talking-face papers, and re-tracking frames to get it.

LMD (as GeneFace, RAD-NeRF, ER-NeRF and others report it): for each frame, the mouth points
48-67 of the rendered and of the real frame, each set centred on its own mean (so a head a
few pixels off does not count, only the mouth's shape), then the mean L2 distance between
corresponding points in pixels; averaged over frames. Pixels are those of the dataset's
resolution (its `size`), so renders at another size are rescaled before comparing.

Both sets come from the *same* tracker run the same way (`track68`: the tracker `geneface
process` uses, mapped to 68 points), never the dataset's stored landmarks against a fresh
track: the tracker's own bias would otherwise read as error. Only x and y count; z is the
tracker's relative depth, not pixels.
"""

from __future__ import annotations

from typing import Iterable, Optional, Union

import attrs
import numpy as np

from geneface.core.landmarks68 import MOUTH
from geneface.errors import UsageError


def _as_sequence(landmarks: np.ndarray, name: str) -> np.ndarray:
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim == 2:
        lm = lm[None]
    if lm.ndim != 3 or lm.shape[1] != 68 or lm.shape[2] not in (2, 3):
        raise UsageError(f"{name}: expected T x 68 x 2 or T x 68 x 3 landmarks, got shape {np.shape(landmarks)}")
    return lm[..., :2]


def _frames_list(indices: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(i) for i in indices[:limit])
    return shown + (f" and {len(indices) - limit} more" if len(indices) > limit else "")


def mouth_distances(rendered: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Per-frame LMD (T,) in the landmarks' pixels: mean distance of the centred mouth points."""
    a, b = _as_sequence(rendered, "rendered landmarks"), _as_sequence(real, "real landmarks")
    if len(a) != len(b):
        raise UsageError(f"landmark sequences differ in length: rendered {len(a)}, real {len(b)} frames")
    for name, lm in (("rendered", a), ("real", b)):
        bad = np.flatnonzero(~np.isfinite(lm[:, MOUTH]).all(axis=(1, 2)))
        if len(bad):
            raise UsageError(f"{name} landmarks hold NaN (no face) at frame {_frames_list(bad)}")
    ma, mb = a[:, MOUTH], b[:, MOUTH]
    ma = ma - ma.mean(axis=1, keepdims=True)
    mb = mb - mb.mean(axis=1, keepdims=True)
    return np.linalg.norm(ma - mb, axis=-1).mean(axis=1)


def lmd(rendered: np.ndarray, real: np.ndarray) -> float:
    """LMD of two landmark sequences (T x 68 x 2|3, image pixels; one frame 68 x 2|3 also)."""
    per_frame = mouth_distances(rendered, real)
    if len(per_frame) == 0:
        raise UsageError("LMD of empty landmark sequences")
    return float(per_frame.mean())


# -- re-tracking ---------------------------------------------------------------------------


@attrs.frozen(eq=False)
class Tracked68:
    """68 keypoints re-tracked from frames: NaN rows where no face was found."""

    points: np.ndarray  # (T, 68, 3) float32, pixels of the frames given
    width: int
    height: int

    @property
    def found(self) -> np.ndarray:
        return np.isfinite(self.points).all(axis=(1, 2))

    @property
    def missing(self) -> np.ndarray:
        """Indices of frames where the tracker found no face."""
        return np.flatnonzero(~self.found)

    @property
    def n_frames(self) -> int:
        return int(len(self.points))


def track68(frames: Iterable[np.ndarray], tracker) -> Tracked68:
    """Track RGB uint8 frames (H x W x 3, all one size) and map each face to 68 points.

    Frames without a face are kept as NaN rows (see `Tracked68.missing`): never dropped,
    so frame indices stay aligned with the video. `tracker`: a FaceTracker instance (the
    application layer picks it: `geneface.app.components.face_tracker`).
    """
    size: list[tuple[int, int]] = []

    def checked(stream):
        for index, frame in enumerate(stream):
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise UsageError(f"frame {index}: expected uint8 H x W x 3 RGB, got {frame.dtype} {frame.shape}")
            if size and frame.shape[:2] != size[0]:
                raise UsageError(
                    f"frame {index}: size {frame.shape[1]} x {frame.shape[0]} differs from frame 0's {size[0][1]} x {size[0][0]}"
                )
            if not size:
                size.append(frame.shape[:2])
            yield frame

    rows = []
    for tracked in tracker.track(checked(frames)):
        if tracked.points is None:
            rows.append(np.full((68, 3), np.nan, np.float32))
        else:
            rows.append(np.asarray(tracker.to68(tracked.points), np.float32).reshape(68, 3))
    if not rows:
        raise UsageError("no frames to track")
    height, width = size[0]
    return Tracked68(points=np.stack(rows), width=int(width), height=int(height))


@attrs.frozen
class LmdResult:
    """LMD of re-tracked frames, with the frames it could not score.

    `lmd` is the mean over `n_scored` frames (those with a face in both sequences), in pixels
    at `resolution`; `missing_rendered` / `missing_real` list frames with no face found.
    """

    lmd: float
    n_frames: int
    n_scored: int
    resolution: int
    missing_rendered: tuple = attrs.field(converter=tuple)
    missing_real: tuple = attrs.field(converter=tuple)
    per_frame: np.ndarray = attrs.field(eq=False, repr=False)  # (T,), NaN where not scored


def lmd_of_frames(
    rendered: Union[Iterable[np.ndarray], Tracked68],
    real: Union[Iterable[np.ndarray], Tracked68],
    resolution: Optional[int] = None,
    tracker=None,
    allow_missing: bool = False,
) -> LmdResult:
    """LMD between rendered and real frames, both re-tracked by `tracker` (see `track68`).

    `resolution`: the width in pixels distances are measured at, the dataset's `size`;
    each sequence's landmarks are scaled by `resolution / its frame width`. None: both
    sequences must be the same size and that is used. Either side may be a `Tracked68`
    already (track the real frames once, score many renders against them).

    A frame without a face on either side is an error naming it, unless `allow_missing`:
    then it is left out of the mean and listed in the result (never silently dropped).
    """
    a = rendered if isinstance(rendered, Tracked68) else track68(rendered, tracker)
    b = real if isinstance(real, Tracked68) else track68(real, tracker)
    if a.n_frames != b.n_frames:
        raise UsageError(f"rendered and real videos differ in length: {a.n_frames} and {b.n_frames} frames")
    if resolution is None:
        if (a.width, a.height) != (b.width, b.height):
            raise UsageError(
                f"rendered frames are {a.width} x {a.height} px, real ones {b.width} x {b.height}: "
                "give the resolution to measure at (the dataset's size)"
            )
        resolution = b.width
    if abs(a.width / a.height - b.width / b.height) > 1e-3:
        raise UsageError(f"rendered ({a.width} x {a.height}) and real ({b.width} x {b.height}) frames differ in aspect ratio")
    for name, t in (("rendered", a), ("real", b)):
        if len(t.missing) and not allow_missing:
            raise UsageError(
                f"no face found in {len(t.missing)} of {t.n_frames} {name} frames (frame {_frames_list(t.missing)}); "
                "LMD needs a face in every frame"
            )
    both = a.found & b.found
    if not both.any():
        raise UsageError(f"no frame has a face in both the rendered and the real video ({a.n_frames} frames)")
    per_frame = np.full(a.n_frames, np.nan)
    per_frame[both] = mouth_distances(
        a.points[both, :, :2] * (resolution / a.width), b.points[both, :, :2] * (resolution / b.width)
    )
    return LmdResult(
        lmd=float(per_frame[both].mean()),
        n_frames=a.n_frames,
        n_scored=int(both.sum()),
        resolution=int(resolution),
        missing_rendered=a.missing.tolist(),
        missing_real=b.missing.tolist(),
        per_frame=per_frame,
    )
