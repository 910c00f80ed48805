"""A renderer's frames scored against a person's held-out frames.

The held-out frames are the dataset's `val` split (by default the last 1/11 of its video),
those no person-specific model trains on, frames whose tracking failed left out (`Dataset.held_out_frames`). A
renderer draws them from their own tracked landmarks and camera (on a person of several clips,
each over its own clip's plate: `geneface.metrics.render_cost.render_by_clip`, which
`geneface bench renderers` renders through), and is scored against the real frames:

- PSNR and SSIM, full frame and face box (`geneface.metrics.image`; the box of the real
  frame's 68 points grown by 10 %);
- LMD: mouth points re-tracked from the rendered and the real frames by the same tracker,
  pixels at the dataset's size (`geneface.metrics.landmarks`); frames where no face is found
  are left out and counted.

`nearest_training_frames` is the baseline that copies the training video.
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from geneface.errors import UsageError, one_line


def held_out_frames(ds) -> np.ndarray:
    """The frames a renderer is scored on (`ds.held_out_frames()`); a one-line UsageError for
    a video too short to hold out its end and train on the rest."""
    start, _ = ds.held_out_range()
    frames = ds.held_out_frames()
    if len(frames) == 0 or start == 0:
        raise UsageError(f"{ds.path}: {ds.n_frames} frames are too few to hold out its end (val split {start}-{ds.n_frames}) and train on the rest")
    return frames


def face_boxes(ds, frames) -> list:
    """The face box of each real frame (its 68 tracked points grown by 10 %)."""
    from geneface.metrics.image import face_box

    image68 = ds.landmarks_image()
    return [face_box(image68[int(f)], ds.size) for f in frames]


def nearest_training_frames(ds, frames) -> list[int]:
    """The baseline that copies the training video: for each frame, the training frame
    (`ds.training_frames()`) whose tracked 68 image points (so head pose counts too) are nearest."""
    train = ds.training_frames()
    tracked = ds.landmarks_image()[:, :, :2].reshape(ds.n_frames, -1)
    return [int(train[np.argmin(((tracked[train] - tracked[int(i)]) ** 2).sum(1))]) for i in frames]


def track_truth(ds, frames, tracker):
    """The real frames re-tracked (68 points) by `tracker` (a FaceTracker), once for every
    renderer scored against them."""
    from geneface.metrics.landmarks import track68

    return track68(ds.frames([int(f) for f in frames]), tracker)


def score_frames(rendered: Iterable[np.ndarray], real: Iterable[np.ndarray], boxes, truth=None,
                 resolution: Optional[int] = None, rendered_again: Optional[Iterable[np.ndarray]] = None,
                 tracker=None) -> dict:
    """PSNR and SSIM (full frame and face box) of rendered against real frames, and LMD of
    the rendered frames re-tracked by `tracker` against `truth` (a Tracked68 of the real
    ones; None: no LMD).

    `rendered` is read once for the image scores; `rendered_again` (the same frames, for
    the tracker) defaults to a list kept from the first pass. LMD leaves out frames without
    a face in either video (`lmd_frames` counts the scored ones); when no frame has one in
    both, `lmd_px` is None and `lmd_note` says why.
    """
    from geneface.metrics.image import score_sequence
    from geneface.metrics.landmarks import lmd_of_frames

    kept: list = []
    if truth is not None and rendered_again is None:
        rendered = _keep(rendered, kept)
    scores, n = score_sequence(rendered, real, boxes)
    out = {"psnr": scores.psnr, "ssim": scores.ssim, "psnr_face": scores.psnr_face, "ssim_face": scores.ssim_face,
           "frames": n, "lmd_px": None, "lmd_frames": 0}
    if truth is not None:
        try:
            lmd = lmd_of_frames(rendered_again if rendered_again is not None else kept, truth, resolution=resolution,
                                tracker=tracker, allow_missing=True)
        except UsageError as exc:  # no face in any rendered frame: the image scores still stand
            out["lmd_note"] = one_line(exc)
        else:
            out["lmd_px"], out["lmd_frames"] = lmd.lmd, lmd.n_scored
    return out


def _keep(frames: Iterable[np.ndarray], kept: list):
    for frame in frames:
        kept.append(frame)
        yield frame
