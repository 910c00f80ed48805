"""The MLP builder of every field: widths, activation, skip connections, output activation.

    MLP(63, 256, MLPConfig(hidden=256, layers=8, skips=(4,), out_activation="relu"))  # vanilla NeRF trunk
    MLP(32, 16, MLPConfig(hidden=64, layers=3))                   # a hash-grid density head
"""

from __future__ import annotations

from typing import Callable, Optional

import attrs
import torch
from torch import nn


class _TruncExp(torch.autograd.Function):
    # exp for densities, with the gradient's exponent clamped: a large raw output early in
    # training would otherwise give an overflowing gradient and NaN parameters.
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    """exp(x) whose gradient uses exp(min(x, 15))."""
    return _TruncExp.apply(x)


class _Fn(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "none": nn.Identity,
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "trunc_exp": lambda: _Fn(trunc_exp),
}

_act = attrs.validators.in_(tuple(ACTIVATIONS))


@attrs.define
class MLPConfig:
    """`layers` linear layers (`layers - 1` hidden ones of width `hidden`, then the output).

    `skips`: layers after which the MLP's input is concatenated to the activations, so the
    next layer sees it again (NeRF: `(4,)`, counting layers from 0).
    """

    hidden: int = attrs.field(default=64, validator=attrs.validators.gt(0))
    layers: int = attrs.field(default=3, validator=attrs.validators.gt(0))
    activation: str = attrs.field(default="relu", validator=_act)
    out_activation: str = attrs.field(default="none", validator=_act)
    skips: tuple[int, ...] = attrs.field(default=(), converter=tuple)

    @skips.validator
    def _check_skips(self, _attr, value):
        bad = [s for s in value if not 0 <= s < self.layers - 1]
        if bad:
            raise ValueError(f"MLP skips must be layer indices 0 to {self.layers - 2}, got {bad}")


class MLP(nn.Module):
    """(..., in_dim) -> (..., out_dim)."""

    def __init__(self, in_dim: int, out_dim: int, config: Optional[MLPConfig] = None):
        super().__init__()
        self.config = c = config or MLPConfig()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.skips = frozenset(c.skips)
        widths = [in_dim] + [c.hidden] * (c.layers - 1)
        self.linears = nn.ModuleList(
            nn.Linear(widths[i] + (in_dim if i - 1 in self.skips else 0), widths[i + 1] if i + 1 < c.layers else out_dim)
            for i in range(c.layers)
        )
        self.act = ACTIVATIONS[c.activation]()
        self.out_act = ACTIVATIONS[c.out_activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        last = len(self.linears) - 1
        for i, linear in enumerate(self.linears):
            h = linear(h)
            h = self.act(h) if i < last else self.out_act(h)
            if i in self.skips:
                h = torch.cat([h, x], dim=-1)
        return h

    def first_layer_columns(self, *widths: int) -> list[torch.Tensor]:
        """The first layer's weight split by input columns into blocks of `widths` (out x w
        each): `W [a, b] = W_a a + W_b b`, so a caller can add an input's share without
        concatenating it, or fold an input that is constant into the bias."""
        return list(self.linears[0].weight.split(list(widths), dim=1))

    def after_first(self, h: torch.Tensor) -> torch.Tensor:
        """The rest of the MLP from its first layer's output `h` (pre-activation), for
        inference (ReLUs in place); an MLP without skips."""
        if self.skips:
            raise ValueError("after_first is for MLPs without skips")
        last = len(self.linears) - 1
        for i, linear in enumerate(self.linears):
            if i:
                h = linear(h)
            if i < last:
                h = torch.relu_(h) if isinstance(self.act, nn.ReLU) else self.act(h)
            else:
                h = self.out_act(h)
        return h
