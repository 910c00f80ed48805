"""Smoothing over time: a Gaussian for landmarks, a moving average for anything else.

Every filter pads by reflection (mirror about the first and last frame, the edge frame not
repeated), so the output is as long as the input, does not shrink towards zero at the edges
and is not shifted in time. That reflection is also what `geneface.core.camera_io.ping_pong`
does when it loops a path back and forth, so a smoothed path looped that way is the looped
path smoothed.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_SIGMA = 1.0  # frames: takes out tracker-like jitter, keeps a 25 fps mouth responsive


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised Gaussian weights over -ceil(3 sigma)..ceil(3 sigma) frames."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def box_kernel(width: int) -> np.ndarray:
    """Equal weights over `width` frames (odd, so the window is centred on its frame)."""
    if width < 1 or width % 2 == 0:
        raise ValueError(f"a moving-average width must be a positive odd number, got {width}")
    return np.full(width, 1.0 / width)


def filter_time(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Convolve `x` (T x ...) along time with centred `weights` (odd length), reflect padding."""
    x = np.asarray(x, np.float64)
    weights = np.asarray(weights, np.float64)
    if len(weights) % 2 == 0:
        raise ValueError("weights must have an odd length (a centred window)")
    if len(x) <= 1:
        return x.copy()  # nothing to smooth against (and reflection needs two frames)
    radius = len(weights) // 2
    padded = np.pad(x, [(radius, radius)] + [(0, 0)] * (x.ndim - 1), mode="reflect")
    out = np.zeros_like(x)
    for i, w in enumerate(weights):  # a handful of taps: a weighted sum of shifted copies
        out += w * padded[i:i + len(x)]
    return out


def smooth_landmarks(landmarks: np.ndarray, sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """T x 68 x 3 (or any T x ...) Gaussian-smoothed over time, same length."""
    return filter_time(landmarks, gaussian_kernel(sigma))
