"""Rays from a dataset camera, and where they cross the head's box.

Pixels are `(x, y)` pairs, x to the right and y down, origin at the image's top-left corner
(docs/dataset_format.md). Integer pixel `(x, y)` covers `[x, x + 1) x [y, y + 1)`, so its
ray goes through its centre `(x + 0.5, y + 0.5)`. Camera axes are OpenCV's (x right, y
down, z forward); world space is the canonical head frame.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence, Union

import attrs
import numpy as np
import torch

from geneface.core.records import Camera

Frames = Union[int, torch.Tensor]


@attrs.frozen(eq=False)
class Rays:
    """N rays: `origins` (N, 3) and unit `directions` (N, 3) in world space."""

    origins: torch.Tensor
    directions: torch.Tensor

    def __len__(self) -> int:
        return self.origins.shape[0]

    def __getitem__(self, index) -> "Rays":
        return Rays(self.origins[index], self.directions[index])

    def at(self, t: torch.Tensor) -> torch.Tensor:
        """Points at distances `t` (N, S) along each ray -> (N, S, 3)."""
        return self.origins[:, None, :] + t[..., None] * self.directions[:, None, :]


def camera_rays(camera: Camera, frames: Frames, pixels: torch.Tensor, centres: bool = True) -> Rays:
    """Rays through `pixels` (N, 2) of frame `frames` (an index, or one index per pixel).

    `centres=True`: pixels are integer indices and rays pass through their centres; with
    False, `pixels` are continuous image coordinates used as they are. Output on the
    device of `pixels`, float32.
    """
    device = pixels.device
    xy = pixels.to(torch.float32) + (0.5 if centres else 0.0)
    cx, cy = camera.principal_point
    d_cam = torch.stack(
        [(xy[:, 0] - cx) / camera.focal, (xy[:, 1] - cy) / camera.focal, torch.ones_like(xy[:, 0])], dim=-1
    )
    c2w = torch.as_tensor(camera.c2w, device=device)[torch.as_tensor(frames, device=device)]
    if c2w.dim() == 2:  # one frame for every pixel
        c2w = c2w.expand(len(xy), 4, 4)
    directions = torch.einsum("nij,nj->ni", c2w[:, :3, :3], d_cam)
    return Rays(c2w[:, :3, 3].contiguous(), torch.nn.functional.normalize(directions, dim=-1))


def all_pixels(width: int, height: int, device: Union[str, torch.device] = "cpu") -> torch.Tensor:
    """Every pixel (H * W, 2) as (x, y), row by row: `values.reshape(H, W, C)` is the image."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij"
    )
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)


def frame_rays(
    camera: Camera, frame: int, chunk: int = 4096, device: Union[str, torch.device] = "cpu"
) -> Iterator[tuple[slice, Rays]]:
    """All rays of one frame in chunks, as `(slice into the H * W row-major pixels, rays)`."""
    pixels = all_pixels(camera.width, camera.height, device)
    for start in range(0, len(pixels), chunk):
        part = slice(start, min(start + chunk, len(pixels)))
        yield part, camera_rays(camera, frame, pixels[part])


def mask_pixels(mask: Union[np.ndarray, torch.Tensor], device: Union[str, torch.device, None] = None) -> torch.Tensor:
    """Pixels (N, 2) as (x, y) where the H x W `mask` is true, row by row."""
    ys, xs = torch.nonzero(torch.as_tensor(mask, device=device).bool(), as_tuple=True)
    return torch.stack([xs, ys], dim=-1)


def box_pixels(x0: int, y0: int, x1: int, y1: int, device: Union[str, torch.device] = "cpu") -> torch.Tensor:
    """Pixels (N, 2) of the box `[x0, x1) x [y0, y1)`, row by row."""
    p = all_pixels(x1 - x0, y1 - y0, device)
    return p + torch.tensor([x0, y0], device=device)


def intersect_box(
    rays: Rays, lo: Sequence[float], hi: Sequence[float], min_near: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where each ray is inside the axis-aligned box `[lo, hi]`: `(near, far, hit)`, each (N,).

    `near` is at least `min_near` (a camera inside the box starts there). Rays that miss get
    `far == near`: an empty interval, so samplers put nothing there.
    """
    o, d = rays.origins, rays.directions
    lo_t = torch.as_tensor(lo, dtype=o.dtype, device=o.device)
    hi_t = torch.as_tensor(hi, dtype=o.dtype, device=o.device)
    # Axis-parallel rays: a tiny same-signed component instead of 0 keeps the slabs finite.
    tiny = torch.full_like(d, 1e-12)
    d = torch.where(d.abs() < 1e-12, torch.where(d < 0, -tiny, tiny), d)
    t1, t2 = (lo_t - o) / d, (hi_t - o) / d
    near = torch.minimum(t1, t2).amax(dim=-1).clamp(min=min_near)
    far = torch.maximum(t1, t2).amin(dim=-1)
    hit = far > near
    return near, torch.maximum(far, near), hit


@attrs.frozen(eq=False)
class RayBatch:
    """A training batch of rays drawn from a person's frames: what a trainable renderer's
    loss gets (geneface.training.renderer_contract). F frames, N rays.

    `flat` is each ray's pixel as y * size + x, `slot` its frame's row among the F, `frame`
    its dataset frame; per frame: `landmarks` ((F, 68, 3), or (F, W, 68, 3) for a renderer
    that reads a window of neighbouring frames), `latent` (the frame's row among the training
    frames) and `c2w`; per ray: `target` colour in [0, 1], mask `label` and `lip` (inside the
    mouth's box in the lip phase). `clip`: per frame, the clip of a person of several clips
    it comes from (whose plate is behind it; None: one video). `phase` is the stage of the run
    the rays were drawn for; `rays` are set on the training device (`with_rays`)."""

    phase: str
    size: int
    flat: torch.Tensor
    slot: torch.Tensor
    frame: torch.Tensor
    landmarks: torch.Tensor
    latent: torch.Tensor
    c2w: torch.Tensor
    target: torch.Tensor
    label: torch.Tensor
    lip: torch.Tensor
    clip: Optional[torch.Tensor] = None
    rays: Optional[Rays] = None

    def __len__(self) -> int:
        return self.flat.shape[0]

    @property
    def ray_clip(self) -> Optional[torch.Tensor]:
        """(N,) each ray's clip, or None for one video."""
        return None if self.clip is None else self.clip[self.slot]

    @property
    def pixels(self) -> torch.Tensor:
        """(N, 2) as (x, y)."""
        return torch.stack([self.flat % self.size, self.flat // self.size], dim=-1)

    def to(self, device: Union[str, torch.device]) -> "RayBatch":
        moved = {f.name: getattr(self, f.name).to(device, non_blocking=True)
                 for f in attrs.fields(RayBatch) if isinstance(getattr(self, f.name), torch.Tensor)}
        return attrs.evolve(self, **moved)

    def with_rays(self, camera: Camera) -> "RayBatch":
        """The batch with its camera rays (on the device of its tensors)."""
        return attrs.evolve(self, rays=camera_rays(camera, self.frame, self.pixels))
