"""A whole talking-head radiance field, the model of `hashgrid_nerf`: landmark condition,
head field, torso layer and occupancy grid, over the person's canvas (plate, camera, regions:
geneface.nerf.person.PersonCanvas), in one module.

Its state dict is the renderer's checkpoint: weights plus the canvas's buffers (background
plate, the training camera and poses, where head and person can appear, the pose
statistics), the landmark statistics, the head's box and occupancy bits. So a checkpoint
renders on a machine that never saw the dataset.

A frame (`render_frame`): head rays where a head was ever seen in training (`head_region`;
over the whole frame with another camera, geneface.nerf.person), marched through the
occupancy grid (at most `max_samples` samples per ray) and rendered front to back; the torso
layer only where a person was seen (`person_region`); head over torso over the plate there,
the plate as it is everywhere else.
"""

from __future__ import annotations

from typing import Optional

import attrs
import torch
from torch import nn

from geneface.nerf.condition import ConditionConfig, LandmarkCondition
from geneface.nerf.fields.talking_head import HeadField, HeadFieldConfig
from geneface.nerf.fields.torso import TorsoField, TorsoFieldConfig
from geneface.nerf.occupancy import OccupancyConfig, OccupancyGrid
from geneface.nerf.person import Intrinsics, PersonCanvas
from geneface.nerf.rays import Rays, intersect_box
from geneface.nerf.volume import Rendered, render_packed

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


class TalkingHeadNet(PersonCanvas):
    def __init__(self, config: TalkingHeadConfig):
        super().__init__(config.size, config.n_poses)
        self.config = c = config
        self.condition = LandmarkCondition(c.condition)
        self.head = HeadField(c.head, c.condition.dim)
        self.torso = TorsoField(c.torso)
        self.latents = nn.Embedding(c.n_latents, c.head.latent_dim)
        nn.init.zeros_(self.latents.weight)
        self.occupancy = OccupancyGrid([-1.0] * 3, [1.0] * 3, c.occupancy)

    # -- pieces used by training and rendering ------------------------------------------
    def pose(self, c2w: torch.Tensor) -> torch.Tensor:
        """(F, 4, 4) -> the torso's condition (F, 9): normalised pose codes."""
        return self.normalised_pose(c2w)

    def head_box(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.occupancy.lo, self.occupancy.hi

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
    def render_frame(self, landmarks: torch.Tensor, c2w: torch.Tensor, latent: Optional[torch.Tensor] = None,
                     intrinsics: Optional[Intrinsics] = None) -> torch.Tensor:
        """One frame from canonical landmarks (68, 3), a camera-to-world (4, 4) and the
        camera's (focal, cx, cy) (None: the training camera's): float (H, W, 3) in [0, 1]."""
        device = self.plate.device
        cond = self.condition(landmarks[None].to(device))[0]
        latent = self.mean_latent() if latent is None else latent
        c2w = c2w.to(device)
        pose = self.pose(c2w[None])

        def torso(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            rgb, alpha = self.torso(self.pixel_coords(pixels), pose.expand(len(pixels), -1))
            return rgb * alpha[:, None], alpha

        return self.draw_frame(c2w, lambda rays: self._head_front_to_back(rays, cond, latent), torso,
                               self.config.chunk, self.config.chunk * 4, intrinsics)
