"""The torso as a 2-D layer: a deformation conditioned on head pose over a canonical image.

    (pixel p in [-1, 1]^2, pose code) --deformation MLP--> d (tanh, at most `max_offset`)
    p + d --canonical 2-D grid--> g;  (g, pose code) --colour MLP--> rgb, alpha

Neck and shoulders follow the head only loosely and are seen from one side, so a 3-D field
buys nothing (RAD-NeRF's choice): one network evaluation per pixel instead of a ray of
samples. The deformation lets the neck turn with the head; the canonical grid holds the
clothes' detail once for all frames.
"""

from __future__ import annotations

import attrs
import torch
from torch import nn

from geneface.nerf.encodings import FrequencyEncoding, Grid2DConfig, Grid2DEncoding
from geneface.nerf.mlp import MLP, MLPConfig
from geneface.nerf.person import POSE_DIM  # the pose code's width (geneface.nerf.person.pose_codes)

_pos = attrs.validators.gt(0)


@attrs.define
class TorsoFieldConfig:
    grid: Grid2DConfig = attrs.field(factory=lambda: Grid2DConfig(levels=8, features=2, base_resolution=16,
                                                                  finest_resolution=256))
    hidden: int = attrs.field(default=64, validator=_pos)
    frequencies: int = attrs.field(default=4, validator=attrs.validators.ge(0))
    max_offset: float = attrs.field(default=0.2, validator=_pos)  # of the half image side
    # Whether the colour MLP sees the pose too. Without it a pose changes the torso only by
    # moving it (the deformation). Kept on: off moved four persons' held-out PSNR by
    # -0.20..+0.09 dB, within run-to-run noise (docs/training.md, "Across persons").
    pose_colour: bool = True


class TorsoField(nn.Module):
    def __init__(self, config: TorsoFieldConfig):
        super().__init__()
        self.config = c = config
        self.position = FrequencyEncoding(2, c.frequencies)
        self.deform = MLP(self.position.out_dim + POSE_DIM, 2, MLPConfig(hidden=c.hidden, layers=3, out_activation="tanh"))
        self.grid = Grid2DEncoding(c.grid)
        colour_in = self.grid.out_dim + self.position.out_dim + (POSE_DIM if c.pose_colour else 0)
        self.colour = MLP(colour_in, 4, MLPConfig(hidden=c.hidden, layers=2))

    def forward(self, p: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels (N, 2) in [-1, 1] and their frame's pose code (N, 9) -> rgb (N, 3), alpha (N,)."""
        enc = self.position(p)
        offset = self.config.max_offset * self.deform(torch.cat([enc, pose], dim=-1))
        g = self.grid(p + offset)
        out = self.colour(torch.cat([g, enc, pose] if self.config.pose_colour else [g, enc], dim=-1))
        return torch.sigmoid(out[:, :3]), torch.sigmoid(out[:, 3])
