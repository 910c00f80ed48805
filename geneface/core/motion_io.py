"""Landmark-sequence files: how a Motion lives on disk.

`.npz` (written by geneface): `landmarks` T x 68 x 3 float32, `fps` scalar, optional
`mean` and `std` (68 x 3). `.npy` (read only, for hand-made input): T x 68 x 3 or T x 204,
taken to be at 25 fps. Loading never unpickles (`allow_pickle=False`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from geneface.core.atomic import atomic_output
from geneface.core.landmarks68 import as_sequence
from geneface.core.records import VIDEO_FPS, Motion
from geneface.errors import UsageError


def _as_landmarks(array: np.ndarray, path: Path) -> np.ndarray:
    return as_sequence(array, str(path)).astype(np.float32)


def _fps(value: np.ndarray, path: Path) -> float:
    # A NaN or zero rate would pass every `fps != 25` test downstream and fail deep inside.
    if np.size(value) != 1 or not np.issubdtype(np.asarray(value).dtype, np.number):
        raise UsageError(f"{path}: 'fps' must be one number, got {np.asarray(value).dtype} of shape {np.shape(value)}")
    fps = float(np.asarray(value).reshape(()))
    if not np.isfinite(fps) or fps <= 0:
        raise UsageError(f"{path}: 'fps' must be a positive number, got {fps}")
    return fps


def load_motion(path: Path) -> Motion:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such landmark file")
    try:
        if path.suffix == ".npy":
            return Motion(_as_landmarks(np.load(path, allow_pickle=False), path), VIDEO_FPS)
        with np.load(path, allow_pickle=False) as data:
            if "landmarks" not in data:
                raise UsageError(f"{path}: no 'landmarks' array (found: {', '.join(data.files) or 'none'})")
            landmarks = _as_landmarks(data["landmarks"], path)
            fps = _fps(data["fps"], path) if "fps" in data else VIDEO_FPS
            mean = data["mean"] if "mean" in data else None
            std = data["std"] if "std" in data else None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UsageError(f"{path}: not a readable landmark file ({exc})") from None
    for name, stat in (("mean", mean), ("std", std)):
        if stat is not None and not (np.issubdtype(stat.dtype, np.number) and np.all(np.isfinite(stat))):
            raise UsageError(f"{path}: '{name}' must be finite numbers")
    try:
        return Motion(landmarks, fps, mean, std)
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from None


def save_motion(path: Path, motion: Motion, overwrite: bool = True) -> None:
    arrays = {"landmarks": motion.landmarks, "fps": np.float32(motion.fps)}
    if motion.mean is not None:
        arrays["mean"] = motion.mean
    if motion.std is not None:
        arrays["std"] = motion.std
    with atomic_output(Path(path), overwrite=overwrite) as tmp:
        with open(tmp, "wb") as handle:  # a handle keeps numpy from appending a second .npz
            np.savez(handle, **arrays)
