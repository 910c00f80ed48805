"""Clamp: keep every landmark number inside the person's own range.

GeneFace clamps each of the 204 predicted numbers to mean +- 2.5 std of the target's training
landmarks (METHOD.md, "Inference post-processing"): a generator or adapter that overshoots
would otherwise ask the renderer for a face it never saw, which a NeRF renders as a smear.
"""

from __future__ import annotations

import numpy as np

DEFAULT_K = 2.5  # GeneFace's bound, in the person's standard deviations


def clamp_bounds(mean: np.ndarray, std: np.ndarray, k: float = DEFAULT_K) -> tuple[np.ndarray, np.ndarray]:
    """(low, high), each shaped like `mean`: mean -/+ k std."""
    if not k > 0:
        raise ValueError(f"k must be positive, got {k}")
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    return mean - k * std, mean + k * std


def clamp_landmarks(landmarks: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """T x 68 x 3 landmarks with every number clipped to [low, high] (68 x 3); a new array."""
    return np.clip(np.asarray(landmarks), low, high)
