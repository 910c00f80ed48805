"""A static background plate from the non-person pixels of the video.

Up to `max_samples` frames spread evenly over the video are kept (at crop size), each with
the pixels that are surely background (the person mask grown by a few pixels, so that
segmentation edges and motion blur do not bleed into the plate). The plate is the per-pixel
median of those samples; pixels the person covered in every sample are never seen and get
inpainted (OpenCV Telea) from their surroundings. `seen` records which pixels are real.
"""

from __future__ import annotations

import numpy as np


class BackgroundPlate:
    def __init__(self, n_frames: int, max_samples: int = 40, grow_px: int = 6) -> None:
        self.stride = max(1, int(np.ceil(n_frames / max_samples)))
        self.grow_px = grow_px
        self._frames: list[np.ndarray] = []
        self._valid: list[np.ndarray] = []

    def wants(self, index: int) -> bool:
        return index % self.stride == 0

    def add(self, frame: np.ndarray, person: np.ndarray) -> None:
        import cv2

        kernel = np.ones((2 * self.grow_px + 1, 2 * self.grow_px + 1), np.uint8)
        grown = cv2.dilate(person.astype(np.uint8), kernel) > 0
        self._frames.append(frame)
        self._valid.append(~grown)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(plate uint8 H x W x 3, seen bool H x W)."""
        import cv2

        if not self._frames:
            raise ValueError("no frames were added to the background plate")
        frames = np.stack(self._frames)
        valid = np.stack(self._valid)
        k, h, w, _ = frames.shape
        # Median of the valid samples per pixel: invalid ones become 256 (above any byte),
        # sort, and pick the middle of the valid prefix.
        values = np.where(valid[..., None], frames.astype(np.uint16), np.uint16(256))
        values = values.reshape(k, -1).T.copy()
        values.sort(axis=1)
        count = np.repeat(valid.reshape(k, -1).sum(axis=0), 3)
        middle = np.maximum(count - 1, 0) // 2
        plate = np.take_along_axis(values, middle[:, None], axis=1)[:, 0]
        plate = np.minimum(plate, 255).astype(np.uint8).reshape(h, w, 3)
        seen = valid.any(axis=0)
        if not seen.all():
            hole = (~seen).astype(np.uint8) * 255
            plate = cv2.inpaint(plate, hole, 5, cv2.INPAINT_TELEA)
        return plate, seen
