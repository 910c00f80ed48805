"""Piecewise-affine texture mapping of a triangle mesh, painter's order, one remap per frame.

Each triangle is filled into an id buffer (OpenCV's convex fill, 1/16-pixel precision),
back to front, so later triangles cover earlier ones. Every triangle carries the affine
map from output pixels to texture pixels; one vectorised gather turns the id buffer into a
dense sampling map and `cv2.remap` does the bilinear texture lookup. Neighbouring
triangles share their vertices, so the map is continuous across their common edges and no
seams appear. Measured: about 5 ms for a 256 x 256 frame with 1,322 triangles (2-core
machine under load).
"""

from __future__ import annotations

import cv2
import numpy as np

_SHIFT = 4  # fixed-point bits for cv2.fillConvexPoly
_MIN_AREA = 1e-3  # px^2; smaller triangles cover no pixel centre and have no stable inverse


class Rasterizer:
    def __init__(self, texture: np.ndarray, size: int):
        self.texture = np.ascontiguousarray(texture)
        self.size = int(size)
        ys, xs = np.mgrid[0: self.size, 0: self.size]
        self._xs = xs.astype(np.float32).ravel()
        self._ys = ys.astype(np.float32).ravel()
        self._ids = np.empty((self.size, self.size), np.int32)

    def render(self, uv: np.ndarray, tex: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Draw `triangles` (N x 3 vertex ids, back to front) -> (RGB frame, id buffer).

        `uv` are output pixel positions of the vertices, `tex` their texture positions.
        The id buffer holds, per pixel, the index into `triangles` that won (-1: none).
        """
        dst = uv[triangles]  # N x 3 x 2
        src = tex[triangles]
        e1, e2 = dst[:, 1] - dst[:, 0], dst[:, 2] - dst[:, 0]
        area = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
        drawable = area > _MIN_AREA
        # Skip triangles wholly outside the frame: the far background ring is huge.
        lo, hi = dst.min(1), dst.max(1)
        drawable &= (hi[:, 0] >= -1) & (hi[:, 1] >= -1) & (lo[:, 0] <= self.size) & (lo[:, 1] <= self.size)
        # Affine maps dst -> src: [u v 1] @ M = [s t], in closed form for all triangles
        # (a batched np.linalg.solve was the slowest step of a frame).
        det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        det = np.where(drawable, det, 1.0)
        f1, f2 = src[:, 1] - src[:, 0], src[:, 2] - src[:, 0]
        # L = [f1 f2] @ inv([e1 e2]); inv([[a, b], [c, d]]) = [[d, -b], [-c, a]] / det
        inv = np.stack([np.stack([e2[:, 1], -e2[:, 0]], 1), np.stack([-e1[:, 1], e1[:, 0]], 1)], 1) / det[:, None, None]
        L = np.stack([f1, f2], 2) @ inv  # N x 2 x 2: src_delta = L @ dst_delta
        M = np.empty((len(dst), 3, 2))
        M[:, 0] = L[:, :, 0]
        M[:, 1] = L[:, :, 1]
        M[:, 2] = src[:, 0] - np.einsum("nij,nj->ni", L, dst[:, 0])

        ids = self._ids
        ids.fill(-1)
        fixed = np.round(dst * (1 << _SHIFT)).astype(np.int32)
        fill = cv2.fillConvexPoly
        for i in np.flatnonzero(drawable):
            fill(ids, fixed[i], int(i), 0, _SHIFT)

        flat = ids.ravel()
        covered = flat >= 0
        which = np.where(covered, flat, 0)
        Mi = M[which].astype(np.float32)  # P x 3 x 2
        xs, ys = self._xs, self._ys
        map_x = xs * Mi[:, 0, 0] + ys * Mi[:, 1, 0] + Mi[:, 2, 0]
        map_y = xs * Mi[:, 0, 1] + ys * Mi[:, 1, 1] + Mi[:, 2, 1]
        map_x[~covered] = -1e4  # nothing drawn there: sample outside -> border colour
        map_y[~covered] = -1e4
        frame = cv2.remap(
            self.texture,
            map_x.reshape(self.size, self.size),
            map_y.reshape(self.size, self.size),
            interpolation=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return frame, ids


def soften_outline(frame: np.ndarray, polygon: np.ndarray, width: int = 2) -> None:
    """Blur a thin band along `polygon` (in place): anti-aliases a hard mesh boundary such
    as the lips against the mouth interior, which the id buffer draws with jagged edges."""
    if len(polygon) < 3:
        return
    h, w = frame.shape[:2]
    lo = np.floor(polygon.min(0)).astype(int) - 3
    hi = np.ceil(polygon.max(0)).astype(int) + 4
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], w), min(hi[1], h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return
    roi = frame[y0:y1, x0:x1]
    band = np.zeros(roi.shape[:2], np.uint8)
    pts = np.round((polygon - [x0, y0]) * (1 << _SHIFT)).astype(np.int32)
    cv2.polylines(band, [pts], True, 255, width, cv2.LINE_AA, _SHIFT)
    alpha = (band.astype(np.float32) / 255.0)[..., None]
    blurred = cv2.GaussianBlur(roi, (3, 3), 0.8)
    roi[:] = (roi * (1 - alpha) + blurred * alpha + 0.5).astype(np.uint8)
