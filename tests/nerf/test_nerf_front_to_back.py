"""Inference's marcher and the per-frame head region: geneface.nerf.front_to_back and
geneface.nerf.footprint draw the same samples as marching every step of every ray."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geneface.core.records import Camera
from geneface.nerf.fields.talking_head import HeadField, HeadFieldConfig
from geneface.nerf.footprint import cell_centres, splat, surface_cells
from geneface.nerf.front_to_back import MarchConfig, render_front_to_back, step_size
from geneface.nerf.mlp import MLP, MLPConfig
from geneface.nerf.occupancy import OccupancyConfig, OccupancyGrid
from geneface.nerf.rays import all_pixels, camera_rays, intersect_box
from geneface.nerf.volume import render_packed


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    pass


LO, HI = torch.tensor([-0.3, -0.4, -0.2]), torch.tensor([0.3, 0.2, 0.4])


def _grid(seed: int = 0, resolution: int = 24) -> OccupancyGrid:
    """A lumpy occupied blob (a ball with random bumps and holes) in an empty box."""
    grid = OccupancyGrid(LO.tolist(), HI.tolist(), OccupancyConfig(resolution=resolution))
    g = torch.Generator().manual_seed(seed)
    r = resolution
    axis = (torch.arange(r) + 0.5) / r * 2 - 1
    d = (axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2).sqrt()
    noise = torch.rand(r, r, r, generator=g)
    grid.occupied.copy_((d < 0.55 + 0.25 * noise) & (noise > 0.1))
    return grid


def _camera(size: int, yaw: float, distance: float = 2.5, focal: float = None) -> Camera:
    c, s = math.cos(yaw), math.sin(yaw)
    c2w = np.eye(4)
    c2w[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]  # looks along +z rotated about y
    c2w[:3, 3] = -distance * c2w[:3, 2]
    return Camera(focal=focal or size * 3.0, width=size, height=size, c2w=c2w[None], cx=size / 2 - 1.3, cy=size / 2 + 0.7)


def _field(x: torch.Tensor, ray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    sigma = 40.0 * (1.0 + torch.sin(9.0 * x).sum(-1)) ** 2
    return sigma, (0.5 + 0.5 * torch.cos(5.0 * x)).clamp(0, 1)


@pytest.mark.parametrize("yaw,focal", [(0.0, None), (0.7, None), (2.4, 70.0)])
def test_footprint_covers_every_ray_with_a_sample_and_starts_before_it(yaw, focal):
    grid, size = _grid(), 40
    camera = _camera(size, yaw, focal=focal)
    rays = camera_rays(camera, 0, all_pixels(size, size))
    near, far, _ = intersect_box(rays, grid.lo, grid.hi)
    samples = grid.march(rays, near, far)  # every step of every ray
    half = float(((grid.hi - grid.lo) / grid.config.resolution).norm()) / 2
    fp = splat(cell_centres(surface_cells(grid.occupied), grid.lo, grid.hi), half,
               torch.as_tensor(camera.c2w[0], dtype=torch.float32), *camera_intrinsics(camera), size, size)
    with_samples = torch.zeros(len(rays), dtype=torch.bool)
    with_samples[samples.ray_index] = True
    assert with_samples.sum() > 100  # the blob is in view
    assert not (with_samples & ~fp.covered).any()
    first = torch.full((len(rays),), math.inf).scatter_reduce(0, samples.ray_index, samples.t - samples.deltas / 2,
                                                              reduce="amin")
    assert (fp.start[with_samples] <= first[with_samples] + 1e-5).all()
    # and it is a real saving: most uncovered pixels, a tight start
    assert fp.covered.float().mean() < 0.8


def camera_intrinsics(camera: Camera):
    cx, cy = camera.principal_point
    return float(camera.focal), float(cx), float(cy)


def test_surface_cells_are_the_occupied_cells_next_to_empty_ones():
    occupied = torch.zeros(6, 6, 6, dtype=torch.bool)
    occupied[1:5, 1:5, 1:5] = True
    surface = surface_cells(occupied)
    assert not surface[2:4, 2:4, 2:4].any()  # the inside
    assert surface[1, 2, 2] and surface[1, 1, 1] and surface.sum() == 64 - 8
    full = torch.ones(3, 3, 3, dtype=torch.bool)
    assert surface_cells(full).sum() == 26  # the border counts as empty


@pytest.mark.parametrize("window", [1, 3, 8])
def test_front_to_back_equals_marching_every_step(window):
    grid, size = _grid(1), 32
    camera = _camera(size, 0.4)
    rays = camera_rays(camera, 0, all_pixels(size, size))
    near, far, _ = intersect_box(rays, grid.lo, grid.hi)
    samples = grid.march(rays, near, far)
    sigma, rgb = _field(samples.points(rays), samples.ray_index)
    reference = render_packed(sigma, rgb, samples.deltas, samples.t, samples.ray_index, len(rays))
    config = MarchConfig(stride=1.0, window=window, min_transmittance=0.0)
    got_rgb, got_alpha = render_front_to_back(grid, _field, rays, near, far, None, config)
    torch.testing.assert_close(got_rgb, reference.rgb, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_alpha, reference.opacity, atol=1e-5, rtol=1e-4)
    # Starting each ray at its footprint's start draws the same samples.
    half = float(((grid.hi - grid.lo) / grid.config.resolution).norm()) / 2
    fp = splat(cell_centres(surface_cells(grid.occupied), grid.lo, grid.hi), half,
               torch.as_tensor(camera.c2w[0], dtype=torch.float32), *camera_intrinsics(camera), size, size)
    started = render_front_to_back(grid, _field, rays, near, far, fp.start, config)
    torch.testing.assert_close(started[0], got_rgb, atol=1e-6, rtol=0)


def test_early_stop_and_stride_evaluate_fewer_samples_for_nearly_the_same_picture():
    grid, size = _grid(2), 32
    rays = camera_rays(_camera(size, 1.1), 0, all_pixels(size, size))
    near, far, _ = intersect_box(rays, grid.lo, grid.hi)

    def run(stride, min_transmittance):
        n = [0]

        def field(x, ray):
            n[0] += len(x)
            return _field(x, ray)
        rgb, alpha = render_front_to_back(grid, field, rays, near, far, None,
                                          MarchConfig(stride=stride, min_transmittance=min_transmittance))
        return rgb, alpha, n[0]
    exact = run(1.0, 0.0)
    early = run(1.0, 1e-2)
    strided = run(2.0, 1e-2)
    assert early[2] < exact[2]
    assert strided[2] < 0.7 * early[2]
    assert (early[0] - exact[0]).abs().max() <= 1e-2 + 1e-6  # what a stopped ray could still add
    assert (strided[1] - exact[1]).abs().mean() < 0.05


def test_step_size_is_the_grids():
    grid = _grid()
    assert step_size(grid) == pytest.approx(0.6 / 24)


def test_head_field_for_frame_equals_forward():
    torch.manual_seed(0)
    field = HeadField(HeadFieldConfig(), cond_dim=16)
    for p in field.parameters():  # away from the near-zero initial tables, so every input counts
        torch.nn.init.normal_(p, std=0.3)
    cond, latent = torch.randn(16), torch.randn(4)
    x = torch.rand(200, 3) * 2 - 1
    d = torch.nn.functional.normalize(torch.randn(200, 3), dim=-1)
    sigma, rgb, _ = field(x, cond.expand(200, -1), d, latent.expand(200, -1))
    direction_term, fast = field.for_frame(cond, latent)
    with torch.no_grad():
        got_sigma, got_rgb = fast(x, direction_term(d))
    torch.testing.assert_close(got_sigma, sigma.detach(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got_rgb, rgb.detach(), rtol=1e-4, atol=1e-5)


def test_mlp_after_first_and_first_layer_columns_equal_forward():
    torch.manual_seed(1)
    mlp = MLP(10, 3, MLPConfig(hidden=16, layers=3, out_activation="sigmoid"))
    x = torch.randn(7, 10)
    a, b = mlp.first_layer_columns(6, 4)
    h = x[:, :6] @ a.T + x[:, 6:] @ b.T + mlp.linears[0].bias
    with torch.no_grad():
        torch.testing.assert_close(mlp.after_first(h), mlp(x))
    with pytest.raises(ValueError, match="skips"):
        MLP(4, 2, MLPConfig(layers=3, skips=(0,))).after_first(torch.zeros(1, 64))


def _image(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth shading with a hard edge at x = 20 and an opacity falling off at the bottom."""
    x, y = pixels[:, 0].float(), pixels[:, 1].float()
    rgb = torch.stack([0.3 + 0.005 * x, 0.5 + 0.2 * torch.sin(y / 18.0), 0.4 + 0.5 * (x > 20).float()], dim=-1)
    alpha = (1.0 - y / 128.0).clamp(0, 1)
    return rgb * alpha[:, None], alpha


def test_sparse_then_fill_renders_edges_and_interpolates_smooth_parts():
    from geneface.nerf.adaptive import render_sparse_then_fill

    side = 48
    pixels = all_pixels(side, side)
    pixels = pixels[(pixels[:, 0] - 24) ** 2 + (pixels[:, 1] - 24) ** 2 < 22**2]  # a disc, as a head region
    full_rgb, full_alpha = _image(pixels)
    asked = []

    def render(index):
        asked.append(index)
        return _image(pixels[index])
    rgb, alpha, n = render_sparse_then_fill(pixels, side, render, threshold=0.03)
    assert n == sum(len(a) for a in asked) and n < 0.45 * len(pixels)
    assert (rgb - full_rgb).abs().max() < 0.03 and (alpha - full_alpha).abs().max() < 0.03
    edge = pixels[:, 0] == 21  # between neighbours on either side of the hard edge
    assert torch.equal(rgb[edge], full_rgb[edge])  # drawn by their own rays, not blurred
    # A threshold below every difference casts every ray: the full picture exactly.
    rgb, alpha, n = render_sparse_then_fill(pixels, side, lambda k: _image(pixels[k]), threshold=-1.0)
    assert n == len(pixels) and torch.equal(rgb, full_rgb) and torch.equal(alpha, full_alpha)
