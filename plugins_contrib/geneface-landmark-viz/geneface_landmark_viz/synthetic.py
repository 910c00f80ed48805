"""A parametric 68-point face and a speaking-like jaw motion, for tests, docs and benchmarks.

Not anyone's real shape: a symmetric face drawn from ellipses in the iBUG 68 order, in "face
units" (about 2 wide), with the axis convention the renderer assumes (x right, y down, z away
from the camera). Opening the mouth drops the lower lip and the jaw, the chin most, and moves
the chin slightly back, as a jaw rotating about the ears does; nothing above the mouth moves.
"""

from __future__ import annotations

import numpy as np

from geneface.core.records import VIDEO_FPS, Motion


def _lip(n_upper: int, n_lower: int, half_width: float, upper: float, lower: float, y0: float, z0: float):
    """Lip ring from the left corner over the top to the right corner, then back under the
    bottom; returns points and, per point, how much a jaw opening moves it (0 on the upper lip)."""
    top = np.pi - np.arange(n_upper + 1) * np.pi / n_upper  # pi .. 0: left corner -> right corner
    bottom = -np.arange(1, n_lower + 1) * np.pi / (n_lower + 1)  # right -> left, under the mouth
    angles = np.concatenate([top, bottom])
    sin = np.sin(angles)
    x = half_width * np.cos(angles)
    y = y0 - np.where(sin > 0, upper, lower) * sin
    z = z0 + 0.08 * (x / half_width) ** 2  # corners sit back a little
    weight = np.clip(-sin, 0.0, None)  # lower lip only, most at the middle
    return np.stack([x, y, z], axis=1), weight


def neutral_face() -> tuple[np.ndarray, np.ndarray]:
    """(68 x 3 neutral landmarks, 68 jaw weights: how far each point follows a jaw opening)."""
    points = np.zeros((68, 3))
    weight = np.zeros(68)

    a = np.linspace(0.0, np.pi, 17)  # jaw: image-left ear -> chin (8) -> image-right ear
    points[0:17, 0] = -np.cos(a) * (1.0 - 0.25 * np.sin(a) ** 2)
    points[0:17, 1] = -0.3 + 1.3 * np.sin(a)
    points[0:17, 2] = 0.75 - 0.8 * np.sin(a)
    weight[0:17] = np.sin(a) ** 2

    s = np.linspace(0.0, 1.0, 5)  # brows, arched; left outer -> inner, right inner -> outer
    points[17:22, 0] = -0.85 + 0.7 * s
    points[22:27, 0] = 0.15 + 0.7 * s
    points[17:27, 1] = -0.62 - 0.1 * np.sin(np.pi * np.concatenate([s, s]))
    points[17:27, 2] = 0.05 + 0.3 * points[17:27, 0] ** 2

    points[27:31] = np.stack([np.zeros(4), np.linspace(-0.35, 0.12, 4), np.linspace(-0.12, -0.45, 4)], 1)
    points[31:36] = np.stack(
        [np.linspace(-0.2, 0.2, 5), [0.18, 0.21, 0.23, 0.21, 0.18], [-0.22, -0.28, -0.32, -0.28, -0.22]], 1
    )

    # Eyes, each from its image-left corner over the upper lid to its image-right corner and
    # back under the lower lid: iBUG order for both (left eye outer -> inner, right inner -> outer).
    eye = np.array([[-0.15, 0.0], [-0.05, -0.05], [0.05, -0.05], [0.15, 0.0], [0.05, 0.045], [-0.05, 0.045]])
    for start, cx in ((36, -0.45), (42, 0.45)):
        points[start:start + 6, 0] = cx + eye[:, 0]
        points[start:start + 6, 1] = -0.35 + eye[:, 1]
        points[start:start + 6, 2] = 0.25 * points[start:start + 6, 0] ** 2

    points[48:60], weight[48:60] = _lip(6, 5, 0.36, 0.12, 0.13, 0.5, -0.2)
    points[60:68], weight[60:68] = _lip(4, 3, 0.26, 0.03, 0.03, 0.5, -0.15)
    return points, weight


def mouth_motion(openness: np.ndarray, fps: float = VIDEO_FPS, scale: float = 1.0) -> Motion:
    """A Motion whose mouth opens by `openness[t]` face units at frame t (0: closed, ~0.3: wide)."""
    openness = np.asarray(openness, dtype=np.float64).reshape(-1, 1)
    face, weight = neutral_face()
    lm = np.repeat(face[None], len(openness), axis=0)
    lm[:, :, 1] += openness * weight  # down
    lm[:, :, 2] += 0.3 * openness * weight  # and a little back
    return Motion((lm * scale).astype(np.float32), fps=fps)


def talking_motion(n_frames: int = 100, fps: float = VIDEO_FPS, seed: int = 0) -> Motion:
    """Syllable-like mouth openings (about 4 per second, varying depth) for `n_frames` frames."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / fps
    depth = 0.12 + 0.1 * rng.random(int(n_frames / fps * 4) + 2)  # one depth per syllable
    syllable = (t * 4).astype(int)
    openness = depth[syllable] * np.sin(np.pi * (t * 4 % 1.0)) ** 2
    return mouth_motion(openness, fps)
