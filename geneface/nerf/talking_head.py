"""A whole talking-head radiance field: landmark condition, head field, torso layer, occupancy
grid and everything a frame needs that is not motion (plate, camera, regions), in one module.

Its state dict is the renderer's checkpoint: weights plus buffers for the background plate,
the camera (focal, principal point, the training video's poses), where head and torso can
appear, the landmark statistics, the head's box and occupancy bits. So a checkpoint renders
on a machine that never saw the dataset.

A frame (`render_frame`): head rays only where a head was ever seen in training (the
`head_region` image), marched through the occupancy grid (at most `max_samples` samples per
ray); the torso layer only where a person was seen (`person_region`); head over torso over
the plate there, the plate as it is everywhere else.
"""

from __future__ import annotations

from typing import Optional

import attrs
import numpy as np
import torch
from torch import nn

from geneface.core.records import Camera
from geneface.nerf.condition import ConditionConfig, LandmarkCondition
from geneface.nerf.fields.talking_head import HeadField, HeadFieldConfig
from geneface.nerf.fields.torso import POSE_DIM, TorsoField, TorsoFieldConfig
from geneface.nerf.occupancy import OccupancyConfig, OccupancyGrid
from geneface.nerf.rays import Rays, camera_rays, intersect_box
from geneface.nerf.volume import Rendered, composite, render_packed

_pos = attrs.validators.gt(0)


@attrs.define
class TalkingHeadConfig:
    # Set from the training data (the buffers' shapes depend on them).
    size: int = attrs.field(default=64, validator=_pos)  # frame side, pixels
    n_poses: int = attrs.field(default=1, validator=_pos)  # the training video's frames
    n_latents: int = attrs.field(default=1, validator=_pos)  # training frames with a latent code
    condition: ConditionConfig = attrs.field(factory=ConditionConfig)
    head: HeadFieldConfig = attrs.field(factory=HeadFieldConfig)
    torso: TorsoFieldConfig = attrs.field(factory=TorsoFieldConfig)
    occupancy: OccupancyConfig = attrs.field(factory=lambda: OccupancyConfig(resolution=64, max_samples=16))
    chunk: int = attrs.field(default=16384, validator=_pos)  # rays per pass when rendering


def frame_canvas(model, c2w: torch.Tensor):
    """What rendering one whole frame starts from, for a person NeRF with `person_region`,
    `head_region`, `plate` and `camera`: the person's flat pixel indices and their (x, y), the
    plate as float colours (flat), empty head colour and opacity buffers, which of the
    person's pixels are on the head, and the frame's Camera."""
    s, device = model.config.size, model.plate.device
    person = torch.nonzero(model.person_region.reshape(-1)).squeeze(1)
    pixels = torch.stack([person % s, person // s], dim=-1)
    image = model.plate.reshape(-1, 3).float() / 255.0
    head_rgb = torch.zeros(len(person), 3, device=device)
    head_alpha = torch.zeros(len(person), device=device)
    on_head = torch.nonzero(model.head_region.reshape(-1)[person]).squeeze(1)
    return person, pixels, image, head_rgb, head_alpha, on_head, model.camera(c2w[None].cpu().numpy())


def pose_codes(c2w: torch.Tensor) -> torch.Tensor:
    """(F, 4, 4) camera-to-world -> (F, 9): the first two rotation columns and the camera
    position; the head is fixed, so this is the head's pose relative to the camera."""
    return torch.cat([c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 3]], dim=-1)


class TalkingHeadNet(nn.Module):
    def __init__(self, config: TalkingHeadConfig):
        super().__init__()
        self.config = c = config
        self.condition = LandmarkCondition(c.condition)
        self.head = HeadField(c.head, c.condition.dim)
        self.torso = TorsoField(c.torso)
        self.latents = nn.Embedding(c.n_latents, c.head.latent_dim)
        nn.init.zeros_(self.latents.weight)
        self.occupancy = OccupancyGrid([-1.0] * 3, [1.0] * 3, c.occupancy)
        s = c.size
        self.register_buffer("plate", torch.zeros(s, s, 3, dtype=torch.uint8))
        self.register_buffer("c2w", torch.eye(4).repeat(c.n_poses, 1, 1))
        self.register_buffer("intrinsics", torch.tensor([float(s), s / 2.0, s / 2.0]))  # focal, cx, cy
        self.register_buffer("head_region", torch.ones(s, s, dtype=torch.bool))
        self.register_buffer("person_region", torch.ones(s, s, dtype=torch.bool))
        self.register_buffer("pose_mean", torch.zeros(POSE_DIM))
        self.register_buffer("pose_std", torch.ones(POSE_DIM))

    # -- pieces used by training and rendering ------------------------------------------
    def camera(self, c2w: np.ndarray) -> Camera:
        focal, cx, cy = (float(v) for v in self.intrinsics)
        return Camera(focal=focal, width=self.config.size, height=self.config.size, c2w=c2w, cx=cx, cy=cy)

    def pose(self, c2w: torch.Tensor) -> torch.Tensor:
        return (pose_codes(c2w) - self.pose_mean) / self.pose_std

    def to_box(self, x: torch.Tensor) -> torch.Tensor:
        """World points -> [-1, 1]^3 over the head's box."""
        lo, hi = self.occupancy.lo, self.occupancy.hi
        return (x - lo) / (hi - lo) * 2.0 - 1.0

    def density(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.head.geometry(self.to_box(x), cond)[0]

    def mean_latent(self) -> torch.Tensor:
        # Unseen frames get the average appearance code.
        return self.latents.weight.mean(0)

    def render_head(self, rays: Rays, cond: torch.Tensor, latent: torch.Tensor, perturb: bool = False
                    ) -> tuple[Rendered, torch.Tensor]:
        """Volume-render the head along `rays` with per-ray condition (N, C) and latent (N, L):
        (rendered, ambient coordinates of the samples (M, 2))."""
        near, far, _ = intersect_box(rays, self.occupancy.lo, self.occupancy.hi)
        samples = self.occupancy.march(rays, near, far, perturb=perturb)
        idx = samples.ray_index
        sigma, rgb, ambient = self.head(self.to_box(samples.points(rays)), cond[idx], rays.directions[idx], latent[idx])
        return render_packed(sigma, rgb, samples.deltas, samples.t, idx, len(rays)), ambient

    def pixel_coords(self, pixels: torch.Tensor) -> torch.Tensor:
        """Integer pixels (N, 2) -> their centres in [-1, 1]^2 (the torso's input)."""
        return (pixels.float() + 0.5) / self.config.size * 2.0 - 1.0

    def _head_front_to_back(self, rays: Rays, cond: torch.Tensor, latent: torch.Tensor, slots: int = 4,
                            min_transmittance: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
        """The head along `rays` for one condition (C,) and latent (L,), `slots` samples per ray
        at a time, front to back, dropping rays once they are opaque: most rays hit skin within
        a few samples, so most of the 16 are never evaluated. The dropped remainder could add
        at most `min_transmittance` of colour (under a quarter of a uint8 level). (rgb, opacity)."""
        near, far, _ = intersect_box(rays, self.occupancy.lo, self.occupancy.hi)
        samples = self.occupancy.march(rays, near, far)
        n, idx = len(rays), samples.ray_index
        counts = torch.bincount(idx, minlength=n)
        slot = torch.arange(len(idx), device=idx.device) - (torch.cumsum(counts, 0) - counts)[idx]
        rgb = torch.zeros(n, 3, device=idx.device)
        transmittance = torch.ones(n, device=idx.device)
        for start in range(0, int(counts.max()) if n else 0, slots):
            take = (slot >= start) & (slot < start + slots) & (transmittance[idx] > min_transmittance)
            if not bool(take.any()):
                break
            sel = idx[take]
            x = self.to_box(rays.origins[sel] + samples.t[take, None] * rays.directions[sel])
            m = len(sel)
            sigma, colour, _ = self.head(x, cond.expand(m, -1), rays.directions[sel], latent.expand(m, -1))
            part = render_packed(sigma, colour, samples.deltas[take], samples.t[take], sel, n)
            rgb += transmittance[:, None] * part.rgb
            transmittance = transmittance * (1.0 - part.opacity)
        return rgb, 1.0 - transmittance

    # -- a whole frame -------------------------------------------------------------------
    @torch.no_grad()
    def render_frame(self, landmarks: torch.Tensor, c2w: torch.Tensor, latent: Optional[torch.Tensor] = None
                     ) -> torch.Tensor:
        """One frame from canonical landmarks (68, 3) and a camera-to-world (4, 4): float (H, W, 3) in [0, 1]."""
        device = self.plate.device
        s = self.config.size
        cond = self.condition(landmarks[None].to(device))[0]
        latent = self.mean_latent() if latent is None else latent
        c2w = c2w.to(device)
        person, pixels, image, head_rgb, head_alpha, on_head, camera = frame_canvas(self, c2w)
        for part in on_head.split(self.config.chunk):
            head_rgb[part], head_alpha[part] = self._head_front_to_back(camera_rays(camera, 0, pixels[part]), cond, latent)
        pose = self.pose(c2w[None])
        for part in torch.arange(len(person), device=device).split(self.config.chunk * 4):
            t_rgb, t_alpha = self.torso(self.pixel_coords(pixels[part]), pose.expand(len(part), -1))
            image[person[part]] = composite([(head_rgb[part], head_alpha[part]), (t_rgb * t_alpha[:, None], t_alpha)],
                                            image[person[part]])
        return image.reshape(s, s, 3).clamp(0.0, 1.0)
