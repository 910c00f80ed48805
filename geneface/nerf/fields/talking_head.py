"""The head's radiance field, RAD-NeRF's design driven by a landmark condition.

    xyz (in [-1, 1]^3) --space encoding--> f
    (f, condition) --ambient MLP--> tanh --> a (2-D ambient coordinate) --2-D grid--> g
    (f, g) --density MLP--> sigma (trunc_exp), geometry feature h
    (h, SH(view direction), per-frame latent) --colour MLP--> rgb (sigmoid)

The condition reaches density and colour only through the 2-D coordinate `a`: all of a
face's dynamics (mouth, eyes) live in a small learned 2-D space, which is what lets 20 s of
video generalise to unseen expressions. The space encoding is a seam: ER-NeRF's tri-plane
(default: ~2.5x faster to train and ~6x faster to infer on CPU than a 16-level 3-D hash grid,
benchmarks/bench_encodings.py) or RAD-NeRF's 3-D grid.
"""

from __future__ import annotations

from typing import Callable

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from geneface.nerf.encodings import Grid2DConfig, Grid2DEncoding, GridConfig, SHEncoding, TriPlaneConfig, make_grid_encoding
from geneface.nerf.mlp import MLP, MLPConfig, trunc_exp

_pos = attrs.validators.gt(0)


@attrs.define
class HeadFieldConfig:
    space: str = attrs.field(default="triplane", validator=attrs.validators.in_(("triplane", "grid")))
    triplane: TriPlaneConfig = attrs.field(factory=TriPlaneConfig)
    grid: GridConfig = attrs.field(factory=GridConfig)
    backend: str = attrs.field(default="auto", validator=attrs.validators.in_(("auto", "torch", "tcnn")))
    ambient: Grid2DConfig = attrs.field(factory=lambda: Grid2DConfig(levels=8, features=2, base_resolution=16,
                                                                     finest_resolution=128))
    ambient_hidden: int = attrs.field(default=64, validator=_pos)
    hidden: int = attrs.field(default=64, validator=_pos)
    density_layers: int = attrs.field(default=3, validator=_pos)
    geo_features: int = attrs.field(default=15, validator=_pos)
    colour_layers: int = attrs.field(default=2, validator=_pos)
    sh_degree: int = attrs.field(default=4, validator=attrs.validators.in_((1, 2, 3, 4)))
    latent_dim: int = attrs.field(default=4, validator=attrs.validators.ge(0))


class HeadField(nn.Module):
    def __init__(self, config: HeadFieldConfig, cond_dim: int):
        super().__init__()
        self.config = c = config
        space = c.triplane if c.space == "triplane" else c.grid
        self.space, self.backend, self.backend_reason = make_grid_encoding(space, "cpu", c.backend)
        self.ambient_mlp = MLP(self.space.out_dim + cond_dim, 2,
                               MLPConfig(hidden=c.ambient_hidden, layers=3, out_activation="tanh"))
        self.ambient_grid = Grid2DEncoding(c.ambient)
        self.density_mlp = MLP(self.space.out_dim + self.ambient_grid.out_dim, 1 + c.geo_features,
                               MLPConfig(hidden=c.hidden, layers=c.density_layers))
        self.sh = SHEncoding(c.sh_degree)
        self.colour_mlp = MLP(c.geo_features + self.sh.out_dim + c.latent_dim, 3,
                              MLPConfig(hidden=c.hidden, layers=c.colour_layers, out_activation="sigmoid"))

    def geometry(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Points (M, 3) in [-1, 1] and their condition (M, C) -> sigma (M,), feature (M, G), ambient (M, 2)."""
        f = self.space(x)
        ambient = self.ambient_mlp(torch.cat([f, cond], dim=-1))
        out = self.density_mlp(torch.cat([f, self.ambient_grid(ambient)], dim=-1))
        return trunc_exp(out[:, 0]), out[:, 1:], ambient

    def forward(self, x, cond, directions, latent) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> sigma (M,), rgb (M, 3), ambient coordinate (M, 2)."""
        sigma, h, ambient = self.geometry(x, cond)
        rgb = self.colour_mlp(torch.cat([h, self.sh(directions), latent], dim=-1))
        return sigma, rgb, ambient

    def for_frame(self, cond: torch.Tensor, latent: torch.Tensor) -> tuple[Callable, Callable]:
        """The field for one frame's condition (C,) and latent (L,), as rendering calls it:
        `(direction_term, field)`. `direction_term(directions (N, 3))` is the colour MLP's
        first layer's share of each ray's direction (computed once per ray, not per
        sample); `field(points (M, 3) in [-1, 1], direction_term rows (M, H))` -> sigma (M,),
        rgb (M, 3). The same numbers as `forward`, without its concatenations: each first
        layer's weight is split by input, the condition and latent folded into biases."""
        c, f_dim = self.config, self.space.out_dim
        w_amb, w_cond = self.ambient_mlp.first_layer_columns(f_dim, cond.shape[-1])
        b_amb = self.ambient_mlp.linears[0].bias + w_cond @ cond
        w_space, w_grid = self.density_mlp.first_layer_columns(f_dim, self.ambient_grid.out_dim)
        b_density = self.density_mlp.linears[0].bias
        w_geo, w_sh, w_latent = self.colour_mlp.first_layer_columns(c.geo_features, self.sh.out_dim, c.latent_dim)
        b_colour = self.colour_mlp.linears[0].bias + w_latent @ latent

        def direction_term(directions: torch.Tensor) -> torch.Tensor:
            return F.linear(self.sh(directions), w_sh, b_colour)

        def field(x: torch.Tensor, direction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            f = self.space(x)
            ambient = self.ambient_mlp.after_first(F.linear(f, w_amb, b_amb))
            # The grids read float32 coordinates whatever autocast made of the MLPs' outputs.
            h = torch.addmm(torch.addmm(b_density, f, w_space.T), self.ambient_grid(ambient.float()), w_grid.T)
            out = self.density_mlp.after_first(h)
            rgb = self.colour_mlp.after_first(torch.addmm(direction, out[:, 1:], w_geo.T))
            return torch.exp(out[:, 0].float()), rgb  # exp in float32: float16 overflows above 11

        return direction_term, field
