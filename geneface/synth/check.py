"""Check a face tracker against the synthetic subject's ground truth.

Used by tests/test_synth.py and `benchmarks/bench_synth.py --tracker`: make a clip, send it
through H.264 like any real video, track it with the mediapipe FaceTracker plugin and fit
the head pose the way `geneface process` does, then compare with what the generator knows.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

from geneface.core.landmarks68 import mesh_to_68, mouth_openness
from geneface.synth.clip import ClipSpec, generate


def rotation_errors(truth: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame angle (degrees) between two rotation tracks (T x 3 x 3) whose canonical
    frames differ by one constant rotation C (estimate = truth @ C); C is fitted over the
    clip (least squares on rotations) and returned too."""
    truth = np.asarray(truth, np.float64)
    estimate = np.asarray(estimate, np.float64)
    u, _, vt = np.linalg.svd(np.einsum("tji,tjk->ik", truth, estimate))
    C = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    rel = np.einsum("tji,tjk->tik", truth @ C, estimate)
    angle = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)))
    return angle, C


def tracker_vs_truth(tracker, seconds: float = 10.0, seed: int = 0, size: int = 256) -> dict:
    """Track a synthetic clip with `tracker` (a FaceTracker, e.g. the `mediapipe` plugin);
    pose and mouth errors against the truth."""
    from geneface.core.media import read_video, write_video
    from geneface.processing.pose import fit_pose

    clip = generate(ClipSpec(seconds=seconds, size=size, seed=seed))
    gt = clip.ground_truth
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "clip.mp4"
        write_video(video, clip.frames)
        frames = read_video(video)
    tracked = [f.points for f in tracker.track(iter(frames))]
    found = np.array([p is not None for p in tracked])
    points = np.stack([p for p in tracked if p is not None])
    # The tracker's camera is given the generator's field of view; rotation does not
    # depend on it (the pose fit is a similarity), translation would.
    fov = 2 * math.degrees(math.atan(size / 2 / gt.focal))
    fit = fit_pose(points, (size, size), fov_degrees=fov)
    angle, C = rotation_errors(gt.rotation[found], fit.rotation)
    mouth = mouth_openness(fit.canonical68)
    lm_err = np.linalg.norm(mesh_to_68(points)[..., :2] - gt.landmarks68_image[found], axis=-1)
    return {
        "seconds": seconds,
        "size": size,
        "frames": int(len(frames)),
        "missing": int((~found).sum()),
        "pose_error_mean_deg": float(angle.mean()),
        "pose_error_p95_deg": float(np.percentile(angle, 95)),
        "pose_error_max_deg": float(angle.max()),
        "motion_range_deg": [round(float(v), 2) for v in np.ptp(gt.motion_euler_deg, axis=0)],
        "mouth_corr": float(np.corrcoef(mouth, gt.mouth_openness[found])[0, 1]),
        "landmark68_error_px": float(lm_err.mean()),
        "mouth_landmark_error_px": float(lm_err[:, 48:68].mean()),
        "canonical_frame_offset_deg": float(np.degrees(np.arccos(np.clip((np.trace(C) - 1) / 2, -1, 1)))),
    }
