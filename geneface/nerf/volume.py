"""Volume rendering of density and colour samples, and compositing of the rendered layers.

Each sample stands for an interval of length `delta` of its ray with constant density
`sigma` and colour `rgb`; its opacity is `1 - exp(-sigma * delta)` and its weight that
opacity times the transmittance of everything before it. Two layouts:

- padded: N rays x S samples (`render_padded`), from `samplers`;
- packed: M samples with their ray's index (`render_packed`), from occupancy-grid
  marching, where every ray keeps a different number of samples. Samples must be grouped
  by ray and in order along it, as `OccupancyGrid.march` returns them.

Colours come out premultiplied (sum of weight x colour, nothing behind the last sample),
which is what `composite` layers: head over torso over the background plate.
"""

from __future__ import annotations

from typing import Sequence

import attrs
import torch


@attrs.frozen(eq=False)
class Rendered:
    """Per ray: `rgb` (N, 3) premultiplied, `opacity` (N,) in [0, 1], `depth` (N,) the
    weight-averaged distance times opacity (divide by opacity for the surface distance);
    `weights` per sample in the layout of the input, for importance sampling and losses."""

    rgb: torch.Tensor
    opacity: torch.Tensor
    depth: torch.Tensor
    weights: torch.Tensor


def render_padded(sigma: torch.Tensor, rgb: torch.Tensor, deltas: torch.Tensor, t: torch.Tensor) -> Rendered:
    """`sigma`, `deltas`, `t` (N, S) and `rgb` (N, S, 3) -> per-ray results."""
    tau = sigma * deltas
    # Transmittance before sample i: exp(-sum of tau over samples < i) (exclusive cumsum).
    before = torch.cumsum(tau, dim=-1) - tau
    weights = torch.exp(-before) * (1.0 - torch.exp(-tau))
    return Rendered(
        rgb=(weights[..., None] * rgb).sum(dim=1),
        opacity=weights.sum(dim=1),
        depth=(weights * t).sum(dim=1),
        weights=weights,
    )


def render_packed(
    sigma: torch.Tensor,
    rgb: torch.Tensor,
    deltas: torch.Tensor,
    t: torch.Tensor,
    ray_index: torch.Tensor,
    n_rays: int,
) -> Rendered:
    """`sigma`, `deltas`, `t`, `ray_index` (M,) and `rgb` (M, 3) -> per-ray results for
    `n_rays` rays; a ray with no samples renders as empty (colour 0, opacity 0)."""
    tau = sigma * deltas
    # Exclusive cumsum within each ray: one running sum over all samples, minus its value at
    # the ray's first sample. In float64 so a long run of large sums leaves no rounding.
    run = torch.cumsum(tau.double(), dim=0) - tau.double()
    counts = torch.bincount(ray_index, minlength=n_rays)
    first = (torch.cumsum(counts, dim=0) - counts)[ray_index]
    before = (run - run[first]).to(tau.dtype)
    weights = torch.exp(-before) * (1.0 - torch.exp(-tau))
    zeros = tau.new_zeros(n_rays)
    return Rendered(
        rgb=tau.new_zeros(n_rays, 3).index_add(0, ray_index, weights[:, None] * rgb),
        opacity=zeros.index_add(0, ray_index, weights),
        depth=zeros.index_add(0, ray_index, weights * t),
        weights=weights,
    )


def composite(layers: Sequence[tuple[torch.Tensor, torch.Tensor]], background: torch.Tensor) -> torch.Tensor:
    """Layers front to back over `background` (N, 3): e.g. `[(head_rgb, head_alpha),
    (torso_rgb, torso_alpha)]`. Each layer's `rgb` (N, 3) is premultiplied by its `alpha`
    (N,), as volume rendering gives it; a straight-colour layer multiplies first."""
    out = background
    for rgb, alpha in reversed(layers):
        out = rgb + (1.0 - alpha)[..., None] * out
    return out
