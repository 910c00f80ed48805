"""Where to evaluate a field along each ray: stratified and importance (inverse-CDF) samples.

Padded layout: N rays x S samples. Each sample stands for an interval of the ray, and
volume rendering integrates over those intervals (`deltas`). The stratified sampler's
intervals are its bins (`edges`); for any sorted set of samples, `intervals` splits the ray
at the midpoints between neighbours.

`perturb=True` (training) draws random positions inside each bin; `perturb=False`
(evaluation) is deterministic, so a rendered frame does not change between calls.
"""

from __future__ import annotations

from typing import Optional

import torch


def stratified(
    near: torch.Tensor,
    far: torch.Tensor,
    n_samples: int,
    perturb: bool = False,
    generator: Optional[torch.Generator] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n_samples` per ray between `near` and `far` (N,): `(t (N, S), edges (N, S + 1))`.

    Bin `i` is `[edges[:, i], edges[:, i + 1])`; its sample is at its middle, or uniformly
    random inside it with `perturb`.
    """
    u = torch.linspace(0.0, 1.0, n_samples + 1, device=near.device, dtype=near.dtype)
    edges = near[:, None] + (far - near)[:, None] * u
    width = edges[:, 1:] - edges[:, :-1]
    if perturb:
        offset = torch.rand(width.shape, generator=generator, device=near.device, dtype=near.dtype)
    else:
        offset = torch.full_like(width, 0.5)
    return edges[:, :-1] + offset * width, edges


def importance(
    edges: torch.Tensor,
    weights: torch.Tensor,
    n_samples: int,
    perturb: bool = False,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """`n_samples` per ray drawn from the piecewise-constant density of `weights` over the bins
    `edges` (N, S + 1) (e.g. the coarse pass's volume-rendering weights): sorted t (N, n).

    Inverse-CDF sampling on evenly spread quantiles (jittered with `perturb`), so more samples
    land where the weights are high. A small floor on the weights keeps every bin reachable
    and an all-zero ray uniform. Positions carry no gradient.
    """
    weights = weights.detach() + 1e-5
    edges = edges.detach()
    cdf = torch.cumsum(weights / weights.sum(-1, keepdim=True), dim=-1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf.clamp(max=1.0)], dim=-1)  # (N, S + 1)
    n = edges.shape[0]
    q = torch.arange(n_samples, device=edges.device, dtype=edges.dtype).expand(n, n_samples)
    jitter = torch.rand(q.shape, generator=generator, device=edges.device, dtype=edges.dtype) if perturb else 0.5
    u = ((q + jitter) / n_samples).contiguous()  # sorted, in (0, 1)
    above = torch.searchsorted(cdf, u, right=True).clamp(1, cdf.shape[-1] - 1)
    below = above - 1
    c0, c1 = cdf.gather(1, below), cdf.gather(1, above)
    e0, e1 = edges.gather(1, below), edges.gather(1, above)
    frac = ((u - c0) / (c1 - c0).clamp(min=1e-12)).clamp(0.0, 1.0)
    return e0 + frac * (e1 - e0)


def merge(*ts: torch.Tensor) -> torch.Tensor:
    """Sorted union of sample sets (N, S_i) along each ray (the coarse + fine pass)."""
    return torch.sort(torch.cat(ts, dim=-1), dim=-1).values


def intervals(t: torch.Tensor, near: torch.Tensor, far: torch.Tensor) -> torch.Tensor:
    """Interval lengths (N, S) for sorted samples `t`: the ray `[near, far]` split at the
    midpoints between neighbouring samples, so the intervals tile it exactly."""
    mids = 0.5 * (t[:, 1:] + t[:, :-1])
    bounds = torch.cat([near[:, None], mids, far[:, None]], dim=-1)
    return bounds[:, 1:] - bounds[:, :-1]
