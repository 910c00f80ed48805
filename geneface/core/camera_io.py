"""Pose files: how a Camera (one focal length, a camera-to-world matrix per frame) lives on disk.

A pose file is an `.npz` (`np.savez`, never unpickled) with `c2w` float32 T x 4 x 4 (OpenCV
axes, head fixed at the origin), `focal`, `width`, `height` and optionally `cx`, `cy`
(pixels; the image centre when absent). `geneface process` writes one per dataset as
`camera/camera.npz`; a spec's `input.poses` takes such a file or a whole dataset folder.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from geneface.core.atomic import atomic_output
from geneface.core.records import Camera
from geneface.errors import UsageError

POSE_FILE = "camera/camera.npz"  # inside a dataset folder


def save_camera(path: Path, camera: Camera) -> None:
    arrays = {"c2w": camera.c2w, "focal": np.float32(camera.focal), "width": np.int32(camera.width),
              "height": np.int32(camera.height)}
    if camera.cx is not None:
        arrays["cx"] = np.float32(camera.cx)
    if camera.cy is not None:
        arrays["cy"] = np.float32(camera.cy)
    with atomic_output(Path(path)) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def load_camera(path: Path) -> Camera:
    """A Camera from a pose file or a dataset folder; one-line errors name the file and key."""
    path = Path(path)
    if path.is_dir():
        if (path / POSE_FILE).is_file():
            path = path / POSE_FILE
        elif (path / "manifest.json").is_file():
            from geneface.core.dataset import Dataset
            from geneface.core.person import open_dataset

            return open_dataset(path).camera()
        else:
            raise UsageError(f"{path}: a folder, but neither a dataset nor one holding {POSE_FILE}")
    if not path.is_file():
        raise UsageError(f"{path}: no such pose file")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("c2w", "focal", "width", "height") if k not in data]
            if missing:
                raise UsageError(f"{path}: not a pose file, missing {', '.join(missing)} "
                                 f"(found: {', '.join(data.files) or 'nothing'})")
            c2w = np.asarray(data["c2w"], np.float32)
            focal, width, height = float(data["focal"]), int(data["width"]), int(data["height"])
            cx = float(data["cx"]) if "cx" in data else None
            cy = float(data["cy"]) if "cy" in data else None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UsageError(f"{path}: not a readable pose file ({exc})") from None
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or len(c2w) == 0:
        raise UsageError(f"{path}: c2w must be T x 4 x 4 with T > 0, got shape {c2w.shape}")
    if not np.all(np.isfinite(c2w)):
        bad = int(np.argwhere(~np.all(np.isfinite(c2w), axis=(1, 2)))[0][0])
        raise UsageError(f"{path}: c2w has NaN or infinite values (first at frame {bad})")
    if not (np.isfinite(focal) and focal > 0) or width <= 0 or height <= 0:
        raise UsageError(f"{path}: focal, width and height must be positive (got {focal}, {width}, {height})")
    return Camera(focal=focal, width=width, height=height, c2w=c2w, cx=cx, cy=cy)


def ping_pong(n_source: int, n: int) -> np.ndarray:
    """Indices 0, 1, ..., n_source-1, n_source-2, ..., 0, 1, ... of length n: a path looped
    back and forth, so a pose sequence can drive any length of motion with no jump."""
    if n_source <= 1:
        return np.zeros(n, dtype=np.int64)
    period = 2 * (n_source - 1)
    phase = np.arange(n) % period
    return np.where(phase < n_source, phase, period - phase).astype(np.int64)


def camera_for_length(camera: Camera, n: int) -> Camera:
    """The camera path fitted to `n` frames: cut when longer, looped back and forth when shorter."""
    if camera.n_frames == n:
        return camera
    import attrs

    return attrs.evolve(camera, c2w=camera.c2w[ping_pong(camera.n_frames, n)])
