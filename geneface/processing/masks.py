"""Person, head and torso masks.

- person: mediapipe selfie segmentation (weights bundled in the wheel), run on the crop
  downscaled to the model's own 256 px input, its soft mask upscaled and thresholded;
- head (face and hair) vs torso (neck and shoulders): the person mask split by the jaw
  line of the 68 keypoints, pushed down by a small margin and continued sideways at the
  level of jaw points 3 and 13 (so ears and hair beside the face stay head, shoulders
  become torso);
- the tracked face is head by definition: the convex hull of the mesh is added to the head
  mask, which keeps a segmentation slip (a hand, a microphone) from cutting a hole in the
  face. `hull_coverage` measures the segmentation *before* that union, so it stays an
  honest check of how well segmentation and landmarks agree.

Label maps store 0 = background, 1 = head, 2 = torso.
"""

from __future__ import annotations

import numpy as np

from geneface.core import landmarks68 as L68
from geneface.core.native_log import native_logs_silenced

BACKGROUND, HEAD, TORSO = 0, 1, 2
SEGMENTATION_INPUT = 256  # the general selfie model's input size


class Segmenter:
    """Mediapipe selfie segmentation; `person(frame)` -> float mask in [0, 1], frame-sized."""

    def __init__(self) -> None:
        import mediapipe as mp

        # The graph's threads log (absl, TensorFlow Lite) from its opening until its model has
        # met a first frame: a blank one here, inside one quiet stretch. (The model keeps no
        # state between frames, so the blank frame changes no mask.)
        with native_logs_silenced():
            self._model = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
            self._model.process(np.zeros((SEGMENTATION_INPUT, SEGMENTATION_INPUT, 3), np.uint8))

    def person(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        h, w = frame.shape[:2]
        small = frame
        if max(h, w) > SEGMENTATION_INPUT:
            small = cv2.resize(frame, (SEGMENTATION_INPUT, SEGMENTATION_INPUT), interpolation=cv2.INTER_AREA)
        soft = self._model.process(np.ascontiguousarray(small)).segmentation_mask
        if soft.shape != (h, w):
            soft = cv2.resize(soft, (w, h), interpolation=cv2.INTER_LINEAR)
        return soft

    def close(self) -> None:
        self._model.close()

    def __enter__(self) -> "Segmenter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def jaw_line(lm68: np.ndarray, width: int, margin: float = 0.0) -> np.ndarray:
    """For each image column, the row of the jaw line (lower envelope of points 0-16).

    Columns beyond the jaw's ends continue at the rows of points 3 and 13. `margin` (px)
    moves the line down, and as far sideways, so the face's own edge pixels stay above it.
    """
    jaw = np.asarray(lm68, np.float64)[L68.JAW, :2]
    xs = np.arange(width, dtype=np.float64) + 0.5
    xa, ya = jaw[:-1, 0], jaw[:-1, 1]
    xb, yb = jaw[1:, 0], jaw[1:, 1]
    lo, hi = np.minimum(xa, xb), np.maximum(xa, xb)
    dx = np.where(np.abs(xb - xa) < 1e-6, 1e-6, xb - xa)
    t = (xs[None, :] - xa[:, None]) / dx[:, None]
    y = ya[:, None] + t * (yb - ya)[:, None]
    inside = (xs[None, :] >= lo[:, None]) & (xs[None, :] <= hi[:, None])
    line = np.where(inside, y, -np.inf).max(axis=0)
    # Beyond the jaw's ends (points 0 and 16 sit at eye level, by the ears) the line goes
    # on at the level of points 3 / 13, so the ears stay head and the shoulders are torso.
    a, b = jaw[3], jaw[13]
    left_row, right_row = (a[1], b[1]) if a[0] <= b[0] else (b[1], a[1])
    line = np.where(xs < jaw[:, 0].min(), left_row, line)
    line = np.where(xs > jaw[:, 0].max(), right_row, line)
    # A degenerate jaw (all columns missed) falls back to the lowest jaw point.
    line = np.where(np.isfinite(line), line, jaw[:, 1].max())
    if margin > 0:
        # Grow sideways too: where the jaw runs almost vertically (below the ears) a purely
        # downward margin would still clip the face's edge pixels.
        reach = max(1, int(np.ceil(margin)))
        padded = np.pad(line, reach, mode="edge")
        line = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1).max(axis=1)
    return line + margin


def hull_mask(points2d: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Filled convex hull of (N, 2) pixel points as a bool mask."""
    import cv2

    mask = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(points2d).astype(np.int32).reshape(-1, 1, 2))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def face_height(lm68: np.ndarray) -> float:
    """Brow-to-chin height (px) of 68 keypoints; the scale the split margin follows."""
    lm = np.asarray(lm68)
    return float(lm[L68.CHIN, 1] - lm[L68.BROWS, 1].min())


def split_person(
    person: np.ndarray,
    lm68: np.ndarray,
    mesh2d: np.ndarray | None = None,
    margin_ratio: float = 0.03,
) -> tuple[np.ndarray, float]:
    """Label map (uint8: 0 background, 1 head, 2 torso) and the 68-hull coverage.

    person: bool (H, W). lm68: (68, >=2) keypoints in the same pixels. mesh2d: the dense
    points whose hull is forced into the head (None: the 68 keypoints).
    """
    h, w = person.shape
    line = jaw_line(lm68, w, margin=margin_ratio * max(face_height(lm68), 1.0))
    rows = np.arange(h, dtype=np.float64)[:, None] + 0.5
    above = rows < line[None, :]
    head = person & above
    hull68 = hull_mask(np.asarray(lm68)[:, :2], (h, w))
    n_hull = int(hull68.sum())
    coverage = float((head & hull68).sum() / n_hull) if n_hull else 0.0
    head |= hull_mask(np.asarray(mesh2d if mesh2d is not None else lm68)[:, :2], (h, w))
    labels = np.zeros((h, w), np.uint8)
    labels[person] = TORSO
    labels[head] = HEAD
    return labels, coverage
