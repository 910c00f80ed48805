"""Pose fit: known similarities of a synthetic face are recovered; the camera is consistent."""

from __future__ import annotations

import numpy as np
import pytest

from geneface.core import landmarks68 as L68
from geneface.processing.pose import (
    DEFAULT_FOV_DEGREES,
    apply_similarity,
    fit_pose,
    focal_for,
    invert_similarity,
    project,
    umeyama,
)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation matrix from angles in degrees (y, x, z axes)."""
    a, b, c = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ rx @ ry


def synthetic_mesh(seed: int = 0) -> np.ndarray:
    """478 points on a face-like ellipsoidal shell (x right, y down, z away), ~0.1 wide."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1.2, 1.2, 478)
    v = rng.uniform(-1.0, 1.0, 478)
    pts = np.stack([0.07 * np.sin(u), 0.09 * v, -0.05 * np.cos(u) * np.sqrt(1 - 0.5 * v**2)], axis=1)
    # Give the 68 layout its anatomy where the pose code relies on it: eye corners on a
    # horizontal line, chin below them.
    idx = L68.MESH_TO_68
    pts[idx[36]] = [-0.045, -0.02, -0.03]
    pts[idx[45]] = [0.045, -0.02, -0.03]
    pts[idx[8]] = [0.0, 0.09, -0.02]
    return pts


def test_umeyama_recovers_a_known_similarity():
    src = synthetic_mesh()
    rot = rotation(20, -10, 5)
    dst = 3.5 * src @ rot.T + np.array([1.0, -2.0, 0.5])
    s, r, t = umeyama(src, dst)
    assert s == pytest.approx(3.5, rel=1e-9)
    assert np.allclose(r, rot, atol=1e-9)
    assert np.allclose(t, [1.0, -2.0, 0.5], atol=1e-9)
    back = invert_similarity(s, r, t, dst)
    assert np.allclose(back, src, atol=1e-9)


def test_umeyama_never_returns_a_reflection():
    src = synthetic_mesh()
    mirrored = src * np.array([-1.0, 1.0, 1.0])
    _, r, _ = umeyama(src, mirrored)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_umeyama_is_vectorised_over_frames():
    src = synthetic_mesh()
    rots = np.stack([rotation(a, a / 2, -a / 3) for a in (-15, 0, 15)])
    dst = np.einsum("tij,nj->tni", rots, src) * np.array([2.0, 3.0, 4.0])[:, None, None] + np.array([1.0, 2.0, 3.0])
    s, r, t = umeyama(src, dst)
    assert s.shape == (3,) and r.shape == (3, 3, 3)
    assert np.allclose(s, [2, 3, 4]) and np.allclose(r, rots, atol=1e-9)
    assert np.allclose(apply_similarity(s, r, t, np.broadcast_to(src, dst.shape)), dst, atol=1e-9)


def make_sequence(n: int = 12, seed: int = 1, expression: bool = False):
    """Tracked-style points (T, 478, 3) in pixels of a 512 image, with the true poses."""
    base = synthetic_mesh(seed)
    rng = np.random.default_rng(seed)
    rots = np.stack([rotation(*rng.uniform(-15, 15, 3)) for _ in range(n)])
    scales = rng.uniform(1800, 2200, n)  # pixels per unit: a face ~150 px wide
    trans = np.column_stack([rng.uniform(230, 280, n), rng.uniform(230, 280, n), rng.uniform(-5, 5, n)])
    frames = np.repeat(base[None], n, axis=0)
    if expression:
        # Speech moves the mouth and jaw only: big, random, per frame.
        moving = np.r_[L68.MESH_TO_68[0:17], L68.MESH_TO_68[48:68]]
        frames[:, moving, 1] += rng.uniform(0, 0.02, (n, len(moving)))
    points = scales[:, None, None] * np.einsum("tij,tnj->tni", rots, frames) + trans[:, None, :]
    return points, rots, scales, trans


def relative(rots: np.ndarray) -> np.ndarray:
    return np.einsum("tij,kj->tik", rots, rots[0])  # R_t R_0^T


def test_fit_pose_recovers_known_rotations_and_translations():
    points, rots, scales, trans = make_sequence()
    fit = fit_pose(points, (512, 512))
    # The canonical frame is the video's own, so compare motions relative to frame 0.
    assert np.allclose(relative(fit.rotation), relative(rots), atol=1e-5)
    # Scale is relative too (canonical units are fixed by the eye-corner distance).
    assert np.allclose(fit.scale / fit.scale[0], scales / scales[0], rtol=1e-5)
    # The canonical origin lands where the truth puts the same canonical point.
    origin_true = invert_similarity(scales[:1], rots[:1], trans[:1], apply_similarity(fit.scale[:1], fit.rotation[:1], fit.translation[:1], np.zeros((1, 1, 3))))
    recovered = apply_similarity(scales, rots, trans, np.repeat(origin_true, len(scales), axis=0))
    assert np.allclose(recovered[:, 0, :2], fit.translation[:, :2], atol=1e-2)
    # A rigid face keeps identical canonical keypoints in every frame.
    assert np.abs(fit.canonical68 - fit.canonical68[0]).max() < 1e-5
    assert fit.rigid_residual.max() < 1e-3


def test_canonical_frame_is_normalised():
    points, *_ = make_sequence()
    fit = fit_pose(points, (512, 512))
    mean68 = fit.canonical68.mean(axis=0)
    assert np.allclose(mean68.mean(axis=0), 0.0, atol=1e-6)  # origin at the keypoints' centroid
    assert np.linalg.norm(mean68[45] - mean68[36]) == pytest.approx(0.09, rel=1e-4)
    eye_line = mean68[45] - mean68[36]
    assert abs(eye_line[1]) < 1e-6 and eye_line[0] > abs(eye_line[2])  # x along the eyes
    assert mean68[8, 1] > mean68[36, 1]  # y points down the face


def test_expression_does_not_move_the_pose():
    rigid, rots, scales, trans = make_sequence(expression=False)
    talking, *_ = make_sequence(expression=True)
    fit_rigid = fit_pose(rigid, (512, 512))
    fit_talk = fit_pose(talking, (512, 512))
    assert np.allclose(relative(fit_talk.rotation), relative(rots), atol=1e-5)
    assert np.allclose(fit_talk.rotation, fit_rigid.rotation, atol=1e-5)
    # ... and the expression survives in the canonical keypoints.
    lips = slice(48, 68)
    assert np.abs(fit_talk.canonical68[:, lips] - fit_rigid.canonical68[:, lips]).max() > 1e-3


def test_camera_matrices_are_consistent_and_reproject():
    points, *_ = make_sequence()
    fit = fit_pose(points, (512, 512))
    assert fit.focal == pytest.approx(focal_for(512, DEFAULT_FOV_DEGREES))
    assert fit.focal == pytest.approx(2320.0, rel=1e-3)  # GeneFace's 1015 px at 224 px
    assert np.allclose(fit.c2w @ fit.w2c, np.eye(4), atol=1e-4)
    assert np.allclose(fit.c2w[:, 3], [0, 0, 0, 1])
    # The canonical origin projects exactly where the similarity puts it.
    origin_cam = fit.w2c[:, :3, 3]
    assert np.allclose(project(origin_cam.astype(np.float64), fit.focal, fit.cx, fit.cy), fit.translation[:, :2], atol=1e-2)
    # Reprojection error is the measured pixel distance of the 68 points through the camera.
    cam = np.einsum("tij,tnj->tni", fit.w2c[:, :3, :3], fit.canonical68) + fit.w2c[:, None, :3, 3]
    err = np.linalg.norm(project(cam.astype(np.float64), fit.focal, fit.cx, fit.cy) - L68.mesh_to_68(points)[..., :2], axis=-1).mean(-1)
    assert np.allclose(err, fit.reprojection_error, atol=1e-3)
    assert 0 < fit.reprojection_error.mean() < 2.0


def test_wider_field_of_view_means_more_perspective_error():
    points, *_ = make_sequence()
    narrow = fit_pose(points, (512, 512), fov_degrees=8)
    wide = fit_pose(points, (512, 512), fov_degrees=30)
    assert wide.reprojection_error.mean() > 2 * narrow.reprojection_error.mean()


def test_perspective_scene_is_recovered_from_a_true_pinhole_camera():
    """A rigid head seen by a real pinhole camera: poses match up to the canonical frame."""
    base = synthetic_mesh(3)
    f, c = 2320.0, 256.0
    rng = np.random.default_rng(4)
    n = 10
    rots = np.stack([rotation(*rng.uniform(-10, 10, 3)) for _ in range(n)])
    ts = np.column_stack([rng.uniform(-0.03, 0.03, n), rng.uniform(-0.03, 0.03, n), rng.uniform(1.4, 1.6, n)])
    cam = np.einsum("tij,nj->tni", rots, base) + ts[:, None, :]
    uv = f * cam[..., :2] / cam[..., 2:] + c
    # What a weak-perspective tracker reports: image x, y and depth in pixels at head scale.
    z = (cam[..., 2] - ts[:, 2:3]) * f / ts[:, 2:3]
    points = np.concatenate([uv, z[..., None]], axis=-1)
    fit = fit_pose(points, (512, 512), fov_degrees=np.degrees(2 * np.arctan(c / f)))
    # The similarity fit is weak-perspective, so a true pinhole leaves a small bias:
    # ~0.2 degrees of rotation, ~0.2 % of distance and under a pixel of reprojection here.
    assert np.allclose(relative(fit.rotation), relative(rots), atol=1e-2)
    distance = fit.focal / fit.scale
    assert np.allclose(distance / distance[0], ts[:, 2] / ts[0, 2], rtol=5e-3)
    assert fit.reprojection_error.max() < 1.0


def test_fit_pose_rejects_bad_input():
    points, *_ = make_sequence(3)
    with pytest.raises(ValueError):
        fit_pose(points[:, :10], (512, 512))
    bad = points.copy()
    bad[1, 5, 0] = np.nan
    with pytest.raises(ValueError):
        fit_pose(bad, (512, 512))


def test_smoothing_removes_jitter_but_follows_a_smooth_turn():
    from scipy.spatial.transform import Rotation

    base = synthetic_mesh(5)
    n = 60
    yaw = 12 * np.sin(np.linspace(0, np.pi, n))  # one slow head turn, 0 -> 12 -> 0 degrees
    truth = np.stack([rotation(a, 0, 0) for a in yaw])
    # Tracker jitter: the whole mesh wobbles by ~0.5 degrees from frame to frame.
    wobble = np.random.default_rng(6).normal(0, 0.5, (n, 3))
    seen = np.stack([rotation(a + w[0], w[1], w[2]) for a, w in zip(yaw, wobble)])
    points = 2000 * np.einsum("tij,nj->tni", seen, base) + np.array([256.0, 256.0, 0.0])
    raw = fit_pose(points, (512, 512))
    smooth = fit_pose(points, (512, 512), smoothing=1.5)

    def angle_error(fit):
        # Compare up to the fixed rotation between the truth's frame and the canonical one.
        offset = (Rotation.from_matrix(truth).inv() * Rotation.from_matrix(fit.rotation.astype(np.float64))).mean()
        err = Rotation.from_matrix(truth).inv() * Rotation.from_matrix(fit.rotation.astype(np.float64)) * offset.inv()
        return np.degrees(err.magnitude())

    assert angle_error(raw).mean() > 0.5  # the raw fit follows the wobble
    assert angle_error(smooth).mean() < 0.6 * angle_error(raw).mean()
    assert angle_error(smooth).max() < 1.5  # ... and the smoothed one still follows the turn
    # The pose stays consistent with the stored keypoints: same reprojection definition.
    cam = np.einsum("tij,tnj->tni", smooth.w2c[:, :3, :3], smooth.canonical68) + smooth.w2c[:, None, :3, 3]
    err = np.linalg.norm(project(cam.astype(np.float64), smooth.focal, smooth.cx, smooth.cy) - L68.mesh_to_68(points)[..., :2], axis=-1).mean(-1)
    assert np.allclose(err, smooth.reprojection_error, atol=1e-3)
