"""geneface.nerf.rays: rays from dataset cameras, pixel sets, box intersection."""

from __future__ import annotations

import numpy as np
import torch

from geneface.core.records import Camera
from geneface.nerf.rays import Rays, all_pixels, box_pixels, camera_rays, frame_rays, intersect_box, mask_pixels


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return ry @ rx


def _camera(n_frames: int = 2) -> Camera:
    c2w = np.tile(np.eye(4), (n_frames, 1, 1))
    for t in range(n_frames):
        c2w[t, :3, :3] = _rotation(0.3 * t + 0.1, -0.2)
        c2w[t, :3, 3] = [0.1 * t, -0.2, -3.0]
    return Camera(focal=100.0, width=48, height=40, c2w=c2w, cx=24.5, cy=18.5)


def test_principal_point_ray_is_the_camera_axis():
    cam = _camera()
    rays = camera_rays(cam, 1, torch.tensor([[24.5, 18.5]]), centres=False)
    c2w = torch.as_tensor(cam.c2w[1])
    torch.testing.assert_close(rays.directions[0], c2w[:3, 2])
    torch.testing.assert_close(rays.origins[0], c2w[:3, 3])
    # The pixel whose centre is the principal point gives the same ray.
    centre = camera_rays(cam, 1, torch.tensor([[24, 18]]))
    torch.testing.assert_close(centre.directions, rays.directions)


def test_known_pixel_direction_and_reprojection():
    cam = _camera()
    rays = camera_rays(cam, 0, torch.tensor([[40, 5]]))
    d_cam = np.array([(40.5 - 24.5) / 100.0, (5.5 - 18.5) / 100.0, 1.0])
    expected = cam.c2w[0, :3, :3] @ (d_cam / np.linalg.norm(d_cam))
    torch.testing.assert_close(rays.directions[0], torch.tensor(expected, dtype=torch.float32))
    # Any point along any ray projects back onto its pixel's centre.
    pixels = torch.tensor([[0, 0], [47, 39], [10, 30]])
    rays = camera_rays(cam, 0, pixels)
    points = rays.at(torch.tensor([[2.0], [3.0], [4.5]]))[:, 0].numpy()
    w2c = np.linalg.inv(cam.c2w[0])
    cam_pts = points @ w2c[:3, :3].T + w2c[:3, 3]
    uv = cam_pts[:, :2] / cam_pts[:, 2:] * 100.0 + [24.5, 18.5]
    np.testing.assert_allclose(uv, pixels.numpy() + 0.5, atol=1e-3)
    assert torch.allclose(rays.directions.norm(dim=-1), torch.ones(3))


def test_one_frame_per_pixel():
    cam = _camera(3)
    rays = camera_rays(cam, torch.tensor([0, 2]), torch.tensor([[3, 4], [3, 4]]))
    torch.testing.assert_close(rays.origins, torch.tensor(cam.c2w[[0, 2], :3, 3]))
    single = camera_rays(cam, 2, torch.tensor([[3, 4]]))
    torch.testing.assert_close(rays[1].directions, single.directions[0])


def test_frame_rays_cover_the_image_row_by_row():
    cam = _camera()
    chunks = list(frame_rays(cam, 1, chunk=500))
    assert [len(r) for _, r in chunks] == [500, 500, 500, 420]
    flat = torch.cat([r.directions for _, r in chunks])
    k = 48 * 7 + 11  # row 7, column 11
    torch.testing.assert_close(flat[k], camera_rays(cam, 1, torch.tensor([[11, 7]])).directions[0])
    assert all_pixels(48, 40).tolist()[k] == [11, 7]


def test_mask_and_box_pixels():
    mask = np.zeros((5, 6), bool)
    mask[1, 4] = mask[3, 0] = mask[3, 2] = True
    assert mask_pixels(mask).tolist() == [[4, 1], [0, 3], [2, 3]]
    assert box_pixels(2, 3, 4, 5).tolist() == [[2, 3], [3, 3], [2, 4], [3, 4]]


def test_box_intersection():
    lo, hi = (-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)
    rays = Rays(
        torch.tensor([[0.0, 0.0, -3.0], [0.0, 5.0, -3.0], [0.0, 0.0, 0.0], [0.5, 0.0, -3.0]]),
        torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), dim=-1),
    )
    near, far, hit = intersect_box(rays, lo, hi, min_near=0.05)
    assert hit.tolist() == [True, False, True, True]
    torch.testing.assert_close(near[[0, 2, 3]], torch.tensor([2.0, 0.05, 2.0]))  # from inside: min_near
    torch.testing.assert_close(far[[0, 2, 3]], torch.tensor([4.0, 1.0, 4.0]))
    assert far[1] == near[1]  # a miss is an empty interval
    assert torch.isfinite(near).all() and torch.isfinite(far).all()
    # A diagonal ray through the centre crosses the box over its long diagonal.
    d = torch.nn.functional.normalize(torch.ones(1, 3), dim=-1)
    near, far, _ = intersect_box(Rays(-2 * d, d), lo, hi)
    torch.testing.assert_close(far - near, torch.tensor([2 * 3**0.5]))
