"""Is every clip of a person the same person? A rule from the tracker's landmarks alone.

Each clip's identity shape: its mean face, the one `geneface process` fits the head pose with
(`camera/pose.npz` "canonical_mesh": every tracked point of the tracker's mesh averaged over the
clip's frames in the canonical head frame, pose removed, outer eye corners `EYE_CORNER_DISTANCE`
apart), x and y only (the tracker's depth is its own guess from one view), centred, in units of
the eye-corner distance. A clip's distance is the root-mean-square distance of its points to the
median (point by point) of the other clips' shapes: with two clips, their distance to each other
(both flagged, as nothing says which is the intruder); with many, an intruder cannot pull the
reference its way. A person of one clip has nothing to compare with.

Why the whole mesh: fewer points (the 68 keypoints' nose and eye corners, or the pose's stable
points) set two clips of one person filmed on different occasions further apart than two
different persons (measured below); the whole face's proportions keep them apart best, though
not by much. The threshold is measured for the mediapipe tracker.

A clip whose distance exceeds `THRESHOLD` is taken for another person: `geneface process`
refuses it, or with `--identity warn` keeps it and records the warning. The distances of every
clip go into the person's manifest (`identity`). docs/dataset_format.md, "A person from several
clips", gives the measurements the threshold comes from.
"""

from __future__ import annotations

from typing import Sequence

import attrs
import numpy as np

from geneface.processing.pose import EYE_CORNER_DISTANCE

# Measured at 128 px with mediapipe (benchmarks/bench_identity.py; docs/dataset_format.md, "A
# person from several clips"). Same person: 461 GRID s1 clips (one studio), each against the
# others' median: median 0.0056, 99th percentile 0.0112, max 0.0170; Obama clips 1-3 (three
# occasions) 0.0111 to 0.0184; two clips of one person from different occasions: Obama 0.0102,
# 0.0184, 0.0198, Fei-Fei Li clips 1 and 3 0.0226 (the largest same-person distance seen).
# Other persons: each of 472 clips of other persons (461 GRID, 11 corpus clips of 10 persons)
# added to Obama's three clips reads 0.0231 (Kristi Noem) or more, median 0.0322, while Obama's
# own clips then read at most 0.0208; the 14 corpus clips added to GRID s1 0.0303 or more; 87
# pairs of clips of two different persons 0.0200 to 0.0607, median 0.0359, 83 above 0.023. So
# 0.023 refuses none of the same-person clips measured and every intruder among several clips
# of one person, with a thin margin at both ends (0.0226 and 0.0231): a person who looks alike
# can pass, two clips of one person filmed far apart can be flagged (then --identity warn),
# which is why every distance is kept in the manifest. The synthetic subject (64 px, 2-s clips):
# its three clips 0.0126-0.0186, another face (--face-width -0.15 --face-length 0.15) 0.0733.
THRESHOLD = 0.023

MODES = ("refuse", "warn")


def identity_shape(canonical_mesh: np.ndarray) -> np.ndarray:
    """(N, 2) the identity shape of one clip from its (N, 3) mean face in the canonical frame."""
    mesh = np.asarray(canonical_mesh, np.float64)[:, :2]
    return (mesh - mesh.mean(axis=0)) / EYE_CORNER_DISTANCE


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
        """The clips over the threshold, farthest first (with three clips, one an intruder, the
        other two read high as well: the median of two is their mean)."""
        return sorted(((n, d) for n, d in zip(self.names, self.distances) if d > self.threshold), key=lambda x: -x[1])

    def lines(self) -> list[str]:
        """One line per clip taken for another person."""
        return [f"clip '{n}' looks like another person: identity distance {d:.4f} > threshold "
                f"{self.threshold:.4f} (eye-corner units, from the tracked landmarks)"
                for n, d in self.outliers]

    def to_manifest(self) -> dict:
        return {
            "rule": "RMS distance of each clip's mean face (canonical mesh, x and y, centred, outer eye corners "
                    "1 apart) to the median of the other clips' (geneface.processing.identity)",
            "threshold": self.threshold,
            "mode": self.mode,
            "distances": {n: round(float(d), 5) for n, d in zip(self.names, self.distances)},
            "flagged": [n for n, _ in self.outliers],
        }


def check_identity(names: Sequence[str], datasets: Sequence, mode: str = "refuse",
                   threshold: float = THRESHOLD) -> IdentityCheck:
    """The rule over the clips' datasets (`geneface.core.dataset.Dataset`, in order)."""
    shapes = [identity_shape(ds.pose()["canonical_mesh"]) for ds in datasets]
    if len({s.shape for s in shapes}) > 1:
        from geneface.errors import UsageError

        raise UsageError(f"the clips' meshes differ in size ({', '.join(str(len(s)) for s in shapes)} points): "
                         "process every clip of a person with the same --tracker")
    distances = shape_distances(shapes)
    return IdentityCheck(tuple(names), tuple(float(d) for d in distances), float(threshold), mode)
