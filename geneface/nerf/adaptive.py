"""Casting a quarter of the head's rays and interpolating the rest where the picture is
smooth: adaptive sampling in image space, for large frames.

The pixels with both coordinates even are rendered first. Every other pixel lies midway
between two or four of them (its row's, its column's or its diagonal neighbours); where
those agree within `threshold` in every channel (premultiplied colour and opacity), the
pixel gets their mean, otherwise (an edge, a highlight, a neighbour off the head) its own
ray. So skin, hair masses and background are a quarter of the work, and edges keep every
ray. The test is on the neighbours only: a feature thinner than two pixels that both
neighbours miss is lost, which is why this is for large frames (at 512 px two pixels are a
quarter of a millimetre of face) and off by default at small sizes.
"""

from __future__ import annotations

from typing import Callable

import torch

# indices into the pixel list (K,) -> premultiplied rgb (K, 3), opacity (K,)
RenderAt = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def render_sparse_then_fill(pixels: torch.Tensor, side: int, render: RenderAt, threshold: float
                            ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Colour and opacity of every pixel of `pixels` ((N, 2) integer x, y in a `side` x `side`
    frame), each rendered by `render` or interpolated as the module says: (rgb (N, 3),
    opacity (N,), how many were rendered)."""
    n, device = len(pixels), pixels.device
    rgba = torch.zeros(n, 4, device=device)
    if n == 0:
        return rgba[:, :3], rgba[:, 3], 0
    x, y = pixels[:, 0], pixels[:, 1]
    slot = torch.full((side * side,), -1, dtype=torch.long, device=device)
    slot[y * side + x] = torch.arange(n, device=device)
    coarse = ((x % 2) == 0) & ((y % 2) == 0)
    first = torch.nonzero(coarse).squeeze(1)
    rendered = torch.zeros(n, dtype=torch.bool, device=device)
    if len(first):
        rgb, alpha = render(first)
        rgba[first, :3], rgba[first, 3] = rgb, alpha
        rendered[first] = True
    rest = torch.nonzero(~coarse).squeeze(1)
    xr, yr = x[rest], y[rest]
    ox, oy = xr % 2, yr % 2
    # The even neighbours it lies between: left/right, up/down or the four diagonals
    # (the two-neighbour cases list each twice, which leaves their mean unchanged).
    nx = torch.stack([xr - ox, xr + ox, xr - ox, xr + ox])
    ny = torch.stack([yr - oy, yr - oy, yr + oy, yr + oy])
    inside = (nx >= 0) & (nx < side) & (ny >= 0) & (ny < side)
    neighbour = torch.where(inside, slot[(ny.clamp(0, side - 1) * side + nx.clamp(0, side - 1))],
                            torch.full_like(nx, -1))
    known = (neighbour >= 0).all(0)
    known[known.clone()] = rendered[neighbour[:, known]].all(0)
    values = rgba[neighbour.clamp(min=0)]  # (4, R, 4)
    spread = (values.amax(0) - values.amin(0)).amax(-1)
    fill = known & (spread <= threshold)
    rgba[rest[fill]] = values[:, fill].mean(0)
    own = rest[~fill]
    if len(own):
        rgb, alpha = render(own)
        rgba[own, :3], rgba[own, 3] = rgb, alpha
    return rgba[:, :3], rgba[:, 3], len(first) + len(own)
