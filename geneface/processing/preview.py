"""`geneface dataset preview`: the frames with landmarks, masks and head-pose axes drawn on,
as an mp4 (with the dataset's audio), so tracking can be checked by eye."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from geneface.core import landmarks68 as L68
from geneface.core.dataset import FLAG_FAILED, FLAG_INTERPOLATED, FLAG_MULTI_FACE, HEAD, TORSO, Dataset
from geneface.core.media import VideoWriter
from geneface.processing.pose import project

# RGB colours.
_HEAD_TINT = np.array([60, 200, 90], np.float32)
_TORSO_TINT = np.array([70, 120, 230], np.float32)
_REGION_COLOURS = [
    (L68.JAW, (255, 220, 0)),
    (L68.BROWS, (255, 160, 0)),
    (L68.NOSE, (255, 255, 255)),
    (L68.EYES, (0, 230, 255)),
    (L68.MOUTH, (255, 60, 60)),
]
_AXIS_COLOURS = [(255, 40, 40), (40, 255, 40), (60, 120, 255)]  # x red, y green, z blue


def draw_frame(
    frame: np.ndarray,
    labels: np.ndarray,
    lm68: np.ndarray,
    w2c: np.ndarray,
    focal: float,
    centre: tuple[float, float],
    axis_length: float,
    text: str,
) -> np.ndarray:
    """One preview frame: tinted masks, the 68 points by region, pose axes at the head origin."""
    import cv2

    out = frame.astype(np.float32)
    for label, tint in ((HEAD, _HEAD_TINT), (TORSO, _TORSO_TINT)):
        sel = labels == label
        out[sel] = 0.65 * out[sel] + 0.35 * tint
    out = np.clip(out, 0, 255).astype(np.uint8)
    scale = max(1, round(frame.shape[0] / 256))
    for region, colour in _REGION_COLOURS:
        for x, y in lm68[region, :2]:
            cv2.circle(out, (int(round(x)), int(round(y))), scale, colour, -1, cv2.LINE_AA)
    axes = np.array([[0, 0, 0], [axis_length, 0, 0], [0, axis_length, 0], [0, 0, axis_length]], np.float64)
    cam = axes @ w2c[:3, :3].T + w2c[:3, 3]
    px = project(cam, focal, *centre)
    origin = tuple(int(round(v)) for v in px[0])
    for k in range(3):
        end = tuple(int(round(v)) for v in px[k + 1])
        cv2.line(out, origin, end, _AXIS_COLOURS[k], 2 * scale, cv2.LINE_AA)
    cv2.putText(out, text, (6 * scale, 14 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, (255, 255, 255), scale, cv2.LINE_AA)
    return out


def write_preview(dataset: Dataset, out: Path, limit: Optional[int] = None, progress=None) -> int:
    """Write the preview mp4 of `dataset` to `out`; returns the number of frames."""
    n = dataset.n_frames if limit is None else min(limit, dataset.n_frames)
    lm68 = dataset.landmarks_image()
    camera = dataset.camera()
    w2c = np.linalg.inv(camera.c2w.astype(np.float64))
    tracking = dataset.tracking()
    flags = tracking["flags"]
    error = tracking["reprojection_error"]
    axis_length = 0.6 * float(np.linalg.norm(dataset.pose()["canonical_mesh"], axis=1).max())
    audio = None
    if dataset.has_audio:
        full = dataset.audio()
        audio = type(full)(full.samples[: int(round(n / dataset.fps * full.sample_rate))], full.sample_rate)
    with VideoWriter(Path(out), fps=dataset.fps, audio=audio) as writer:
        for i in range(n):
            notes = [name for bit, name in ((FLAG_INTERPOLATED, "interpolated"), (FLAG_FAILED, "NO FACE"), (FLAG_MULTI_FACE, "several faces")) if flags[i] & bit]
            text = f"{i:05d}  reproj {error[i]:.2f}px  {' '.join(notes)}"
            writer.write(
                draw_frame(dataset.frame(i), dataset.mask(i), lm68[i], w2c[i], camera.focal, camera.principal_point, axis_length, text)
            )
            if progress is not None:
                progress(1)
    return n
