"""Head pose and camera from tracked 3-D face points.

Model. The tracker gives, per frame, points P (N x 3) in image pixels: x, y and a relative
depth z in the same scale as x (a weak-perspective reconstruction). We

1. build a canonical face from the video itself: generalised Procrustes analysis of the
   *stable* points only (forehead, nose bridge, eye corners; not lips or jaw, which speech
   moves), so mouth opening never leaks into the pose;
2. fit, per frame, a similarity  P ~= s R C + T  of those points to the canonical face
   (Umeyama's closed form, vectorised over frames), optionally smoothed over time (the
   tracker's pixel jitter otherwise reads as a head shaking by about half a degree);
3. express every tracked point in the canonical frame, C_t = R^T (P_t - T) / s: head pose
   removed, identity and expression kept (the motion targets);
4. turn each similarity into a pinhole camera with one focal length f per video: the head
   sits still at the origin and the camera moves, w2c = [R | t] with
   t = ((Tx - cx) / s, (Ty - cy) / s, f / s), so the canonical origin projects exactly where
   the similarity put it and the apparent scale s becomes the distance f / s.

Step 4 is where the weak-perspective fit meets a real perspective camera: points in front of
or behind the origin project slightly off. `reprojection_error` measures exactly that, per
frame, as the mean pixel distance between the 68 keypoints projected through the camera and
where the tracker saw them; a wide field of view makes it grow, a narrow one shrinks it.

Canonical frame: OpenCV axes (x to the subject's left = image right, y down, z away from
the camera); origin at the centroid of the mean 68 keypoints; scale such that the mean
distance between the outer eye corners is `EYE_CORNER_DISTANCE` (0.09, an adult's ~9 cm,
so units are roughly metres).
"""

from __future__ import annotations

import math
from typing import Callable

import attrs
import numpy as np

from geneface.core import landmarks68 as L68
from geneface.errors import GenefaceError

EYE_CORNER_DISTANCE = 0.09
# The field of view of the face-reconstruction camera GeneFace inherits (focal 1015 px at
# 224 px, Deep3DFaceRecon): 12.6 degrees, i.e. 2320 px at 512.
DEFAULT_FOV_DEGREES = 2 * math.degrees(math.atan(112 / 1015))


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True):
    """Least-squares similarity mapping `src` onto `dst`: dst ~= s * R @ src + t.

    src, dst: (..., N, 3) with matching or broadcastable leading shapes. Returns s (...),
    R (..., 3, 3) (proper rotations, det +1) and t (..., 3). Umeyama (1991), closed form.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src, dst = np.broadcast_arrays(src, dst)
    mu_s = src.mean(axis=-2)
    mu_d = dst.mean(axis=-2)
    a = src - mu_s[..., None, :]
    b = dst - mu_d[..., None, :]
    n = src.shape[-2]
    cov = np.einsum("...ni,...nj->...ij", b, a) / n
    u, sing, vt = np.linalg.svd(cov)
    d = np.ones(sing.shape)
    d[..., 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    d[d == 0] = 1.0
    rot = u @ (d[..., :, None] * vt)
    if with_scale:
        var = (a**2).sum(axis=(-1, -2)) / n
        s = (sing * d).sum(axis=-1) / np.maximum(var, 1e-12)
    else:
        s = np.ones(rot.shape[:-2])
    t = mu_d - s[..., None] * np.einsum("...ij,...j->...i", rot, mu_s)
    return s, rot, t


def apply_similarity(s, rot, t, points):
    """s * R @ p + t for points (..., N, 3) with per-leading-index s, R, t."""
    return s[..., None, None] * np.einsum("...ij,...nj->...ni", rot, points) + t[..., None, :]


def invert_similarity(s, rot, t, points):
    """R^T (p - t) / s: back into the frame the similarity maps from."""
    return np.einsum("...ji,...nj->...ni", rot, points - t[..., None, :]) / s[..., None, None]


def smooth_similarities(s, rot, t, sigma: float):
    """Gaussian smoothing over time (sigma in frames) of scale, rotation and translation.

    The tracker's points jitter by a pixel or so from frame to frame, which a per-frame fit
    reads as the head shaking by about half a degree. Rotations are smoothed as rotation
    vectors about their mean (no wrap-around for a head), scale in log space.
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.spatial.transform import Rotation

    if sigma <= 0 or len(s) < 2:
        return s, rot, t
    rotations = Rotation.from_matrix(rot)
    mean = rotations.mean()
    vectors = (mean.inv() * rotations).as_rotvec()
    vectors = gaussian_filter1d(vectors, sigma, axis=0, mode="nearest")
    rot = (mean * Rotation.from_rotvec(vectors)).as_matrix()
    s = np.exp(gaussian_filter1d(np.log(s), sigma, mode="nearest"))
    t = gaussian_filter1d(t, sigma, axis=0, mode="nearest")
    return s, rot, t


# How far the nasion -> nose-base line leans towards the camera from the face's vertical
# (nasion -> chin). Measured on may_5s: 16-21 degrees over the clip (nasion -> chin: -1 to 2).
NOSE_LEAN_DEGREES = 18.0


def _face_axes(mean68: np.ndarray) -> np.ndarray:
    """Rotation whose rows are the face's own x (eye line), y (down the face), z (into it).

    Only points speech does not move define it, so expression never tilts the frame: x is
    the line through the outer eye corners; y is the nasion (27) -> nose base (33) line made
    orthogonal to x and turned back by NOSE_LEAN_DEGREES so that it follows the facial
    vertical (nasion -> chin) without using the jaw; z = x cross y points away from the
    camera. A face seen straight on then reads as near-zero pitch (may_5s: median 0.2 degrees;
    the brow and eye-corner plane used before read about 40).
    """
    x = mean68[45] - mean68[36]
    x /= np.linalg.norm(x)
    y = mean68[33] - mean68[27]
    y = y - x * (y @ x)
    y /= np.linalg.norm(y)
    lean = math.radians(NOSE_LEAN_DEGREES)
    y = math.cos(lean) * y + math.sin(lean) * np.cross(x, y)  # turn away from the camera about x
    z = np.cross(x, y)
    return np.stack([x, y, z])


def canonical_face(
    points: np.ndarray,
    stable: np.ndarray = L68.POSE_MESH,
    iterations: int = 4,
    to68: Callable[[np.ndarray], np.ndarray] = L68.mesh_to_68,
):
    """Mean face of a video by generalised Procrustes on the stable points.

    points: (T, N, 3) tracked points of frames with a face; `to68` maps (..., N, 3) to the
    68 keypoints. Returns the canonical points (N, 3) in the frame the module docstring
    describes.
    """
    ref = points[len(points) // 2, stable].astype(np.float64)
    aligned = points
    for _ in range(iterations):
        s, rot, t = umeyama(ref, points[:, stable])
        aligned = invert_similarity(s, rot, t, points.astype(np.float64))
        ref = aligned[:, stable].mean(axis=0)
    mean = aligned.mean(axis=0)
    mean68 = to68(mean)
    axes = _face_axes(mean68)
    mean = (mean - mean68.mean(axis=0)) @ axes.T
    mean68 = to68(mean)
    scale = EYE_CORNER_DISTANCE / np.linalg.norm(mean68[45] - mean68[36])
    return mean * scale


def focal_for(size: int, fov_degrees: float = DEFAULT_FOV_DEGREES) -> float:
    """Focal length in pixels for a square image of `size` px and a horizontal field of view."""
    return 0.5 * size / math.tan(math.radians(fov_degrees) / 2)


def project(points_cam: np.ndarray, focal: float, cx: float, cy: float) -> np.ndarray:
    """Pinhole projection of camera-space points (..., 3) (OpenCV axes) to pixels (..., 2)."""
    z = points_cam[..., 2:3]
    return focal * points_cam[..., :2] / z + np.array([cx, cy])


@attrs.frozen(eq=False)
class PoseFit:
    """Per-frame pose and the camera built from it; arrays are over all T frames."""

    scale: np.ndarray  # (T,) pixels per canonical unit at the head
    rotation: np.ndarray  # (T, 3, 3) canonical -> camera
    translation: np.ndarray  # (T, 3) similarity translation, pixels
    focal: float
    cx: float
    cy: float
    w2c: np.ndarray  # (T, 4, 4) world (canonical) -> camera
    c2w: np.ndarray  # (T, 4, 4) camera -> world, what a NeRF wants
    canonical_mesh: np.ndarray  # (N, 3) the video's mean face
    canonical68: np.ndarray  # (T, 68, 3) pose-free keypoints per frame
    reprojection_error: np.ndarray  # (T,) mean px error of the 68 points through the camera
    rigid_residual: np.ndarray  # (T,) RMS px residual of the stable points' similarity fit


def fit_pose(
    points: np.ndarray,
    image_size: tuple[int, int],
    fov_degrees: float = DEFAULT_FOV_DEGREES,
    stable: np.ndarray = L68.POSE_MESH,
    fit_frames: np.ndarray | None = None,
    smoothing: float = 0.0,
    to68: Callable[[np.ndarray], np.ndarray] = L68.mesh_to_68,
) -> PoseFit:
    """Fit pose and camera to tracked points (T, N, 3) in the image's pixels.

    The defaults expect mediapipe's 478-point mesh; another tracker's layout needs its own
    `stable` indices and `to68` map (or pass its 68 keypoints with `L68.STABLE_68` and
    `to68=lambda p: p`).

    `image_size` is (height, width); the principal point is the image centre and the focal
    length follows from `fov_degrees` over the width. `fit_frames` (bool, T) chooses the
    frames that build the canonical face (e.g. not interpolated ones); all frames get a pose.
    `smoothing` (frames, Gaussian sigma; 0 = off) steadies the pose over time; the
    canonical keypoints are computed with the smoothed pose, so they stay consistent with
    the camera and `rigid_residual` reports what the smoothing left unexplained.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[-1] != 3 or points.shape[1] <= int(np.max(stable)):
        raise ValueError(f"fit_pose expects (T, N, 3) mesh points, got {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError("fit_pose got non-finite points; fill tracking gaps first")
    height, width = image_size
    use = np.ones(len(points), bool) if fit_frames is None else np.asarray(fit_frames, bool)
    if use.sum() < 1:
        raise GenefaceError("no usable frames to build the canonical face from")
    mesh = canonical_face(points[use], stable, to68=to68)
    s, rot, t = umeyama(mesh[stable], points[:, stable])
    s, rot, t = smooth_similarities(s, rot, t, smoothing)
    canonical = invert_similarity(s, rot, t, points)
    canonical68 = to68(canonical)
    refit = apply_similarity(s, rot, t, mesh[stable])
    rigid = np.sqrt(((refit[..., :2] - points[:, stable, :2]) ** 2).sum(-1).mean(-1))

    focal = focal_for(width, fov_degrees)
    cx, cy = width / 2.0, height / 2.0
    trans = np.stack([(t[:, 0] - cx) / s, (t[:, 1] - cy) / s, focal / s], axis=-1)
    w2c = np.tile(np.eye(4), (len(points), 1, 1))
    w2c[:, :3, :3] = rot
    w2c[:, :3, 3] = trans
    c2w = np.tile(np.eye(4), (len(points), 1, 1))
    c2w[:, :3, :3] = np.transpose(rot, (0, 2, 1))
    c2w[:, :3, 3] = -np.einsum("tji,tj->ti", rot, trans)

    cam = np.einsum("tij,tnj->tni", rot, canonical68) + trans[:, None, :]
    projected = project(cam, focal, cx, cy)
    error = np.linalg.norm(projected - to68(points)[..., :2], axis=-1).mean(-1)
    return PoseFit(
        scale=s.astype(np.float32),
        rotation=rot.astype(np.float32),
        translation=t.astype(np.float32),
        focal=float(focal),
        cx=cx,
        cy=cy,
        w2c=w2c.astype(np.float32),
        c2w=c2w.astype(np.float32),
        canonical_mesh=mesh.astype(np.float32),
        canonical68=canonical68.astype(np.float32),
        reprojection_error=error.astype(np.float32),
        rigid_residual=rigid.astype(np.float32),
    )
