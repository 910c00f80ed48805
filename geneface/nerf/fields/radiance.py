"""NeRF's own field and sampling, the building block of `vanilla_nerf`'s head and torso.

- `RadianceField`: the dense MLP of NeRF (Mildenhall et al.): frequency-encoded position
  and a condition -> `layers` x `hidden` ReLU trunk (the input again after `skip`) -> density
  (softplus) and a feature; (feature, encoded view direction, condition) -> rgb (sigmoid).
- `coarse_fine`: NeRF's two passes along rays: stratified samples through the coarse
  network, then importance samples from its weights, all of them through the fine one.
- `valid_skip`: the attrs validator of a config's `skip` (-1 or a layer before the last).

Every sample goes through the whole MLP: no occupancy grid, no grid encoding.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from geneface.nerf.encodings import FrequencyEncoding
from geneface.nerf.mlp import MLP, MLPConfig
from geneface.nerf.samplers import importance, intervals, merge, stratified
from geneface.nerf.volume import Rendered, render_padded


def valid_skip(inst, attribute, value):
    if value >= 0 and not value < inst.layers - 1:
        raise ValueError(f"{attribute.name} must be -1 (none) or a layer index 0 to {inst.layers - 2}, got {value}")


class RadianceField(nn.Module):
    """NeRF's MLP: (enc(x), cond) -> `layers` x `hidden` (ReLU, the input again after `skip`)
    -> sigma (softplus) and a feature; (feature, enc(view direction), cond) -> rgb (sigmoid).
    `dir_freqs` None: no view direction (the colour depends on position and condition only)."""

    def __init__(self, hidden: int, layers: int, skip: int, colour_hidden: int, pos_freqs: int,
                 dir_freqs: Optional[int], cond_dim: int):
        super().__init__()
        self.position = FrequencyEncoding(3, pos_freqs)
        self.direction = FrequencyEncoding(3, dir_freqs) if dir_freqs is not None else None
        dir_dim = self.direction.out_dim if self.direction is not None else 0
        skips = (skip,) if skip >= 0 else ()
        self.trunk = MLP(self.position.out_dim + cond_dim, hidden,
                         MLPConfig(hidden=hidden, layers=layers, skips=skips, out_activation="relu"))
        self.sigma = nn.Linear(hidden, 1)
        self.feature = nn.Linear(hidden, hidden)
        self.colour = MLP(hidden + dir_dim + cond_dim, 3,
                          MLPConfig(hidden=colour_hidden, layers=2, out_activation="sigmoid"))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, directions: Optional[torch.Tensor] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Points (M, 3) in about [-1, 1], their condition (M, C) and view directions (M, 3) ->
        sigma (M,) (per unit of the field's coordinates), rgb (M, 3)."""
        h = self.trunk(torch.cat([self.position(x), cond], dim=-1))
        sigma = F.softplus(self.sigma(h)[:, 0])
        parts = [self.feature(h)] + ([self.direction(directions)] if self.direction is not None else []) + [cond]
        return sigma, self.colour(torch.cat(parts, dim=-1))


def _padded(field: RadianceField, points: torch.Tensor, cond: torch.Tensor, directions: Optional[torch.Tensor]
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate a field on (N, S, 3) points with per-ray cond (N, C) and directions (N, 3)."""
    n, s = points.shape[:2]
    c = cond[:, None].expand(n, s, cond.shape[-1]).reshape(n * s, -1)
    d = directions[:, None].expand(n, s, 3).reshape(n * s, 3) if directions is not None else None
    sigma, rgb = field(points.reshape(n * s, 3), c, d)
    return sigma.reshape(n, s), rgb.reshape(n, s, 3)


def coarse_fine(coarse: RadianceField, fine: Optional[RadianceField], n_coarse: int, n_fine: int,
                to_field: Callable[[torch.Tensor], torch.Tensor], near: torch.Tensor, far: torch.Tensor, unit: float,
                cond: torch.Tensor, directions: Optional[torch.Tensor], perturb: bool) -> tuple[Rendered, Rendered]:
    """NeRF's two passes along N rays between `near` and `far` (N,): `n_coarse` stratified
    samples through `coarse`, then `n_fine` more drawn from its weights and all of them
    through `fine` (or `coarse` again). `to_field(t (N, S))` gives the field's points
    (N, S, 3); `unit` is the length of one field unit along the ray (densities are per field
    unit). (coarse, fine) results; the same twice with `n_fine == 0`."""
    t, edges = stratified(near, far, n_coarse, perturb=perturb)
    sigma, rgb = _padded(coarse, to_field(t), cond, directions)
    first = render_padded(sigma, rgb, (edges[:, 1:] - edges[:, :-1]) / unit, t)
    if n_fine == 0:
        return first, first
    t_all = merge(t, importance(edges, first.weights, n_fine, perturb=perturb))
    sigma, rgb = _padded(fine if fine is not None else coarse, to_field(t_all), cond, directions)
    return first, render_padded(sigma, rgb, intervals(t_all, near, far) / unit, t_all)
