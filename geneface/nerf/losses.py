"""Losses and metrics of renderer training.

- `photometric`: mean squared error of colours, optionally weighted per pixel (the mouth
  region counts more; RAD-NeRF and ER-NeRF weight it up).
- `psnr`: the image metric on a batch of rays (logged every training step), from the same
  mean squared error; the definition and cap of geneface.metrics.image.psnr, in torch.
- `opacity_entropy`: pushes each ray's accumulated opacity to 0 or 1, so the head has a
  crisp silhouette over the torso and background instead of a semi-transparent haze.
- `ambient_regulariser`: keeps the ambient coordinate (the 2-D code of the dynamics) small.
- `patch_pixels`, `as_patch`: render a square patch (the lips) so an image-space loss
  (perceptual, e.g. LPIPS) can compare it with the real one.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from geneface.metrics.image import PSNR_MAX
from geneface.nerf.rays import box_pixels


def photometric(pred: torch.Tensor, target: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean squared error of (N, C) colours; with per-pixel `weights` (N,), the weighted mean."""
    err = (pred - target).square().mean(dim=-1)
    if weights is None:
        return err.mean()
    return (err * weights).sum() / weights.sum().clamp(min=1e-12)


def psnr(pred: torch.Tensor, target: torch.Tensor, max_value: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of colours in [0, max_value]: `10 log10(max^2 / MSE)`,
    capped at `PSNR_MAX` (100 dB) for identical colours, as geneface.metrics.image.psnr (the
    one definition; this one stays on the tensors' device)."""
    mse = (pred - target).square().mean()
    return 10.0 * torch.log10(max_value**2 / mse.clamp(min=max_value**2 * 10.0 ** (-PSNR_MAX / 10.0)))


def opacity_entropy(opacity: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean binary entropy (nats) of per-ray opacity: 0 at 0 or 1, largest (ln 2) at 0.5."""
    a = opacity.clamp(eps, 1.0 - eps)
    return -(a * torch.log(a) + (1.0 - a) * torch.log(1.0 - a)).mean()


def ambient_regulariser(coords: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean absolute ("l1") or squared ("l2") value of ambient coordinates (..., D)."""
    if kind == "l1":
        return coords.abs().mean()
    if kind == "l2":
        return coords.square().mean()
    raise ValueError(f"ambient_regulariser kind must be l1 or l2, got {kind!r}")


def patch_pixels(
    centre: tuple[float, float],
    size: int,
    width: int,
    height: int,
    jitter: int = 0,
    generator: Optional[torch.Generator] = None,
    device: Union[str, torch.device] = "cpu",
) -> torch.Tensor:
    """Pixels (size * size, 2) as (x, y), row by row, of a `size` square centred on `centre`
    (e.g. the mouth's landmarks), shifted by up to `jitter` px at random and kept inside the
    image."""
    x0, y0 = round(centre[0] - size / 2), round(centre[1] - size / 2)
    if jitter:
        dx, dy = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
        x0, y0 = x0 + dx, y0 + dy
    x0 = min(max(x0, 0), width - size)
    y0 = min(max(y0, 0), height - size)
    return box_pixels(x0, y0, x0 + size, y0 + size, device)


def as_patch(values: torch.Tensor, size: int) -> torch.Tensor:
    """Per-pixel values (size * size, C) of `patch_pixels` -> an image batch (1, C, size, size)."""
    return values.reshape(size, size, -1).permute(2, 0, 1)[None]
