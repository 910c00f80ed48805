"""The torso of `vanilla_nerf` (AD-NeRF style): a second, smaller NeRF in the frustum of a
fixed camera, conditioned on the head's pose.

AD-NeRF renders the torso with the camera held still (the body does not turn with the head),
so its space is the training camera's frustum: (pixel x, pixel y, depth), each in [-1, 1],
depth over the camera's near / far. The condition is the head's pose (the camera-to-world's
first two rotation columns and position, normalised and frequency-encoded by the model), so
the neck follows the head.

Inside: `TorsoNeRFConfig` (the torso's MLP and samples; `make_field`) and `render_torso`
(coarse and fine passes at a set of pixels). The MLP and the two passes are
geneface.nerf.fields.radiance's.
"""

from __future__ import annotations

from typing import Optional

import attrs
import torch

from geneface.nerf.fields.radiance import RadianceField, coarse_fine, valid_skip
from geneface.nerf.volume import Rendered

_pos = attrs.validators.gt(0)
_nonneg = attrs.validators.ge(0)


@attrs.define
class TorsoNeRFConfig:
    hidden: int = attrs.field(default=128, validator=_pos)
    layers: int = attrs.field(default=6, validator=_pos)
    skip: int = attrs.field(default=3, validator=valid_skip)
    colour_hidden: int = attrs.field(default=64, validator=_pos)
    pos_freqs: int = attrs.field(default=10, validator=_nonneg)
    # Low on purpose: a video shows a few hundred poses, and high frequencies of the pose let
    # the torso memorise each training frame's pose instead of following the head (measured on
    # the synthetic subject: 4 frequencies rendered a training frame 7 dB worse than 1).
    pose_freqs: int = attrs.field(default=1, validator=_nonneg)
    coarse_samples: int = attrs.field(default=32, validator=_pos)
    fine_samples: int = attrs.field(default=32, validator=_nonneg)
    separate_fine: bool = False

    def make_field(self, cond_dim: int) -> RadianceField:
        """One torso network for a pose condition of `cond_dim` (no view direction)."""
        return RadianceField(self.hidden, self.layers, self.skip, self.colour_hidden, self.pos_freqs, None, cond_dim)


def render_torso(coarse: RadianceField, fine: Optional[RadianceField], config: TorsoNeRFConfig, xy: torch.Tensor,
                 pose: torch.Tensor, near_far: tuple[float, float], perturb: bool = False) -> tuple[Rendered, Rendered]:
    """The torso at pixel centres `xy` (N, 2) in [-1, 1] for each pixel's pose condition
    (N, P), between the camera distances `near_far`: (coarse, fine), premultiplied."""
    near_v, far_v = near_far
    n = len(xy)
    near = torch.full((n,), near_v, device=xy.device)
    far = torch.full((n,), far_v, device=xy.device)

    def to_field(t: torch.Tensor) -> torch.Tensor:
        depth = (t - near_v) / (far_v - near_v) * 2.0 - 1.0
        return torch.cat([xy[:, None].expand(n, t.shape[1], 2), depth[..., None]], dim=-1)

    return coarse_fine(coarse, fine, config.coarse_samples, config.fine_samples, to_field, near, far,
                       (far_v - near_v) / 2.0, pose, None, perturb)
