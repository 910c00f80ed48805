"""GeneFace's original renderer (AD-NeRF style, "vanilla"), the model of `vanilla_nerf`: a
landmark-conditioned head NeRF over a head-aware torso NeRF over the video's plate, as one
module.

- the head (geneface.nerf.fields.vanilla_head): the landmarks of a window of frames ->
  attention -> one condition; NeRF's 8 x 256 MLP in the head's box, 64 coarse samples
  (coarse network) then 128 more by importance (fine network);
- the torso (geneface.nerf.fields.vanilla_torso): a smaller NeRF in the frustum of the
  fixed training camera, conditioned on the head's pose, so the neck follows the head;
- the canvas (geneface.nerf.person): plate, camera, regions, pose statistics.

Head over torso over the plate (geneface.nerf.volume.composite). Everything is dense MLP
evaluation at every sample: no occupancy grid, no hash grid; its cost is the point of
comparison with `hashgrid_nerf` (geneface.nerf.talking_head).

The state dict is the renderer's checkpoint: weights plus the canvas's buffers (plate, the
training camera and poses, where head and person can appear, the pose statistics), the
landmark statistics, the head's box and the camera's depth range.
"""

from __future__ import annotations

from typing import Optional, Union

import attrs
import torch

from geneface.nerf.encodings import FrequencyEncoding
from geneface.nerf.fields.radiance import coarse_fine
from geneface.nerf.fields.vanilla_head import HeadNeRFConfig, WindowCondition, WindowConditionConfig
from geneface.nerf.fields.vanilla_torso import TorsoNeRFConfig, render_torso
from geneface.nerf.person import POSE_DIM, Intrinsics, PersonCanvas
from geneface.nerf.rays import Rays, intersect_box
from geneface.nerf.volume import Rendered

_pos = attrs.validators.gt(0)


@attrs.define
class VanillaNeRFConfig:
    # Set from the training data (the buffers' shapes depend on them).
    size: int = attrs.field(default=64, validator=_pos)  # frame side, pixels
    n_poses: int = attrs.field(default=1, validator=_pos)  # the training video's frames
    # A person of several clips (set from the data; empty for one video): the clips' names and
    # frame counts in order (`n_poses` are theirs, one after another); one plate per clip.
    clips: list[str] = attrs.field(factory=list)
    clip_frames: list[int] = attrs.field(factory=list)
    # The clip a driven render (`geneface run`) draws over and takes its default head path from:
    # its name or index among `clips`; None: the first (geneface.nerf.person.resolve_clip).
    clip: Optional[Union[int, str]] = None
    condition: WindowConditionConfig = attrs.field(factory=WindowConditionConfig)
    head: HeadNeRFConfig = attrs.field(factory=HeadNeRFConfig)
    torso: TorsoNeRFConfig = attrs.field(factory=TorsoNeRFConfig)
    chunk: int = attrs.field(default=1024, validator=_pos)  # rays per pass when rendering


class VanillaNeRFNet(PersonCanvas):
    def __init__(self, config: VanillaNeRFConfig):
        super().__init__(config.size, config.n_poses, max(1, len(config.clip_frames)))
        self.config = c = config
        self.condition = WindowCondition(c.condition)
        h, t = c.head, c.torso
        self.head_coarse = h.make_field(c.condition.dim)
        self.head_fine = h.make_field(c.condition.dim) if h.separate_fine and h.fine_samples else None
        self.pose_encoding = FrequencyEncoding(POSE_DIM, t.pose_freqs)
        self.torso_coarse = t.make_field(self.pose_encoding.out_dim)
        self.torso_fine = t.make_field(self.pose_encoding.out_dim) if t.separate_fine and t.fine_samples else None
        self.register_buffer("box_lo", torch.full((3,), -1.0))  # the head's box, canonical frame
        self.register_buffer("box_hi", torch.full((3,), 1.0))
        self.register_buffer("near_far", torch.tensor([0.5, 1.5]))  # camera distance range of the head

    # -- pieces used by training and rendering ------------------------------------------
    def pose(self, c2w: torch.Tensor) -> torch.Tensor:
        """(F, 4, 4) -> the torso's condition (F, P): normalised pose codes, frequency-encoded."""
        return self.pose_encoding(self.normalised_pose(c2w))

    def head_box(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.box_lo, self.box_hi

    def to_box(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.box_lo) / (self.box_hi - self.box_lo) * 2.0 - 1.0

    def render_head(self, rays: Rays, cond: torch.Tensor, perturb: bool = False) -> tuple[Rendered, Rendered]:
        """The head along `rays` with per-ray condition (N, C): (coarse, fine), premultiplied.
        Samples lie where a ray crosses the head's box, within the camera's near / far."""
        h = self.config.head
        near, far, _ = intersect_box(rays, self.box_lo, self.box_hi)
        near = near.clamp(min=float(self.near_far[0]))
        far = torch.maximum(far.clamp(max=float(self.near_far[1])), near)
        unit = float((self.box_hi - self.box_lo).mean()) / 2.0
        return coarse_fine(self.head_coarse, self.head_fine, h.coarse_samples, h.fine_samples,
                           lambda t: self.to_box(rays.at(t)), near, far, unit, cond, rays.directions, perturb)

    def render_torso(self, pixels: torch.Tensor, pose: torch.Tensor, perturb: bool = False
                     ) -> tuple[Rendered, Rendered]:
        """The torso at `pixels` (N, 2) for each pixel's pose condition (N, P): (coarse, fine),
        in the fixed camera's frustum (geneface.nerf.fields.vanilla_torso)."""
        near_far = tuple(float(v) for v in self.near_far)
        return render_torso(self.torso_coarse, self.torso_fine, self.config.torso, self.pixel_coords(pixels), pose,
                            near_far, perturb)

    def windows(self, landmarks: torch.Tensor) -> torch.Tensor:
        """(68, 3) -> (1, 1, 68, 3); (W, 68, 3) -> (1, W, 68, 3)."""
        return landmarks[None, None] if landmarks.dim() == 2 else landmarks[None]

    # -- a whole frame -------------------------------------------------------------------
    @torch.no_grad()
    def render_frame(self, landmarks: torch.Tensor, c2w: torch.Tensor, intrinsics: Optional[Intrinsics] = None,
                     clip: Optional[int] = None) -> torch.Tensor:
        """One frame from canonical landmarks, a window of them (W, 68, 3) centred on the frame
        (W: 1 or the trained window) or the frame's own (68, 3), its camera-to-world (4, 4)
        and the camera's (focal, cx, cy) (None: the training camera's), over the plate of clip
        `clip` (None: the first): float (H, W, 3) in [0, 1]."""
        device = self.plate.device
        cond = self.condition(self.windows(landmarks.to(device)))[0]
        c2w = c2w.to(device)
        pose = self.pose(c2w[None])

        def head(rays: Rays, _start) -> tuple[torch.Tensor, torch.Tensor]:
            _, fine = self.render_head(rays, cond.expand(len(rays), -1))
            return fine.rgb, fine.opacity

        def torso(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            _, fine = self.render_torso(pixels, pose.expand(len(pixels), -1))
            return fine.rgb, fine.opacity

        return self.draw_frame(c2w, head, torso, self.config.chunk, self.config.chunk, intrinsics, clip=clip)
