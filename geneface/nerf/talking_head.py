"""A whole talking-head radiance field, the model of `hashgrid_nerf`: landmark condition,
head field, torso layer and occupancy grid, over the person's canvas (plate, camera, regions:
geneface.nerf.person.PersonCanvas), in one module.

Its state dict is the renderer's checkpoint: weights plus the canvas's buffers (background
plate, the training camera and poses, where head and person can appear, the pose
statistics), the landmark statistics, the head's box and occupancy bits. So a checkpoint
renders on a machine that never saw the dataset.

A frame (`render_frame`): head rays only on the pixels the occupied cells can cover with
this frame's camera (geneface.nerf.footprint; within `head_region`, where a head was seen in
training, with the training camera), each marched from just before its first occupied cell,
front to back, a few steps per round, until it is opaque (geneface.nerf.front_to_back;
`march`); optionally a quarter of those rays with the rest interpolated where they agree
(`fill_threshold`, geneface.nerf.adaptive). The field is called in its per-frame form
(`HeadField.for_frame`: the condition and latent folded into biases, the direction's share
once per ray), in half precision on CUDA (`precision`). The torso layer is evaluated only
where a person was seen (`person_region`) and the head is not opaque; head over torso over
the plate there, the plate as it is everywhere else. Training renders rays with `render_head`
(the occupancy grid's own marching, at most `max_samples` per ray).
"""

from __future__ import annotations

import contextlib
from typing import Optional, Union

import attrs
import torch
from torch import nn

from geneface.core.records import Camera
from geneface.nerf.condition import ConditionConfig, LandmarkCondition
from geneface.nerf.fields.talking_head import HeadField, HeadFieldConfig
from geneface.nerf.fields.torso import TorsoField, TorsoFieldConfig
from geneface.nerf.footprint import Footprint, cell_centres, splat, surface_cells
from geneface.nerf.front_to_back import MarchConfig, render_front_to_back
from geneface.nerf.occupancy import OccupancyConfig, OccupancyGrid
from geneface.nerf.person import Intrinsics, PersonCanvas, intrinsics_of
from geneface.nerf.rays import Rays, intersect_box
from geneface.nerf.volume import Rendered, render_packed

_pos = attrs.validators.gt(0)


@attrs.define
class TalkingHeadConfig:
    # Set from the training data (the buffers' shapes depend on them).
    size: int = attrs.field(default=64, validator=_pos)  # frame side, pixels
    n_poses: int = attrs.field(default=1, validator=_pos)  # the training video's frames
    n_latents: int = attrs.field(default=1, validator=_pos)  # training frames with a latent code
    # A person of several clips (set from the data; empty for one video): the clips' names and
    # frame counts in order (`n_poses` are theirs, one after another); one plate per clip.
    clips: list[str] = attrs.field(factory=list)
    clip_frames: list[int] = attrs.field(factory=list)
    # The clip a driven render (`geneface run`) draws over and takes its default head path from:
    # its name or index among `clips`; None: the first (geneface.nerf.person.resolve_clip).
    clip: Optional[Union[int, str]] = None
    condition: ConditionConfig = attrs.field(factory=ConditionConfig)
    head: HeadFieldConfig = attrs.field(factory=HeadFieldConfig)
    torso: TorsoFieldConfig = attrs.field(factory=TorsoFieldConfig)
    occupancy: OccupancyConfig = attrs.field(factory=lambda: OccupancyConfig(resolution=64, max_samples=16))
    chunk: int = attrs.field(default=16384, validator=_pos)  # rays per pass when rendering
    march: MarchConfig = attrs.field(factory=MarchConfig)  # how a frame is marched (not training)
    # Adaptive sampling in image space (geneface.nerf.adaptive): a quarter of the head's rays,
    # the rest interpolated where those agree within `fill_threshold` (0..1 colour units; None:
    # every ray), for frames of at least `fill_min_size` px. Measured on german_news_20s: at
    # 512 px 2.9x fewer seconds per frame for -0.01 dB; at 128 px no gain (neighbouring pixels
    # differ too much there) for -0.05 dB, hence the size.
    fill_threshold: Optional[float] = attrs.field(default=0.04, validator=attrs.validators.optional(
        attrs.validators.ge(0)))
    fill_min_size: int = attrs.field(default=384, validator=_pos)
    # The field's arithmetic when rendering: "auto" is float16 on CUDA (tensor cores; the
    # compositing stays float32) and float32 on CPU (bfloat16 measured 2.2x slower on an
    # AVX-512 CPU without AMX); "bf16" is bfloat16 on either.
    precision: str = attrs.field(default="auto", validator=attrs.validators.in_(("auto", "fp32", "fp16", "bf16")))


def autocast(device: torch.device, precision: str):
    """The autocast context for `precision` on `device` (a no-op for float32)."""
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    if precision == "auto" and device.type == "cuda":
        dtype = torch.float16
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class TalkingHeadNet(PersonCanvas):
    def __init__(self, config: TalkingHeadConfig):
        super().__init__(config.size, config.n_poses, max(1, len(config.clip_frames)))
        self.config = c = config
        self.condition = LandmarkCondition(c.condition)
        self.head = HeadField(c.head, c.condition.dim)
        self.torso = TorsoField(c.torso)
        self.latents = nn.Embedding(c.n_latents, c.head.latent_dim)
        nn.init.zeros_(self.latents.weight)
        self.occupancy = OccupancyGrid([-1.0] * 3, [1.0] * 3, c.occupancy)
        self._surface_key: Optional[tuple] = None  # head_footprint's cache of surface cells
        self._surface = torch.zeros(0, 3)

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

    def head_footprint(self, camera: Camera) -> Footprint:
        """The pixels the occupied cells can cover with this camera (one pose) and where each
        ray's first occupied cell can start (geneface.nerf.footprint). The occupied set's
        surface cells are kept until the grid changes (training updates it in place)."""
        occupied = self.occupancy.occupied
        key = (occupied.data_ptr(), occupied._version, float(self.occupancy.lo.sum()), float(self.occupancy.hi.sum()))
        if self._surface_key != key:
            lo, hi = self.occupancy.lo, self.occupancy.hi
            self._surface = cell_centres(surface_cells(occupied), lo, hi)
            self._surface_key = key
        lo, hi = self.occupancy.lo, self.occupancy.hi
        half_diagonal = float(((hi - lo) / self.occupancy.config.resolution).norm()) / 2.0
        focal, cx, cy = intrinsics_of(camera)
        c2w = torch.as_tensor(camera.c2w[0], dtype=torch.float32, device=lo.device)
        return splat(self._surface, half_diagonal, c2w, focal, cx, cy, camera.width, camera.height)

    # -- a whole frame -------------------------------------------------------------------
    @torch.no_grad()
    def render_frame(self, landmarks: torch.Tensor, c2w: torch.Tensor, latent: Optional[torch.Tensor] = None,
                     intrinsics: Optional[Intrinsics] = None, clip: Optional[int] = None) -> torch.Tensor:
        """One frame from canonical landmarks (68, 3), a camera-to-world (4, 4) and the
        camera's (focal, cx, cy) (None: the training camera's), over the plate of clip `clip`
        (None: the first): float (H, W, 3) in [0, 1]."""
        device = self.plate.device
        cond = self.condition(landmarks[None].to(device))[0]
        latent = self.mean_latent() if latent is None else latent
        c2w = c2w.to(device)
        pose = self.pose(c2w[None])
        direction_term, field = self.head.for_frame(cond, latent)

        precision = self.config.precision

        def head(rays: Rays, start: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            near, far, _ = intersect_box(rays, self.occupancy.lo, self.occupancy.hi)
            with autocast(device, precision):
                per_ray = direction_term(rays.directions)

            def evaluate(x: torch.Tensor, ray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                with autocast(device, precision):
                    return field(self.to_box(x), per_ray[ray])

            return render_front_to_back(self.occupancy, evaluate, rays, near, far, start, self.config.march)

        def torso(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            with autocast(device, precision):
                rgb, alpha = self.torso(self.pixel_coords(pixels), pose.expand(len(pixels), -1))
            rgb, alpha = rgb.float(), alpha.float()
            return rgb * alpha[:, None], alpha

        fill = self.config.fill_threshold if self.config.size >= self.config.fill_min_size else None
        return self.draw_frame(c2w, head, torso, self.config.chunk, self.config.chunk * 4, intrinsics, fill, clip)
