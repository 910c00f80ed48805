"""The mouth's timing and liveliness against the truth: generated motion vs a clip's landmarks.

On the mouth opening (`geneface.core.landmarks68.mouth_opening`, the inner-lip gap) of both:

- `pearson`: Pearson r of two series (None for a (nearly) constant or too short one);
- `lag_curve`: r at every lag -k..k the clip allows (`lag_range`: at most `MAX_LAG`, and
  every lagged pair keeps at least `MIN_OVERLAP` frames and half the clip). Lag k pairs
  generated frame t + k with true frame t (`lagged`), so a positive lag means the generated
  mouth moves late; `best_lag` picks the lag of the highest r;
- `amplitude_ratio`: std of the generated opening / std of the true one (1: as lively).

`score_clip` gives one clip's figures (`ClipScores`, with the landmark-level
`geneface.metrics.motion.MotionScores`: mouth LMD, mouth statistics, lip sync);
`RunningRow` pools clips into one row, every frame weighing the same, the correlations also
on every frame of the clips pooled. Used by `geneface bench motion`.
"""

from __future__ import annotations

import math
from typing import Optional

import attrs
import numpy as np

from geneface.metrics.motion import MM, RunningMotionScores, score_motion

MAX_LAG = 5  # frames searched each way for the best mouth-opening lag
MIN_OVERLAP = 5  # frames a lagged pair must still share (and at least half the clip)


def pearson(a, b) -> Optional[float]:
    """Pearson r of two equal-length series; None when either is (nearly) constant or too short."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) != len(b):
        raise ValueError(f"series differ in length: {len(a)} and {len(b)}")
    if len(a) < 3:
        return None
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()), 1e-300)
    if den <= (1e-9 * scale) ** 2 * len(a):
        return None
    return float(np.clip((a * b).sum() / den, -1.0, 1.0))


def lag_range(n_frames: int, max_lag: int = MAX_LAG) -> int:
    """The lags searched each way for a clip of `n_frames`: at most `max_lag`, and every lagged
    pair keeps at least MIN_OVERLAP frames and half the clip."""
    return max(0, min(max_lag, n_frames - max(MIN_OVERLAP, int(math.ceil(n_frames / 2)))))


def lagged(gen: np.ndarray, true: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """The frames paired at `lag`: generated t + lag with true t (positive: generated late)."""
    n = len(true)
    if lag >= 0:
        return gen[lag:n], true[: n - lag]
    return gen[: n + lag], true[-lag:n]


def lag_curve(gen, true, max_lag: int = MAX_LAG) -> dict[int, Optional[float]]:
    """Pearson r of the two openings at every lag the clip allows (`lag_range`)."""
    gen, true = np.asarray(gen, np.float64), np.asarray(true, np.float64)
    k = lag_range(len(true), max_lag)
    return {lag: pearson(*lagged(gen, true, lag)) for lag in range(-k, k + 1)}


def best_lag(curve: dict) -> tuple[Optional[int], Optional[float]]:
    """The lag of the highest r (ties: the smallest |lag|, then the earlier) and that r."""
    scored = [(r, lag) for lag, r in curve.items() if r is not None]
    if not scored:
        return None, None
    r, lag = max(scored, key=lambda x: (x[0], -abs(x[1]), -x[1]))
    return int(lag), float(r)


def amplitude_ratio(gen, true) -> Optional[float]:
    """std(generated opening) / std(true opening); None for a still true mouth."""
    s = float(np.std(true))
    return None if s <= 1e-12 else float(np.std(gen)) / s


@attrs.frozen
class ClipScores:
    """One model on one clip (see the module doc); None where a figure is undefined."""

    n_frames: int
    r_lag0: Optional[float]
    best_lag: Optional[int]
    r_best: Optional[float]
    lags: tuple  # the lags searched, -k..k
    amplitude_ratio: Optional[float]
    motion: object  # geneface.metrics.motion.MotionScores: mouth statistics, LMD, sync

    def as_dict(self) -> dict:
        m = self.motion.as_dict()
        return {"n_frames": self.n_frames, "r_lag0": self.r_lag0, "best_lag": self.best_lag, "r_best": self.r_best,
                "lag_range": [self.lags[0], self.lags[-1]] if self.lags else None,
                "amplitude_ratio": self.amplitude_ratio, "lmd": None if m["lmd_mm"] is None else m["lmd_mm"] / MM,
                "lmd_mm": m["lmd_mm"], "sync_confidence": m["sync_confidence"], "sync_offset": m["sync_offset"],
                "mouth_std_gen": m["mouth_std_gen"], "mouth_std_true": m["mouth_std_true"],
                "mouth_mean_gen": m["mouth_mean_gen"], "mouth_mean_true": m["mouth_mean_true"]}


def score_clip(generated, true, sync_result=None, max_lag: int = MAX_LAG) -> ClipScores:
    """Generated vs true landmarks of one clip (T x 68 x 3, both in the clip's face and units)
    and, when given, the SyncScorer's result for the generated motion."""
    from geneface.core.landmarks68 import mouth_opening

    motion = score_motion(generated, true, sync_result)  # checks shapes, lengths and NaN
    g, t = mouth_opening(generated), mouth_opening(true)
    curve = lag_curve(g, t, max_lag)
    lag, r = best_lag(curve)
    return ClipScores(len(t), curve.get(0), lag, r, tuple(sorted(curve)), amplitude_ratio(g, t), motion)


class RunningRow:
    """Pools clips into one row: frame-weighted means of the per-clip figures (over the clips
    where each is defined), the correlations on every frame pooled, and the pooled motion
    scores (`RunningMotionScores`: LMD, mouth statistics, sync)."""

    def __init__(self, max_lag: int = MAX_LAG) -> None:
        self.max_lag = max_lag
        self.clips = 0
        self.frames = 0
        self._sums: dict[str, list[float]] = {}  # name -> [weighted sum, weight, clips]
        self._motion = RunningMotionScores()
        self._gen: list[np.ndarray] = []
        self._true: list[np.ndarray] = []

    def _add(self, name: str, value, weight: int) -> None:
        if value is not None and math.isfinite(value):
            s = self._sums.setdefault(name, [0.0, 0, 0])
            s[0] += weight * float(value)
            s[1] += weight
            s[2] += 1

    def add(self, scores: ClipScores, gen_opening, true_opening) -> None:
        n = scores.n_frames
        self.clips += 1
        self.frames += n
        self._add("r_lag0", scores.r_lag0, n)
        self._add("r_best", scores.r_best, n)
        self._add("best_lag", scores.best_lag, n)
        self._add("abs_best_lag", None if scores.best_lag is None else abs(scores.best_lag), n)
        self._add("amplitude_ratio", scores.amplitude_ratio, n)
        self._motion.add(scores.motion)
        self._gen.append(np.asarray(gen_opening, np.float64))
        self._true.append(np.asarray(true_opening, np.float64))

    def _mean(self, name: str) -> Optional[float]:
        s = self._sums.get(name)
        return None if not s or s[1] == 0 else s[0] / s[1]

    def result(self) -> dict:
        if not self.clips:
            raise ValueError("no clips were scored")
        m = self._motion.result().as_dict()
        # Pooled: every frame of every clip as one series (in the clips' own units), at each lag
        # the pairs of every clip that allows it.
        curve = {}
        for lag in range(-self.max_lag, self.max_lag + 1):
            pairs = [lagged(g, t, lag) for g, t in zip(self._gen, self._true) if abs(lag) <= lag_range(len(t), self.max_lag)]
            if pairs:
                curve[lag] = pearson(np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]))
        pooled_lag, pooled_r = best_lag(curve)
        gen_all, true_all = np.concatenate(self._gen), np.concatenate(self._true)
        return {
            "clips": self.clips, "n_frames": self.frames,
            "r_lag0": self._mean("r_lag0"), "best_lag": self._mean("best_lag"),
            "abs_best_lag": self._mean("abs_best_lag"), "r_best": self._mean("r_best"),
            "clips_with_r": self._sums.get("r_lag0", [0, 0, 0])[2],
            "r_lag0_pooled": pearson(gen_all, true_all), "best_lag_pooled": pooled_lag, "r_best_pooled": pooled_r,
            "amplitude_ratio": self._mean("amplitude_ratio"), "amplitude_ratio_pooled": amplitude_ratio(gen_all, true_all),
            "lmd": None if m["lmd_mm"] is None else m["lmd_mm"] / MM, "lmd_mm": m["lmd_mm"],
            "sync_confidence": m["sync_confidence"], "sync_offset": m["sync_offset"],
            "mouth_mean_gen": m["mouth_mean_gen"], "mouth_std_gen": m["mouth_std_gen"],
            "mouth_mean_true": m["mouth_mean_true"], "mouth_std_true": m["mouth_std_true"],
        }
