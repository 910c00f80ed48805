"""Lip sync of a whole video's mouth against its audio, by a SyncScorer (`geneface eval`).

`score_sync` takes the video's canonical landmarks (T x 68 x 3, pose removed), which frames
really had a face, the audio's features and a SyncScorer, and reports `SyncScores`:
confidence at offset 0, the best offset, the offset confidence and the whole curve over
offsets. A 5-frame window that would contain a faceless frame is left out: the face frames
are cut into runs at the faceless ones (`face_runs`) and each run is scored on its own (runs
shorter than one window are left out, and counted); the runs' curves are then pooled,
window-weighted.
"""

from __future__ import annotations

from typing import Optional

import attrs
import numpy as np

from geneface.core.arrays import true_runs
from geneface.core.records import VIDEO_FPS, AudioFeatures, Motion
from geneface.errors import UsageError

DEFAULT_MAX_OFFSET = 15  # frames searched each way, as SyncNet's own offset search (vshift 15)


@attrs.frozen
class SyncScores:
    """Lip sync of the video's re-tracked mouth against the audio, by a SyncScorer.

    `confidence`: mean sync probability at offset 0 (higher is better); `offset`: the audio
    delay in frames that fits best (0 = in sync; positive: the audio lags the picture);
    `offset_confidence`: median - min of the distance curve (SyncNet's LSE-C); `curve[i]`:
    the mean sync probability with the audio shifted by `offsets[i]` frames. `windows`:
    5-frame windows scored at offset 0; `segments`: the [start, end) runs of face frames
    scored; `frames_left_out`: frames in no scored run (no face, a run shorter than one
    window, or past the end of the audio).
    """

    checkpoint: str
    scorer: str
    encoder: str
    max_offset: int
    confidence: float
    offset: int
    offset_confidence: float
    offsets: tuple = attrs.field(converter=tuple)
    curve: tuple = attrs.field(converter=tuple)
    windows: int = 0
    frames_scored: int = 0
    segments: tuple = attrs.field(default=(), converter=tuple)
    frames_left_out: tuple = attrs.field(default=(), converter=tuple)

    def score_at(self, offset: int) -> Optional[float]:
        """The curve's value at `offset` frames (None outside the range searched)."""
        return dict(zip(self.offsets, self.curve)).get(int(offset))


def face_runs(found: np.ndarray, n: int, min_length: int) -> tuple[list, list]:
    """([start, end) runs of face frames among the first `n`, at least `min_length` long;
    the frames in no such run)."""
    mask = np.zeros(len(found), bool)
    mask[:n] = found[:n]
    kept = [(int(a), int(b)) for a, b in true_runs(mask) if b - a >= min_length]
    covered = np.zeros(len(found), bool)
    for a, b in kept:
        covered[a:b] = True
    return kept, np.flatnonzero(~covered).tolist()


def score_sync(canonical: np.ndarray, found: np.ndarray, features: AudioFeatures, scorer,
               max_offset: int = DEFAULT_MAX_OFFSET, checkpoint: str = "") -> SyncScores:
    """Score canonical landmarks (T x 68 x 3; rows where `found` is False are ignored)
    against their audio features with a SyncScorer.

    One normalisation for the whole video: its face frames' own per-coordinate mean and
    spread, which is what a dataset's statistics are for one person (the syncnet plugin does
    the same for a bare sequence). Every run of face frames is scored on its own; with one
    run (every frame has a face) the result is the scorer's own. With several, the offset-0
    confidence is the window-weighted mean of the runs'; the curve is the window-weighted
    mean over the runs long enough for the widest offset range any run reaches (shorter runs
    count at offset 0 only); the best offset is that curve's maximum and the offset
    confidence the window-weighted mean of those runs' own.
    """
    from geneface.models.syncnet import V_FRAMES

    canonical = np.asarray(canonical, np.float32)
    found = np.asarray(found, bool)
    n = min(len(canonical), features.n_frames // 2)  # audio shorter than the video: its end is left out
    segments, left_out = face_runs(found, n, V_FRAMES)
    if not segments:
        raise UsageError(f"lip sync needs at least {V_FRAMES} consecutive frames with a face and audio; "
                         f"none among {len(canonical)} frames ({int(found.sum())} with a face, audio for {n})")
    faces = canonical[found]
    mean, std = faces.mean(axis=0), faces.std(axis=0)
    results = []
    for a, b in segments:
        motion = Motion(canonical[a:b], VIDEO_FPS, mean=mean, std=std)
        part = AudioFeatures(features.values[2 * a: 2 * b], features.frame_rate, features.encoder, features.channels)
        results.append(scorer.score(motion, part, max_offset=max_offset))
    windows = [int(r.n_windows) for r in results]
    common = dict(checkpoint=checkpoint, scorer=getattr(scorer, "name", type(scorer).__name__),
                  encoder=features.encoder, max_offset=int(max_offset), windows=sum(windows),
                  frames_scored=sum(b - a for a, b in segments), segments=segments,
                  frames_left_out=left_out)
    if len(results) == 1:
        r = results[0]
        return SyncScores(confidence=float(r.confidence), offset=int(r.offset),
                          offset_confidence=float(r.offset_confidence), offsets=[int(k) for k in r.offsets],
                          curve=[float(v) for v in r.curve], **common)
    confidence = float(np.average([r.confidence for r in results], weights=windows))
    widest = max(len(r.offsets) for r in results)
    full = [(r, w) for r, w in zip(results, windows) if len(r.offsets) == widest]
    # The curve averages the windows each offset shares (all but k_max at either end).
    weights = [max(w - (widest - 1), 1) for _, w in full]
    curve = np.average([np.asarray(r.curve, np.float64) for r, _ in full], axis=0, weights=weights)
    offsets = [int(k) for k in full[0][0].offsets]
    return SyncScores(confidence=confidence, offset=offsets[int(np.argmax(curve))],
                      offset_confidence=float(np.average([r.offset_confidence for r, _ in full], weights=weights)),
                      offsets=offsets, curve=curve.tolist(), **common)
