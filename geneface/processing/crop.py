"""One square crop around the head for the whole video (the camera is static).

The box is chosen once from the tracked face over all frames: its side is `scale` times the
median face height (mesh top of forehead to chin), never less than what keeps every frame's
face inside with a margin, and at most the frame's shorter side; the face sits a little above
the box centre so that neck and shoulders (the torso a NeRF renders) are in view. The box is
shifted, never shrunk, to stay inside the frame. Every frame is cut to it and resized to
`size` x `size` pixels.
"""

from __future__ import annotations

import attrs
import numpy as np

from geneface.errors import GenefaceError


@attrs.frozen
class CropBox:
    """Square box in source pixels (x0, y0, side) and the output size it is resized to."""

    x0: int
    y0: int
    side: int
    size: int

    @property
    def scale(self) -> float:
        """Output pixels per source pixel."""
        return self.size / self.side

    def to_json(self) -> dict:
        return {"x0": self.x0, "y0": self.y0, "side": self.side, "size": self.size}

    @classmethod
    def from_json(cls, data: dict) -> "CropBox":
        return cls(int(data["x0"]), int(data["y0"]), int(data["side"]), int(data["size"]))

    def points_to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 3) source-pixel points (x, y, z) into the output crop's pixels."""
        points = np.asarray(points, np.float32)
        offset = np.array([self.x0, self.y0, 0.0], np.float32)
        return (points - offset) * np.float32(self.scale)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Cut and resize one frame."""
        import cv2

        patch = frame[self.y0:self.y0 + self.side, self.x0:self.x0 + self.side]
        if self.side == self.size:
            return np.ascontiguousarray(patch)
        interp = cv2.INTER_AREA if self.side > self.size else cv2.INTER_LINEAR
        return cv2.resize(patch, (self.size, self.size), interpolation=interp)


def choose_crop(
    points: np.ndarray,
    frame_size: tuple[int, int],
    size: int = 512,
    scale: float = 2.0,
    usable: np.ndarray | None = None,
) -> CropBox:
    """The static crop for tracked mesh points (T, N, 3) in a frame of (height, width)."""
    height, width = frame_size
    if size < 16 or size % 2:
        raise GenefaceError(f"crop size must be an even number of at least 16 px, got {size}")
    pts = points if usable is None else points[np.asarray(usable, bool)]
    lo = pts[..., :2].min(axis=1)
    hi = pts[..., :2].max(axis=1)
    face_h = float(np.median(hi[:, 1] - lo[:, 1]))
    # Robust union of the per-frame boxes: a single jittery frame must not widen the crop.
    ux0, uy0 = np.percentile(lo, 1, axis=0)
    ux1, uy1 = np.percentile(hi, 99, axis=0)
    side = max(scale * face_h, 1.15 * max(ux1 - ux0, uy1 - uy0))
    side = int(round(min(side, width, height)))
    cx = 0.5 * (ux0 + ux1)
    # Face centre 45% down the box: room for hair above, neck and shoulders below.
    cy = 0.5 * (uy0 + uy1) + 0.05 * side
    x0 = int(round(np.clip(cx - side / 2, 0, width - side)))
    y0 = int(round(np.clip(cy - side / 2, 0, height - side)))
    return CropBox(x0=x0, y0=y0, side=side, size=size)
