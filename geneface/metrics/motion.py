"""Scores of generated motion against the true motion of the same frames (landmark level).

Used by `geneface bench adapters` and by anything else that judges motion before rendering
(a sweep over checkpoints, a training run's report). Both sequences are T x 68 x 3 in the
same units (a person's canonical landmarks, about metres), frame t against frame t:

- mouth statistics: mean and spread over frames of the mouth opening
  (`geneface.core.landmarks68.mouth_opening`, the inner-lip gap), and `mouth_gap`, how far the
  generated statistics are from the true ones in units of the true spread:
  (|mean_gen - mean_true| + |std_gen - std_true|) / std_true (0: the same statistics). It
  needs no frame-by-frame agreement, so it also judges motion whose timing is free (a sample
  of a VAE): does the mouth open as wide and vary as much as this person's does?
- `lmd_mm`: LMD as the field reports it (mouth points 48-67, each frame's set centred on its
  own mean, mean L2 distance), here on canonical 3-D landmarks, x1000 (millimetres when the
  units are metres); `landmark_mm`: mean L2 over all 68 points, not centred (face shape and
  placement count too).
- lip sync, when a `SyncResult` is given: the SyncScorer's confidence at offset 0 and its best
  offset.

`RunningMotionScores` pools the scores of several clips, weighting every frame the same: the
pooled mouth statistics are those of all frames together (not a mean of per-clip spreads),
and the pooled sync offset is the best offset of the window-weighted mean curve.
"""

from __future__ import annotations

import math
from typing import Optional

import attrs
import numpy as np

from geneface.core.landmarks68 import as_sequence
from geneface.core.records import MOUTH
from geneface.errors import UsageError

MM = 1000.0  # canonical units are about metres


def _sequence(landmarks, name: str) -> np.ndarray:
    return as_sequence(landmarks, name)


@attrs.frozen
class MouthStatistics:
    """Mean and standard deviation over `n_frames` frames of the mouth opening."""

    mean: float
    std: float
    n_frames: int


def mouth_statistics(landmarks) -> MouthStatistics:
    """T x 68 x 3 (or T x 204) landmarks -> statistics of their mouth opening."""
    from geneface.core.landmarks68 import mouth_opening

    opening = mouth_opening(_sequence(landmarks, "landmarks"))
    return MouthStatistics(float(opening.mean()), float(opening.std()), int(len(opening)))


def mouth_gap(gen: MouthStatistics, true: MouthStatistics) -> float:
    """(|mean_gen - mean_true| + |std_gen - std_true|) / std_true: 0 for the same statistics.

    A still true mouth (std 0) gives 0 when the generated one matches it and inf otherwise.
    """
    diff = abs(gen.mean - true.mean) + abs(gen.std - true.std)
    if true.std <= 1e-12:
        return 0.0 if diff <= 1e-12 else math.inf
    return float(diff / true.std)


def lmd_per_frame(generated, true) -> np.ndarray:
    """T: mean L2 distance of the mouth points 48-67, each frame's set centred on its mean."""
    a, b = _pair(generated, true)
    ma, mb = a[:, MOUTH], b[:, MOUTH]
    ma = ma - ma.mean(axis=1, keepdims=True)
    mb = mb - mb.mean(axis=1, keepdims=True)
    return np.linalg.norm(ma - mb, axis=-1).mean(axis=1)


def landmark_distance_per_frame(generated, true) -> np.ndarray:
    """T: mean L2 distance over all 68 points, not centred."""
    a, b = _pair(generated, true)
    return np.linalg.norm(a - b, axis=-1).mean(axis=1)


def _pair(generated, true) -> tuple[np.ndarray, np.ndarray]:
    a, b = _sequence(generated, "generated landmarks"), _sequence(true, "true landmarks")
    if len(a) != len(b):
        raise UsageError(f"landmark sequences differ in length: generated {len(a)}, true {len(b)} frames")
    return a, b


@attrs.frozen
class MotionScores:
    """Scores of one clip, or pooled over clips (`RunningMotionScores`).

    `mouth_true_*`, `mouth_gap`, `lmd_mm`, `landmark_mm` are None without a true sequence;
    the `sync_*` fields are None without a sync result (or when the clips are too short for
    one window). `sync_offsets`/`sync_curve`: the scorer's mean score per audio offset.
    """

    n_frames: int
    mouth_mean_gen: float
    mouth_std_gen: float
    mouth_mean_true: Optional[float] = None
    mouth_std_true: Optional[float] = None
    mouth_gap: Optional[float] = None
    lmd_mm: Optional[float] = None
    landmark_mm: Optional[float] = None
    sync_confidence: Optional[float] = None
    sync_offset: Optional[int] = None
    sync_windows: int = 0
    sync_offsets: tuple = attrs.field(default=(), converter=tuple)
    sync_curve: tuple = attrs.field(default=(), converter=tuple)

    def as_dict(self, curve: bool = False) -> dict:
        """Plain JSON-ready numbers (non-finite ones as None); the sync curve only if asked."""
        out = {}
        for field in attrs.fields(MotionScores):
            if field.name in ("sync_offsets", "sync_curve") and not curve:
                continue
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out


def score_motion(generated_landmarks, true_landmarks=None, sync_result=None) -> MotionScores:
    """Score one clip: generated vs true landmarks (T x 68 x 3, same units, frame for frame)
    and, when given, the SyncScorer's result (`geneface.core.stages.SyncResult`) of the
    generated motion against its audio."""
    gen = _sequence(generated_landmarks, "generated landmarks")
    g = mouth_statistics(gen)
    fields = dict(n_frames=len(gen), mouth_mean_gen=g.mean, mouth_std_gen=g.std)
    if true_landmarks is not None:
        true = _sequence(true_landmarks, "true landmarks")
        t = mouth_statistics(true)
        fields.update(mouth_mean_true=t.mean, mouth_std_true=t.std, mouth_gap=mouth_gap(g, t),
                      lmd_mm=float(lmd_per_frame(gen, true).mean() * MM),
                      landmark_mm=float(landmark_distance_per_frame(gen, true).mean() * MM))
    if sync_result is not None:
        fields.update(sync_confidence=float(sync_result.confidence), sync_offset=int(sync_result.offset),
                      sync_windows=int(sync_result.n_windows), sync_offsets=tuple(int(k) for k in sync_result.offsets),
                      sync_curve=tuple(float(v) for v in sync_result.curve))
    return MotionScores(**fields)


class RunningMotionScores:
    """Frame-weighted pooling of per-clip `MotionScores`: `add` each clip, `result()` at the end.

    Mouth statistics are pooled exactly (mean and mean square over every frame); the gap is
    computed from the pooled statistics. LMD and landmark distance are means over frames.
    Sync confidence is weighted by each clip's frames (among clips that have a sync score);
    the pooled offset is the best of the window-weighted mean curve over the offsets every
    scored clip searched.
    """

    def __init__(self) -> None:
        self.n = 0
        self._gen = np.zeros(2)  # sum, sum of squares of the opening (via mean and std)
        self._true = np.zeros(2)
        self._n_true = 0
        self._lmd = 0.0
        self._landmark = 0.0
        self._sync = 0.0
        self._n_sync = 0
        self._windows = 0
        self._curves: list[tuple[dict, int]] = []

    def add(self, scores: MotionScores) -> None:
        n = scores.n_frames
        self.n += n
        self._gen += n * np.array([scores.mouth_mean_gen, scores.mouth_std_gen ** 2 + scores.mouth_mean_gen ** 2])
        if scores.mouth_mean_true is not None:
            m, s = scores.mouth_mean_true, scores.mouth_std_true
            self._true += n * np.array([m, s ** 2 + m ** 2])
            self._n_true += n
            self._lmd += n * scores.lmd_mm
            self._landmark += n * scores.landmark_mm
        if scores.sync_confidence is not None:
            self._sync += n * scores.sync_confidence
            self._n_sync += n
            self._windows += scores.sync_windows
            if scores.sync_offsets:
                self._curves.append((dict(zip(scores.sync_offsets, scores.sync_curve)), scores.sync_windows))

    @staticmethod
    def _stats(sums: np.ndarray, n: int) -> MouthStatistics:
        mean = sums[0] / n
        return MouthStatistics(float(mean), float(math.sqrt(max(sums[1] / n - mean ** 2, 0.0))), n)

    def result(self) -> MotionScores:
        if self.n == 0:
            raise ValueError("no clips were scored")
        g = self._stats(self._gen, self.n)
        fields = dict(n_frames=self.n, mouth_mean_gen=g.mean, mouth_std_gen=g.std)
        if self._n_true:
            t = self._stats(self._true, self._n_true)
            fields.update(mouth_mean_true=t.mean, mouth_std_true=t.std, mouth_gap=mouth_gap(g, t),
                          lmd_mm=self._lmd / self._n_true, landmark_mm=self._landmark / self._n_true)
        if self._n_sync:
            fields.update(sync_confidence=self._sync / self._n_sync, sync_windows=self._windows)
            common = sorted(set.intersection(*(set(c) for c, _ in self._curves))) if self._curves else []
            if common:
                total = sum(w for _, w in self._curves) or 1
                curve = [sum(c[k] * w for c, w in self._curves) / total for k in common]
                fields.update(sync_offset=int(common[int(np.argmax(curve))]), sync_offsets=common, sync_curve=curve)
        return MotionScores(**fields)
