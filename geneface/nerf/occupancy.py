"""An occupancy grid over the head's box, and ray marching that skips its empty cells.

Most of the box around a head is empty air. The grid keeps, per cell, a running maximum of
the field's density (decayed at every update, so cells the field has emptied are released)
and a boolean "occupied" grid from it. Marching steps along each ray at a fixed step,
looks the occupancy of every step up (a cheap integer gather, no field evaluation) and
returns only the samples in occupied cells, packed with their ray's index: the field is
evaluated on those alone. Pure PyTorch, CPU and CUDA.

    grid = OccupancyGrid(lo, hi, OccupancyConfig())
    grid.step(step, lambda x: field.density(x, condition))   # in the training loop
    samples = grid.march(rays, near, far, perturb=True)
    out = render_packed(sigma, rgb, samples.deltas, samples.t, samples.ray_index, len(rays))
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import attrs
import torch
from torch import nn

from geneface.nerf.rays import Rays

DensityFn = Callable[[torch.Tensor], torch.Tensor]


@attrs.define
class OccupancyConfig:
    """Grid and marching settings; defaults follow RAD-NeRF's (METHOD.md, renderer 2)."""

    resolution: int = attrs.field(default=128, validator=attrs.validators.gt(1))
    # A cell is occupied when its density passes min(threshold, mean density of the grid):
    # the mean keeps a young, everywhere-faint field from being culled to nothing.
    threshold: float = 10.0
    decay: float = 0.95  # per update; the running max forgets densities the field dropped
    update_every: int = 16  # training steps between updates (`step`)
    # Until then every cell counts as occupied (the field is still forming) and every update
    # evaluates all cells; afterwards an update evaluates `sample_fraction` of the cells at
    # random plus as many occupied ones.
    warmup_steps: int = 256
    sample_fraction: float = attrs.field(default=0.25, validator=[attrs.validators.gt(0), attrs.validators.le(1)])
    # Marching: the step along the ray in world units (None: the box's largest side divided by
    # the resolution), and an optional cap on samples per ray, spread evenly over the ray's
    # occupied stretch (RAD-NeRF: 16).
    step_size: Optional[float] = None
    max_samples: Optional[int] = None
    chunk: int = 1 << 18  # points per call of the density function in an update


@attrs.frozen(eq=False)
class PackedSamples:
    """M samples: their ray (`ray_index`, grouped by ray, in order along it), distance `t`
    and interval length `deltas`, each (M,)."""

    ray_index: torch.Tensor
    t: torch.Tensor
    deltas: torch.Tensor

    def __len__(self) -> int:
        return self.t.shape[0]

    def points(self, rays: Rays) -> torch.Tensor:
        """World positions (M, 3)."""
        return rays.origins[self.ray_index] + self.t[:, None] * rays.directions[self.ray_index]


class OccupancyGrid(nn.Module):
    """Occupancy of the box `[lo, hi]` on a `resolution^3` grid; state is saved with the model."""

    def __init__(self, lo: Sequence[float], hi: Sequence[float], config: Optional[OccupancyConfig] = None):
        super().__init__()
        self.config = c = config or OccupancyConfig()
        r = c.resolution
        self.register_buffer("lo", torch.as_tensor(lo, dtype=torch.float32))
        self.register_buffer("hi", torch.as_tensor(hi, dtype=torch.float32))
        self.register_buffer("density", torch.zeros(r, r, r))
        self.register_buffer("occupied", torch.ones(r, r, r, dtype=torch.bool))

    @property
    def occupied_fraction(self) -> float:
        return float(self.occupied.float().mean())

    def _cell_points(self, cells: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        """A random point inside each flat cell index: the jitter lets repeated updates see
        the whole cell, not only its centre, so thin surfaces are not missed."""
        r = self.config.resolution
        ijk = torch.stack([cells // (r * r), (cells // r) % r, cells % r], dim=-1).float()
        jitter = torch.rand(ijk.shape, generator=generator, device=ijk.device)
        return self.lo + (ijk + jitter) / r * (self.hi - self.lo)

    @torch.no_grad()
    def update(self, density_fn: DensityFn, all_cells: bool = True, generator: Optional[torch.Generator] = None):
        """Decay the density grid, fold in the field's density at a point of each chosen cell
        (all of them, or a random share plus occupied ones), and re-threshold."""
        c, flat = self.config, self.density.view(-1)
        n = flat.numel()
        if all_cells:
            cells = torch.arange(n, device=flat.device)
        else:
            k = max(1, int(n * c.sample_fraction))
            cells = torch.randint(n, (k,), generator=generator, device=flat.device)
            occupied = torch.nonzero(self.occupied.view(-1)).squeeze(1)
            if len(occupied):
                pick = torch.randint(len(occupied), (min(k, len(occupied)),), generator=generator, device=flat.device)
                cells = torch.cat([cells, occupied[pick]])
        flat.mul_(c.decay)
        for part in cells.split(c.chunk):
            sigma = density_fn(self._cell_points(part, generator)).reshape(-1).to(flat.dtype)
            flat.scatter_reduce_(0, part, sigma, reduce="amax")
        threshold = min(c.threshold, float(flat.mean()))
        self.occupied.copy_(self.density > threshold)

    def step(self, step: int, density_fn: DensityFn, generator: Optional[torch.Generator] = None) -> bool:
        """The training schedule: update every `update_every` steps (all cells during warm-up,
        a sample after), everything occupied during warm-up. True when it updated."""
        c = self.config
        if step % c.update_every:
            return False
        warm = step < c.warmup_steps
        self.update(density_fn, all_cells=warm, generator=generator)
        if warm:
            self.occupied.fill_(True)
        return True

    def lookup(self, points: torch.Tensor) -> torch.Tensor:
        """Occupancy of the cells holding `points` (..., 3); outside the box is empty."""
        r = self.config.resolution
        u = (points - self.lo) / (self.hi - self.lo)
        inside = ((u >= 0) & (u <= 1)).all(dim=-1)
        ijk = (u * r).long().clamp(0, r - 1)
        flat = (ijk[..., 0] * r + ijk[..., 1]) * r + ijk[..., 2]
        return self.occupied.view(-1)[flat] & inside

    @torch.no_grad()
    def march(
        self,
        rays: Rays,
        near: torch.Tensor,
        far: torch.Tensor,
        perturb: bool = False,
        generator: Optional[torch.Generator] = None,
    ) -> PackedSamples:
        """Samples of `rays` between `near` and `far` (N,) in occupied cells only.

        Steps of `step_size` from `near` (the last one cut at `far`); a step is kept when the
        cell at its sample (the step's middle, or a random point in it with `perturb`) is
        occupied. With `max_samples`, each ray instead gets up to that many samples spread
        evenly over its occupied steps (each standing for an equal share of their length).
        """
        c = self.config
        step = c.step_size or float((self.hi - self.lo).max()) / c.resolution
        n_steps = max(1, math.ceil(float((far - near).max()) / step)) if len(rays) else 1
        k = torch.arange(n_steps + 1, device=near.device, dtype=near.dtype)
        edges = torch.minimum(near[:, None] + k * step, far[:, None])  # (N, S + 1)
        lengths = edges[:, 1:] - edges[:, :-1]
        if perturb:
            offset = torch.rand(lengths.shape, generator=generator, device=near.device, dtype=near.dtype)
        else:
            offset = torch.full_like(lengths, 0.5)
        t = edges[:, :-1] + offset * lengths
        keep = (lengths > 0) & self.lookup(rays.at(t))
        if c.max_samples is None:
            ray_index, j = torch.nonzero(keep, as_tuple=True)  # row-major: grouped by ray, in order
            return PackedSamples(ray_index, t[ray_index, j], lengths[ray_index, j])
        return self._spread(edges, lengths * keep, keep.sum(dim=1), perturb, generator)

    def _spread(self, edges, occupied_lengths, n_occupied, perturb, generator) -> PackedSamples:
        """Up to `max_samples` per ray at even spacing in occupied arc length."""
        n_rays, cap = edges.shape[0], self.config.max_samples
        total = occupied_lengths.sum(dim=1)
        n = n_occupied.clamp(max=cap)  # never more samples than occupied steps
        cum = torch.cat([total.new_zeros(n_rays, 1), torch.cumsum(occupied_lengths, dim=1)], dim=1)
        q = torch.arange(cap, device=edges.device, dtype=edges.dtype).expand(n_rays, cap)
        if perturb:
            jitter = torch.rand(q.shape, generator=generator, device=edges.device, dtype=edges.dtype)
        else:
            jitter = torch.full_like(q, 0.5)
        share = total / n.clamp(min=1)
        s = (q + jitter) * share[:, None]  # arc length into the occupied stretch
        # The occupied step holding arc length s, then the same distance into that step.
        j = (torch.searchsorted(cum, s.contiguous(), right=True) - 1).clamp(0, occupied_lengths.shape[1] - 1)
        t = edges.gather(1, j) + (s - cum.gather(1, j))
        valid = q < n[:, None]
        ray_index, slot = torch.nonzero(valid, as_tuple=True)
        return PackedSamples(ray_index, t[ray_index, slot], share[ray_index])
