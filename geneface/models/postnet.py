"""The adversarial postnet (METHOD.md, "DomainAdapter"): a residual 1-D CNN that corrects a
landmark sequence, and a per-frame MLP discriminator.

Both work on landmarks normalised by the target person's statistics (B x T x 204). The
generator's last layer starts at zero, so an untrained postnet is the identity and training
moves away from it only as far as the losses ask.
"""

from __future__ import annotations

import torch
from torch import nn

DIM = 204  # 68 points x 3


class _Res(nn.Module):
    """conv-LeakyReLU-conv plus the input (a 1x1 projection when the width changes).

    No batch norm: an adapter runs on one sequence of any length at inference, and must
    behave there as it did in training.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(nn.Conv1d(c_in, c_out, kernel, padding=pad), nn.LeakyReLU(0.2),
                                  nn.Conv1d(c_out, c_out, kernel, padding=pad))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv1d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.leaky_relu(self.skip(x) + self.body(x), 0.2)


class PostnetGenerator(nn.Module):
    """B x T x 204 -> B x T x 204: the input plus a learned correction."""

    def __init__(self, widths=(128, 256, 128), kernel: int = 5):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        self.inp = nn.Conv1d(DIM, widths[0], kernel, padding=kernel // 2)
        self.blocks = nn.Sequential(*[_Res(a, b, kernel) for a, b in zip((widths[0],) + widths[:-1], widths)])
        self.out = nn.Conv1d(widths[-1], DIM, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.reach = (kernel // 2) * (1 + 2 * len(widths))  # frames of context on each side

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.blocks(torch.nn.functional.leaky_relu(self.inp(z.transpose(1, 2)), 0.2))
        return z + self.out(h).transpose(1, 2)


class FrameDiscriminator(nn.Module):
    """One frame (204 numbers) -> a score, trained towards 1 for the person's real frames and
    0 for generated ones (least squares); 0.5 on both means it can no longer tell them apart."""

    def __init__(self, widths=(128, 256, 256, 128), dropout: float = 0.25):
        super().__init__()
        layers, c = [], DIM
        for w in widths:
            layers += [nn.Linear(c, w), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            c = w
        layers.append(nn.Linear(c, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames).squeeze(-1)


class PersonPostnet(nn.Module):
    """The exported adapter: the generator and the person's statistics (68 x 3 each)."""

    def __init__(self, widths=(128, 256, 128), kernel: int = 5):
        super().__init__()
        self.generator = PostnetGenerator(widths, kernel)
        self.register_buffer("person_mean", torch.zeros(68, 3))
        self.register_buffer("person_std", torch.zeros(68, 3))

    @property
    def fitted(self) -> bool:
        return bool(self.person_std.abs().sum() > 0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)
