"""Is every clip of a person the same person? A rule from the tracker's landmarks alone.

Each clip's identity shape: the mean, over its tracked frames, of its canonical 68 keypoints
(head pose already removed by `geneface.processing.pose`) without the jaw and the mouth, which
speech moves, nor the eyelids, which blinks move, nor the brows, which expression moves (they
set two Obama clips filmed on different occasions apart more than two different persons): the
nose and the four eye corners (13 points), x and y only (the tracker's relative depth is its own guess from one view, not a
measurement), centred and scaled so that the outer eye corners are 1 apart. A clip's distance is the
root-mean-square distance of its shape's points to the median (point by point) of the other
clips' shapes, in eye-corner units: with two clips, their distance to each other (both flagged,
as nothing says which is the intruder); with many, an intruder cannot pull the reference its way.
A person of one clip has nothing to compare with.

A clip whose distance exceeds `THRESHOLD` is taken for another person: `geneface process`
refuses it, or with `--identity warn` keeps it and records the warning. The distances of every
clip go into the person's manifest (`identity`). docs/dataset_format.md, "A person from several
clips", gives the measurements the threshold comes from.
"""

from __future__ import annotations

from typing import Optional, Sequence

import attrs
import numpy as np

from geneface.core import landmarks68 as L68

# nose 27-35 and the eye corners 36, 39, 42, 45
IDENTITY_POINTS = np.concatenate([L68.NOSE_IDX, [36, 39, 42, 45]])
OUTER_EYE_CORNERS = (36, 45)

# Measured at 128 px (docs/dataset_format.md, "A person from several clips"; the rule as above).
# Same person: 300 GRID s1 clips (one studio), each against the others' median: median 0.0037,
# 99th percentile 0.0103, max 0.0116; Obama clips 1-3 (three occasions) 0.0051 / 0.0067 / 0.0088;
# pairs of one person's clips from different occasions: Obama 0.0053, 0.0085, 0.0098, Fei-Fei Li
# clips 1 and 3 0.0126 (the largest same-person distance seen). Other persons (14 corpus clips of
# 11 persons): every one of them against GRID s1's clips 0.0166 or more (all above 0.013);
# against Obama's three clips, median 0.0168, min 0.0114 (7 of 11 above 0.013); 87 pairs of
# different persons, median 0.0185, min 0.0088 (86 % above 0.013). The synthetic subject at
# 64 px, 2-s clips: its three clips 0.0028-0.0075; other identities: --identity-seed 3 0.0121-0.0159
# (three motion seeds: a mild random variation may pass), --face-width 0.15 --face-length 0.15
# 0.0159-0.0185, --face-width -0.15 --face-length 0.15 0.0395.
# So 0.013 refuses none of the same-person clips measured and most other persons; a person who
# looks alike (similar nose and eye spacing) can pass, which is why the distances are kept.
THRESHOLD = 0.013

MODES = ("refuse", "warn")


def identity_shape(canonical68: np.ndarray, usable: Optional[np.ndarray] = None) -> np.ndarray:
    """(P, 2) the identity shape of one clip from its (T, 68, 3) canonical keypoints (frames
    where `usable` is True; default all)."""
    lm = np.asarray(canonical68, np.float64)
    if usable is not None and np.any(usable):
        lm = lm[np.asarray(usable, bool)]
    mean = lm.mean(axis=0)
    eye = np.linalg.norm(mean[OUTER_EYE_CORNERS[1], :2] - mean[OUTER_EYE_CORNERS[0], :2])
    shape = mean[IDENTITY_POINTS, :2]
    return (shape - shape.mean(axis=0)) / max(eye, 1e-9)


def shape_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS over points of the distance between two identity shapes."""
    return float(np.sqrt(((np.asarray(a, np.float64) - b) ** 2).sum(axis=-1).mean()))


def shape_distances(shapes: Sequence[np.ndarray]) -> np.ndarray:
    """Each shape's distance to the point-by-point median of the others (zeros for one shape)."""
    stack = np.stack([np.asarray(s, np.float64) for s in shapes])
    if len(stack) < 2:
        return np.zeros(len(stack))
    return np.array([shape_distance(stack[k], np.median(np.delete(stack, k, axis=0), axis=0))
                     for k in range(len(stack))])


@attrs.frozen
class IdentityCheck:
    """The outcome of the rule over a person's clips, in the manifest's `identity` section."""

    names: tuple
    distances: tuple  # one per clip, eye-corner units
    threshold: float
    mode: str

    @property
    def outliers(self) -> list[tuple[str, float]]:
        return [(n, d) for n, d in zip(self.names, self.distances) if d > self.threshold]

    def lines(self) -> list[str]:
        """One line per clip taken for another person."""
        return [f"clip '{n}' looks like another person: identity distance {d:.3f} > threshold "
                f"{self.threshold:.3f} (eye-corner units, from the tracked landmarks)"
                for n, d in self.outliers]

    def to_manifest(self) -> dict:
        return {
            "rule": "RMS distance of each clip's mean canonical nose and eye corners (x, y; centred, outer eye "
                    "corners 1 apart) to the median shape of the other clips",
            "threshold": self.threshold,
            "mode": self.mode,
            "distances": {n: round(float(d), 5) for n, d in zip(self.names, self.distances)},
            "flagged": [n for n, _ in self.outliers],
        }


def check_identity(names: Sequence[str], datasets: Sequence, mode: str = "refuse",
                   threshold: float = THRESHOLD) -> IdentityCheck:
    """The rule over the clips' datasets (`geneface.core.dataset.Dataset`, in order)."""
    shapes = [identity_shape(ds.landmarks_canonical(), ds.usable()) for ds in datasets]
    distances = shape_distances(shapes)
    return IdentityCheck(tuple(names), tuple(float(d) for d in distances), float(threshold), mode)
