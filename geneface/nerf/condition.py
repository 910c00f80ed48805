"""The landmark condition of a talking-head field: canonical 68 x 3 landmarks -> a small vector.

Only the points that carry expression go in: eyes (36-47, so a blink in the motion closes
the rendered eyes) and mouth (48-67), x and y of each (the tracker's depth is noisy and
adds nothing the outline does not). They are normalised with the renderer's own statistics
(the training video's), so motion from any generator is read on the scale the field was
trained on, and projected linearly to `dim` numbers. Keeping this small and linear is
deliberate: 20 s of video shows few expressions, and a field that reads the full landmark
vector memorises training frames instead of generalising to held-out ones (METHOD.md).
"""

from __future__ import annotations

from typing import Optional

import attrs
import torch
from torch import nn

from geneface.core.records import EYES, MOUTH, N_LANDMARKS

POINTS = tuple(range(EYES.start, EYES.stop)) + tuple(range(MOUTH.start, MOUTH.stop))


@attrs.define
class ConditionConfig:
    dim: int = attrs.field(default=16, validator=attrs.validators.gt(0))
    # Training only: Gaussian noise on the normalised landmarks (in units of their std), so
    # nearby unseen expressions map near the seen ones.
    noise: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))


class LandmarkCondition(nn.Module):
    """(F, 68, 3) canonical landmarks -> (F, dim); `mean`/`std` are set from the training data."""

    def __init__(self, config: ConditionConfig):
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.zeros(N_LANDMARKS, 3))
        self.register_buffer("std", torch.ones(N_LANDMARKS, 3))
        self.register_buffer("points", torch.tensor(POINTS, dtype=torch.long), persistent=False)
        self.project = nn.Linear(2 * len(POINTS), config.dim)

    def normalise(self, landmarks: torch.Tensor) -> torch.Tensor:
        return (landmarks - self.mean) / self.std.clamp(min=1e-6)

    def features(self, landmarks: torch.Tensor) -> torch.Tensor:
        """(F, 68, 3) -> the normalised x, y of the expression points (F, 2 * len(POINTS))."""
        return self.normalise(landmarks)[:, self.points, :2].flatten(1)

    def noise_like(self, z: torch.Tensor) -> Optional[torch.Tensor]:
        """The training noise for features `z` (drawn from torch's generator), None when off."""
        if self.training and self.config.noise > 0:
            return self.config.noise * torch.randn_like(z)
        return None

    def from_features(self, z: torch.Tensor, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.project(z if noise is None else z + noise)

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        z = self.features(landmarks)
        return self.from_features(z, self.noise_like(z))
