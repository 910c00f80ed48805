"""1-D building blocks shared by the motion models: residual conv blocks and a WaveNet stack,
and `length_invariant_convs`, the setting under which a window of a sequence comes out of
them bit for bit as it does inside the whole sequence."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def length_invariant_convs():
    """CPU convolutions without oneDNN while inside (restored after).

    oneDNN picks its kernel and blocking by the input's length, so the same output frame can
    differ in the last bits between a window and the whole sequence; the plain path (im2col
    and one GEMM) sums every output in the same order whatever the length, which windowed and
    streamed inference need to equal one pass exactly. Only the one switch is touched
    (`torch.backends.mkldnn.flags` would also reset TF32 and precision settings).
    """
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


class ResBlock1d(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input (same width, same length)."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, kernel, padding=pad, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(inplace=True),
            nn.Conv1d(channels, channels, kernel, padding=pad, bias=False),
            nn.BatchNorm1d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


def conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
    )


class WaveNet(nn.Module):
    """Gated, non-causal WaveNet stack with a global-in-time condition fed to every layer.

    x: B x hidden x T, cond: B x cond_channels x T (same T) -> B x hidden x T (sum of skips).
    Each layer: tanh(Wf x + Vf c) * sigmoid(Wg x + Vg c), then a residual and a skip path.
    """

    def __init__(self, hidden: int, kernel: int, n_layers: int, cond_channels: int = 0, dilation_rate: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd (same-length output), got {kernel}")
        self.hidden = hidden
        self.n_layers = n_layers
        self.in_layers = nn.ModuleList()
        self.res_skip = nn.ModuleList()
        self.dilations = [dilation_rate ** i for i in range(n_layers)]
        self.kernel = kernel
        self.drop = nn.Dropout(dropout)
        self.cond = nn.Conv1d(cond_channels, 2 * hidden * n_layers, 1) if cond_channels else None
        for i, d in enumerate(self.dilations):
            self.in_layers.append(nn.Conv1d(hidden, 2 * hidden, kernel, dilation=d, padding=d * (kernel - 1) // 2))
            # The last layer has no residual path, only a skip.
            self.res_skip.append(nn.Conv1d(hidden, 2 * hidden if i < n_layers - 1 else hidden, 1))

    @property
    def reach(self) -> int:
        """Frames of context on each side one output frame depends on."""
        return sum(d * (self.kernel - 1) // 2 for d in self.dilations)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        out = torch.zeros_like(x)
        g = self.cond(cond) if (self.cond is not None and cond is not None) else None
        h = self.hidden
        for i, (conv, rs) in enumerate(zip(self.in_layers, self.res_skip)):
            a = conv(x)
            if g is not None:
                a = a + g[:, 2 * h * i: 2 * h * (i + 1)]
            acts = self.drop(torch.tanh(a[:, :h]) * torch.sigmoid(a[:, h:]))
            r = rs(acts)
            if i < self.n_layers - 1:
                x = x + r[:, :h]
                out = out + r[:, h:]
            else:
                out = out + r
        return out
