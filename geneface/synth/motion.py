"""Movements that do not come from the speech: eye blinks and slow head motion."""

from __future__ import annotations

import numpy as np

# People blink about 15-20 times a minute while talking; a blink closes in ~80 ms, stays
# shut ~40 ms and reopens more slowly (~160 ms).
MEAN_BLINK_INTERVAL = 3.5
_CLOSE, _HOLD, _OPEN = 0.08, 0.04, 0.16


def blink_times(duration: float, rng: np.random.Generator, rate: float = 1.0) -> np.ndarray:
    """Start times of blinks in [0, duration): gamma-distributed gaps, none closer than 1.2 s."""
    if rate <= 0:
        return np.zeros(0)
    mean = MEAN_BLINK_INTERVAL / rate
    times, t = [], rng.uniform(0.4, 0.4 + mean)
    while t < duration:
        times.append(t)
        t += max(1.2 / rate, rng.gamma(4.0, mean / 4.0))
    return np.array(times)


def _blink_profile(dt: np.ndarray) -> np.ndarray:
    """Lid closure 0..1 at `dt` seconds after a blink starts (eased close, hold, open)."""
    out = np.zeros_like(dt)
    closing = (dt >= 0) & (dt < _CLOSE)
    out[closing] = np.sin(0.5 * np.pi * dt[closing] / _CLOSE) ** 2
    out[(dt >= _CLOSE) & (dt < _CLOSE + _HOLD)] = 1.0
    opening = (dt >= _CLOSE + _HOLD) & (dt < _CLOSE + _HOLD + _OPEN)
    out[opening] = np.cos(0.5 * np.pi * (dt[opening] - _CLOSE - _HOLD) / _OPEN) ** 2
    return out


def blink_track(n_frames: int, fps: float, rng: np.random.Generator, rate: float = 1.0) -> np.ndarray:
    """Per-frame lid closure (0 open .. 1 shut), averaged over each frame's exposure.

    Averaging over 5 instants per frame keeps a 120 ms closure from falling between two
    frame centres.
    """
    starts = blink_times(n_frames / fps, rng, rate)
    sub = (np.arange(n_frames)[:, None] + (np.arange(5)[None, :] + 0.5) / 5) / fps  # T x 5
    track = np.zeros(n_frames)
    for s in starts:
        track = np.maximum(track, _blink_profile(sub - s).mean(1))
    return track


def _smooth_noise(n: int, fps: float, rng: np.random.Generator, f_lo: float, f_hi: float, parts: int = 4) -> np.ndarray:
    """Unit-std sum of a few slow sinusoids with random frequencies and phases."""
    t = np.arange(n) / fps
    signal = np.zeros(n)
    for _ in range(parts):
        f = rng.uniform(f_lo, f_hi)
        signal += rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    # Normalise by the expected std of the sum, not the sample std, so short clips are not
    # blown up to full amplitude and the amplitude means the same for every length.
    return signal / np.sqrt(parts * 0.5 * (0.75**2 + 1 / 48))


# Standard deviations at amplitude 1: rotation in degrees (pitch, yaw, roll), translation
# in centimetres (x, y, z). Peaks reach about 2.5x these.
ROTATION_STD_DEG = np.array([1.3, 1.8, 0.9])
TRANSLATION_STD_CM = np.array([0.25, 0.2, 0.4])


def head_motion(n_frames: int, fps: float, rng: np.random.Generator, amplitude: float = 1.0):
    """Slow head motion: Euler angles (T x 3, degrees) and translation (T x 3, cm).

    Frequencies 0.05-0.4 Hz: the drift and sway of a seated speaker, no jitter.
    """
    euler = np.stack([_smooth_noise(n_frames, fps, rng, 0.05, 0.4) for _ in range(3)], 1)
    trans = np.stack([_smooth_noise(n_frames, fps, rng, 0.04, 0.3) for _ in range(3)], 1)
    return euler * ROTATION_STD_DEG * amplitude, trans * TRANSLATION_STD_CM * amplitude


def euler_to_matrix(euler_deg: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) degrees -> R = Rz(roll) @ Ry(yaw) @ Rx(pitch), shape (..., 3, 3).

    Axes are OpenCV camera axes: x right, y down, z forward. For a face looking at the
    camera, positive pitch tips the chin towards the chest, positive yaw turns the face
    towards the image's left, positive roll tilts it clockwise in the image.
    `matrix_to_euler` inverts this.
    """
    e = np.deg2rad(np.asarray(euler_deg, dtype=np.float64))
    p, y, r = e[..., 0], e[..., 1], e[..., 2]
    cp, sp, cy, sy, cr, sr = np.cos(p), np.sin(p), np.cos(y), np.sin(y), np.cos(r), np.sin(r)
    one, zero = np.ones_like(p), np.zeros_like(p)
    rx = np.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(e.shape[:-1] + (3, 3))
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(e.shape[:-1] + (3, 3))
    rz = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(e.shape[:-1] + (3, 3))
    return rz @ ry @ rx


def matrix_to_euler(R: np.ndarray) -> np.ndarray:
    """Inverse of `euler_to_matrix` (valid away from yaw = +-90 degrees)."""
    R = np.asarray(R, dtype=np.float64)
    yaw = np.arcsin(np.clip(-R[..., 2, 0], -1, 1))
    pitch = np.arctan2(R[..., 2, 1], R[..., 2, 2])
    roll = np.arctan2(R[..., 1, 0], R[..., 0, 0])
    return np.rad2deg(np.stack([pitch, yaw, roll], -1))
