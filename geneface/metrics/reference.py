"""A rendered video against real footage of the same frames, in one pass (`geneface eval`).

`score_against_real` reads (rendered, real) frame pairs once: each real frame is tracked
(its 68 points give the face box, and are returned for LMD) and its rendered frame is scored
against it at once (`geneface.metrics.image`: PSNR and SSIM, full frame and face box), so no
frames are kept in memory. A real frame without a face, or with a face box too small for
SSIM's window (`scorable_face_box`), has no box and counts in the full-frame scores only.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable

import numpy as np

from geneface.errors import UsageError
from geneface.metrics.image import SSIM_MIN_SIDE, RunningScores, face_box, score_pair


def scorable_face_box(points68: np.ndarray, size: tuple[int, int]):
    """The face box of a frame's 68 image points, or None (no face, the face outside the
    picture, or a box smaller than SSIM's window)."""
    if not np.isfinite(points68[:, :2]).all():
        return None
    try:
        box = face_box(points68, size)
    except UsageError:  # the face lies outside the picture
        return None
    return box if min(box[2] - box[0], box[3] - box[1]) >= SSIM_MIN_SIDE else None


def score_against_real(pairs: Iterable[tuple[np.ndarray, np.ndarray]], tracker, size: tuple[int, int],
                       where: str = "the video") -> tuple[RunningScores, np.ndarray]:
    """Score every rendered frame against its real one while the real frames are tracked by
    `tracker` (a FaceTracker); `size` is the frames' (height, width).

    Returns the running image scores and the real frames' 68 points, (T, 68, 3) float32 in
    pixels with NaN rows where no face was found (T = 0 for no pairs). A pair that cannot be
    scored is a one-line UsageError, `{where} frame {index}: ...`.
    """
    pending: deque = deque()

    def real_frames():
        # The tracker reads the real frames; the rendered frame waits beside it for the result.
        for rendered, real in pairs:
            pending.append((rendered, real))
            yield real

    running = RunningScores()
    rows = []
    for index, tracked in enumerate(tracker.track(real_frames())):
        rendered, real = pending.popleft()
        points = (np.full((68, 3), np.nan, np.float32) if tracked.points is None
                  else np.asarray(tracker.to68(tracked.points), np.float32))
        rows.append(points)
        try:
            running.add(score_pair(rendered, real, scorable_face_box(points, size)))
        except UsageError as exc:
            raise UsageError(f"{where} frame {index}: {exc}") from None
    return running, np.stack(rows) if rows else np.zeros((0, 68, 3), np.float32)
