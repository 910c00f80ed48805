"""The head of `vanilla_nerf` (AD-NeRF style): a landmark condition smoothed over a window of
frames, and NeRF's 8 x 256 radiance MLP sampled coarse then fine.

    landmarks of a window of W frames (W x 68 x 3) --normalise, 204 numbers each-->
      MLP encoder --> W codes (64-d) --attention (1-D convs along the window, softmax)--> one code c
    xyz in the head's box --frequency encoding (10)--> (enc(x), c) --8 x 256 MLP, skip at 4--> h
      sigma = softplus(linear(h));  (linear(h), enc(view direction, 4), c) --128--> rgb (sigmoid)
    coarse: 64 stratified samples between near and far (coarse network);
    fine: 128 more drawn from the coarse weights, all 192 through the fine network

Inside: `window_indices` (the frames of a window, clamped at the sequence's ends),
`WindowConditionConfig`, `WindowAttention`, `WindowCondition` (windows of landmarks -> one
condition per frame), `HeadNeRFConfig` (the head's MLP and samples; `make_field`). The MLP
and the two passes are geneface.nerf.fields.radiance's.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch
from torch import nn

from geneface.core.records import N_LANDMARKS
from geneface.nerf.fields.radiance import RadianceField, valid_skip

_pos = attrs.validators.gt(0)
_nonneg = attrs.validators.ge(0)


def _odd(_inst, attribute, value):
    if value < 1 or value % 2 == 0:
        raise ValueError(f"{attribute.name} must be an odd number of frames >= 1 (the frame and as many on each "
                         f"side), got {value}")


@attrs.define
class WindowConditionConfig:
    dim: int = attrs.field(default=64, validator=_pos)  # the condition's width
    hidden: int = attrs.field(default=128, validator=_pos)  # the per-frame encoder's hidden width
    # Frames the attention smooths over (the frame and (window - 1) / 2 on each side); 1: none.
    window: int = attrs.field(default=5, validator=_odd)


@attrs.define
class HeadNeRFConfig:
    hidden: int = attrs.field(default=256, validator=_pos)
    layers: int = attrs.field(default=8, validator=_pos)
    skip: int = attrs.field(default=4, validator=valid_skip)  # the input enters again after this layer
    colour_hidden: int = attrs.field(default=128, validator=_pos)
    pos_freqs: int = attrs.field(default=10, validator=_nonneg)
    dir_freqs: int = attrs.field(default=4, validator=_nonneg)
    coarse_samples: int = attrs.field(default=64, validator=_pos)
    fine_samples: int = attrs.field(default=128, validator=_nonneg)  # 0: coarse only
    separate_fine: bool = True  # NeRF's two networks (coarse and fine); False: one for both

    def make_field(self, cond_dim: int) -> RadianceField:
        """One head network (the coarse or the fine one) for a condition of `cond_dim`."""
        return RadianceField(self.hidden, self.layers, self.skip, self.colour_hidden, self.pos_freqs,
                             self.dir_freqs, cond_dim)


def window_indices(n_frames: int, index, window: int, lo: int = 0) -> np.ndarray:
    """Frames of the window around `index` (an int or an array of them) in the sequence
    `[lo, n_frames)`, clamped at its ends: (window,) or (len(index), window)."""
    half = window // 2
    offsets = np.arange(-half, half + 1)
    return np.clip(np.asarray(index)[..., None] + offsets, lo, n_frames - 1)


class WindowAttention(nn.Module):
    """AD-NeRF's attention over a window of per-frame codes: 1-D convolutions along the window
    (channels dim -> 16 -> 8 -> 4 -> 2 -> 1, kernel 3, leaky ReLU), a linear map window ->
    window, softmax. The linear map starts at zero: uniform weights (a plain average) at first."""

    def __init__(self, dim: int, window: int):
        super().__init__()
        chans = [dim, 16, 8, 4, 2, 1]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv1d(a, b, 3, padding=1), nn.LeakyReLU(0.02)]
        self.convs = nn.Sequential(*layers)
        self.mix = nn.Linear(window, window)
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """(F, W, D) -> softmax weights (F, W)."""
        score = self.convs(codes.transpose(1, 2))[:, 0]
        return torch.softmax(self.mix(score), dim=-1)


class WindowCondition(nn.Module):
    """Windows of canonical landmarks (F, W, 68, 3) -> conditions (F, dim).

    Each frame's 204 numbers, normalised with the training video's statistics (`mean`, `std`),
    go through a small MLP to `dim`; the window's codes are averaged with the attention's
    weights. A window of one frame (W = 1) is that frame's code: no smoothing.
    """

    def __init__(self, config: WindowConditionConfig):
        super().__init__()
        self.config = c = config
        self.register_buffer("mean", torch.zeros(N_LANDMARKS, 3))
        self.register_buffer("std", torch.ones(N_LANDMARKS, 3))
        self.encoder = nn.Sequential(nn.Linear(3 * N_LANDMARKS, c.hidden), nn.LeakyReLU(0.02),
                                     nn.Linear(c.hidden, c.hidden), nn.LeakyReLU(0.02), nn.Linear(c.hidden, c.dim))
        self.attention = WindowAttention(c.dim, c.window)

    def encode(self, landmarks: torch.Tensor) -> torch.Tensor:
        """(..., 68, 3) -> per-frame codes (..., dim)."""
        z = (landmarks - self.mean) / self.std.clamp(min=1e-6)
        return self.encoder(z.flatten(-2))

    def weights(self, windows: torch.Tensor) -> torch.Tensor:
        """The attention's weights (F, W) over windows (F, W, 68, 3)."""
        return self.attention(self.encode(windows))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        codes = self.encode(windows)
        w = codes.shape[1]
        if w == 1:
            return codes[:, 0]
        if w != self.config.window:
            raise ValueError(f"a window of {w} frames; this condition was trained on {self.config.window} (or give 1)")
        return (self.attention(codes)[..., None] * codes).sum(1)
