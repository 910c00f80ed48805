"""The head path: the person's own poses, looped and smoothed, held still, or from a file.

The head sits still in its canonical frame and the camera moves (ARCHITECTURE.md, "Camera"), so
a head path is a Camera with one camera-to-world matrix per frame. GeneFace drives the
renderer with the person's training poses and smooths the camera path over 7 frames
(METHOD.md); RAD-NeRF averages translations and rotations over the window. Here:

- translations: a moving average (`kernel` frames);
- rotations: the same weighted average of the 3 x 3 matrices, projected back onto the
  rotations by SVD (the chordal L2 mean: the nearest rotation to the average), because an
  average of rotation matrices is not a rotation.

Smoothing pads by reflection, the very pattern `ping_pong` loops a path with, so the loop is
smooth across its turns as well.
"""

from __future__ import annotations

import attrs
import numpy as np

from geneface.core.camera_io import ping_pong
from geneface.core.records import Camera
from geneface.postprocess.smooth import box_kernel, filter_time

DEFAULT_KERNEL = 7  # frames, GeneFace's camera-path smoothing
MODES = ("loop", "still", "file", "off")


def nearest_rotation(m: np.ndarray) -> np.ndarray:
    """The rotation (det +1) nearest each 3 x 3 matrix of `m` (... x 3 x 3), by SVD."""
    u, _, vt = np.linalg.svd(np.asarray(m, np.float64))
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)  # a degenerate average: keep the SVD's own frame
    u = u.copy()
    u[..., :, -1] *= d[..., None]  # flip the weakest axis rather than return a reflection
    return u @ vt


def smooth_poses(c2w: np.ndarray, kernel: int = DEFAULT_KERNEL) -> np.ndarray:
    """T x 4 x 4 rigid camera-to-world matrices smoothed over `kernel` frames (odd; 1 = none)."""
    c2w = np.asarray(c2w, np.float64)
    if kernel == 1 or len(c2w) <= 1:
        return c2w.copy()
    weights = box_kernel(kernel)
    out = np.repeat(np.eye(4)[None], len(c2w), axis=0)
    out[:, :3, :3] = nearest_rotation(filter_time(c2w[:, :3, :3], weights))
    out[:, :3, 3] = filter_time(c2w[:, :3, 3], weights)
    return out


def loop_camera(camera: Camera, n_frames: int, kernel: int = DEFAULT_KERNEL) -> Camera:
    """The person's poses smoothed over `kernel` frames, looped back and forth to `n_frames`."""
    path = smooth_poses(camera.c2w, kernel)
    return attrs.evolve(camera, c2w=path[ping_pong(len(path), n_frames)].astype(np.float32))


def rotation_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (radians) of the rotation between each pair of 3 x 3 rotations."""
    cos = (np.einsum("...ij,...ij->...", a, b) - 1.0) / 2.0  # trace(a^T b) = sum a * b
    return np.arccos(np.clip(cos, -1.0, 1.0))


def mean_pose_index(c2w: np.ndarray) -> int:
    """The frame whose pose is closest to the mean pose.

    The mean: average translation and the chordal mean rotation. Closeness adds the rotation
    angle and the translation distance, each divided by its own spread over the frames, so
    neither unit (radians, the head's length unit) dominates.
    """
    c2w = np.asarray(c2w, np.float64)
    rot, trans = c2w[:, :3, :3], c2w[:, :3, 3]
    mean_rot = nearest_rotation(rot.mean(0))
    angle = rotation_angle(rot, mean_rot[None])
    dist = np.linalg.norm(trans - trans.mean(0), axis=-1)
    spread = lambda d: max(float(np.sqrt(np.mean(d ** 2))), 1e-12)  # noqa: E731
    return int(np.argmin(angle / spread(angle) + dist / spread(dist)))


def still_camera(camera: Camera, n_frames: int) -> Camera:
    """One pose held for `n_frames`: the person's frame closest to their mean pose."""
    pose = camera.c2w[mean_pose_index(camera.c2w)]
    return attrs.evolve(camera, c2w=np.repeat(pose[None], n_frames, axis=0))
