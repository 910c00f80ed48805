"""geneface.nerf.occupancy: the grid's updates and schedule, and marching that skips empty space."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geneface.core.records import Camera
from geneface.nerf.losses import psnr
from geneface.nerf.occupancy import OccupancyConfig, OccupancyGrid
from geneface.nerf.rays import all_pixels, camera_rays, intersect_box
from geneface.nerf.samplers import stratified
from geneface.nerf.volume import render_packed, render_padded


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    pass


LO, HI = (-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)
CENTRE, RADIUS = torch.tensor([0.15, -0.1, 0.05]), 0.35
STEP = 2.0 / 128


def density(x: torch.Tensor) -> torch.Tensor:
    """A solid ball with a thin soft edge, off centre in an otherwise empty box."""
    return 300.0 * torch.sigmoid((RADIUS - (x - CENTRE.to(x.device)).norm(dim=-1)) / 0.01)


def colour(x: torch.Tensor) -> torch.Tensor:
    return (0.5 + 0.5 * x).clamp(0, 1)  # varies over the surface, so misplaced samples show


def _scene(size: int = 32, device: str = "cpu"):
    c2w = np.eye(4)[None].copy()
    c2w[0, :3, 3] = [0.0, 0.0, -3.0]
    cam = Camera(focal=size / 2 / 0.42, width=size, height=size, c2w=c2w)  # the box fills the view
    rays = camera_rays(cam, 0, all_pixels(size, size, device))
    near, far, hit = intersect_box(rays, LO, HI)
    assert hit.all()
    return rays, near, far


def _trained_grid(config: OccupancyConfig, updates: int = 20, device: str = "cpu") -> OccupancyGrid:
    grid = OccupancyGrid(LO, HI, config).to(device)
    g = torch.Generator(device).manual_seed(0)
    for _ in range(updates):
        grid.update(density, generator=g)
    return grid


def _dense_render(rays, near, far):
    n = int(np.ceil(float((far - near).max()) / STEP))  # no coarser than the marching step
    t, edges = stratified(near, far, n)
    points = rays.at(t)
    return render_padded(density(points), colour(points), edges[:, 1:] - edges[:, :-1], t), t.numel()


@pytest.mark.parametrize("max_samples", [None, 16])
def test_marching_matches_dense_sampling_with_far_fewer_samples(max_samples):
    rays, near, far = _scene()
    reference, n_dense = _dense_render(rays, near, far)
    grid = _trained_grid(OccupancyConfig(resolution=32, step_size=STEP, max_samples=max_samples))
    samples = grid.march(rays, near, far)
    points = samples.points(rays)  # the only points the field is asked about
    out = render_packed(density(points), colour(points), samples.deltas, samples.t, samples.ray_index, len(rays))
    assert len(samples) <= n_dense / 4
    assert (out.rgb - reference.rgb).abs().mean() < 0.003
    assert psnr(out.rgb, reference.rgb) > 35
    torch.testing.assert_close(out.opacity.mean(), reference.opacity.mean(), atol=0.005, rtol=0)
    if max_samples:
        assert torch.bincount(samples.ray_index, minlength=len(rays)).max() <= max_samples


def test_packed_samples_are_grouped_by_ray_in_order_and_inside_occupied_cells():
    rays, near, far = _scene(16)
    grid = _trained_grid(OccupancyConfig(resolution=32, step_size=STEP), updates=3)
    s = grid.march(rays, near, far, perturb=True, generator=torch.Generator().manual_seed(0))
    assert (s.ray_index[1:] >= s.ray_index[:-1]).all()
    same = s.ray_index[1:] == s.ray_index[:-1]
    assert (s.t[1:][same] > s.t[:-1][same]).all()
    assert grid.lookup(s.points(rays)).all()
    assert (s.deltas > 0).all() and (s.deltas <= STEP + 1e-6).all()


def test_update_marks_the_ball_and_frees_what_the_field_drops():
    grid = _trained_grid(OccupancyConfig(resolution=16), updates=5)
    r = 16
    centres = torch.stack(torch.meshgrid(*[(torch.arange(r) + 0.5) / r * 2 - 1] * 3, indexing="ij"), dim=-1)
    d = (centres - CENTRE).norm(dim=-1)
    cell = 2.0 / r * 3**0.5 / 2  # half a cell diagonal
    assert grid.occupied[d < RADIUS - cell].all()  # cells wholly inside the ball
    assert not grid.occupied[d > RADIUS + cell].any()  # cells wholly outside
    # The field moves the ball away: the old cells' running maximum decays (x0.95 per
    # update) until it falls under the threshold, while the new ball's cells fill.
    moved = lambda x: density(x - torch.tensor([0.0, 0.0, 0.5]))
    old_only = grid.occupied & ((centres - CENTRE - torch.tensor([0.0, 0.0, 0.5])).norm(dim=-1) > RADIUS + cell)
    updates = 0
    while grid.occupied[old_only].any() and updates < 200:
        grid.update(moved)
        updates += 1
    assert 40 < updates < 120  # 300 * 0.95^k under min(threshold, mean density)
    assert grid.occupied[(centres - CENTRE - torch.tensor([0.0, 0.0, 0.5])).norm(dim=-1) < RADIUS - cell].all()


def test_schedule_warm_up_and_sampled_updates():
    grid = OccupancyGrid(LO, HI, OccupancyConfig(resolution=16, update_every=4, warmup_steps=8))
    assert grid.occupied.all()  # before any update everything is occupied
    seen = []

    def counting(x):
        seen.append(len(x))
        return density(x)

    updated = [grid.step(s, counting) for s in range(8)]
    assert updated == [s % 4 == 0 for s in range(8)]
    assert seen == [16**3, 16**3]  # warm-up: every cell evaluated, yet all kept occupied
    assert grid.occupied.all() and grid.density.max() > 100
    assert grid.step(8, counting) and not grid.step(9, counting)
    # After warm-up: a quarter of the cells at random plus up to as many occupied ones.
    assert 16**3 // 4 <= seen[2] <= 16**3 // 2
    assert 0 < grid.occupied_fraction < 0.1


def test_empty_grid_gives_no_samples():
    rays, near, far = _scene(8)
    grid = OccupancyGrid(LO, HI, OccupancyConfig(resolution=8))
    grid.update(lambda x: torch.zeros(len(x)))
    s = grid.march(rays, near, far)
    assert len(s) == 0
    out = render_packed(torch.zeros(0), torch.zeros(0, 3), s.deltas, s.t, s.ray_index, len(rays))
    assert out.opacity.abs().sum() == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_marching_on_cuda():
    rays, near, far = _scene(16, "cuda")
    grid = _trained_grid(OccupancyConfig(resolution=32, step_size=STEP), updates=5, device="cuda")
    s = grid.march(rays, near, far)
    cpu = _trained_grid(OccupancyConfig(resolution=32, step_size=STEP), updates=5)
    assert 0.9 < len(s) / len(cpu.march(*_scene(16))) < 1.1
