"""Pictures made of frames: a labelled grid of columns (side by side), and PNG files.

`side_by_side` puts one column per source (the real frames, then each renderer, say) with
the same rows in each, a label strip above every column and the row labels on the first
one; `pick_rows` chooses which frames of a sequence to show; `write_png` writes an RGB image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def pick_rows(n: int, count: int = 3) -> list[int]:
    """`count` positions spread over n frames, away from the ends (n // 6, n // 2, 5n // 6 for 3)."""
    if n <= 0:
        return []
    picks = [int((2 * k + 1) * n // (2 * count)) for k in range(count)]
    return sorted(set(min(n - 1, p) for p in picks))


def label_strip(tile_width: int, text: str, height: int) -> np.ndarray:
    """A white strip with `text` centred, shrunk (then cut) to fit the tile."""
    import cv2

    strip = np.full((height, tile_width, 3), 255, np.uint8)
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    scale = 0.5
    while True:
        (w, h), _ = cv2.getTextSize(text, font, scale, thickness)
        if w <= tile_width - 4 or scale <= 0.3:
            break
        scale -= 0.05
    while w > tile_width - 4 and len(text) > 2:
        text = text[:-2] + "~"
        (w, h), _ = cv2.getTextSize(text, font, scale, thickness)
    org = (max(2, (tile_width - w) // 2), (height + h) // 2)
    cv2.putText(strip, text, org, font, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return strip


def side_by_side(columns: Sequence[tuple[str, Optional[Sequence[np.ndarray]]]], row_labels: Sequence[str] = (),
                 tile: Optional[int] = None) -> np.ndarray:
    """One image: a column per (label, frames), the same rows in each; a column whose frames
    are None (a source that has none: a renderer that failed) is grey. Labels on a strip above each column, row labels
    (the frame index) on the first column's tiles. Tiles are resized to `tile` px high (default:
    the frames' own height, at least 128 so that labels stay legible). uint8 RGB."""
    import cv2

    first = next(frames for _, frames in columns if frames is not None)
    h, w = np.asarray(first[0]).shape[:2]
    tile_h = tile or max(128, h)
    tile_w = max(1, round(w * tile_h / h))
    n_rows = len(first)

    def fit(image):
        image = np.asarray(image)
        if image.shape[:2] == (tile_h, tile_w):
            return image
        interp = cv2.INTER_NEAREST if tile_h > image.shape[0] else cv2.INTER_AREA
        return cv2.resize(image, (tile_w, tile_h), interpolation=interp)

    strip_h = 24
    gap = np.full((strip_h + n_rows * tile_h, 4, 3), 255, np.uint8)
    blocks = []
    for c, (label, frames) in enumerate(columns):
        tiles = []
        for r in range(n_rows):
            if frames is None:
                t = np.full((tile_h, tile_w, 3), 96, np.uint8)
                if r == n_rows // 2:
                    t = t.copy()
                    cv2.putText(t, "failed", (6, tile_h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                                cv2.LINE_AA)
            else:
                t = fit(frames[r]).copy()
            if c == 0 and r < len(row_labels):
                cv2.putText(t, row_labels[r], (4, tile_h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                            cv2.LINE_AA)
            tiles.append(t)
        blocks.append(np.concatenate([label_strip(tile_w, label, strip_h), *tiles], axis=0))
        if c < len(columns) - 1:
            blocks.append(gap)
    return np.concatenate(blocks, axis=1)


def write_png(path: Path, image: np.ndarray) -> None:
    """An RGB uint8 image as a PNG file (best compression); OSError when it cannot be written."""
    import cv2

    if not cv2.imwrite(str(path), np.ascontiguousarray(np.asarray(image)[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"cannot write {path}")
