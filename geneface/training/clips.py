"""A training clip of the audio-to-motion models, in memory: `Clip` and `make_clip`.

Its own module so that both readers of clips, `data` (datasets and synthetic corpora) and
`lazy_clips` (an indexed corpus, read window by window), import it from below instead of
from each other.
"""

from __future__ import annotations

from typing import Optional

import attrs
import numpy as np

from geneface.core.records import N_LANDMARKS
from geneface.errors import UsageError


def _f32(value) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(value, dtype=np.float32))


@attrs.frozen(eq=False)
class Clip:
    name: str
    speaker: str
    landmarks: np.ndarray = attrs.field(converter=_f32)  # T x 204, normalised
    features: np.ndarray = attrs.field(converter=_f32)  # 2T x D
    encoder: str = ""
    mean: Optional[np.ndarray] = None  # 68 x 3 statistics the landmarks were normalised with
    std: Optional[np.ndarray] = None
    mouth_opening: Optional[np.ndarray] = None  # T, ground truth where the data has it (synthetic)
    source: str = ""  # the dataset folder
    split: str = ""  # "train"/"test" where the data fixes it (synthetic corpora), else ""

    def __attrs_post_init__(self):
        lm, ft = self.landmarks, self.features
        if lm.ndim != 2 or lm.shape[1] != N_LANDMARKS * 3:
            raise ValueError(f"clip {self.name}: landmarks must be T x 204, got {lm.shape}")
        if ft.ndim != 2 or ft.shape[0] != 2 * lm.shape[0]:
            raise ValueError(f"clip {self.name}: need 2 feature frames per video frame, got {ft.shape[0]} "
                             f"for {lm.shape[0]} frames")
        if not (np.all(np.isfinite(lm)) and np.all(np.isfinite(ft))):
            raise ValueError(f"clip {self.name}: landmarks or features contain NaN or infinite values")

    @property
    def n_frames(self) -> int:
        return int(self.landmarks.shape[0])

    @property
    def width(self) -> int:
        return int(self.features.shape[1])

    def piece(self, start: int, end: int, suffix: str = "") -> "Clip":
        """Frames [start, end) (and their features) as a clip of their own."""
        return attrs.evolve(self, name=f"{self.name}{suffix}", landmarks=self.landmarks[start:end],
                            features=self.features[2 * start: 2 * end],
                            mouth_opening=None if self.mouth_opening is None else self.mouth_opening[start:end])

    def denormalized(self) -> np.ndarray:
        """T x 68 x 3 landmarks in the dataset's units."""
        lm = self.landmarks.reshape(-1, N_LANDMARKS, 3)
        if self.mean is None or self.std is None:
            return lm
        return lm * np.maximum(self.std, 1e-6) + self.mean


def make_clip(name: str, speaker: str, landmarks: np.ndarray, features: np.ndarray, mean=None, std=None,
              encoder: str = "", mouth_opening=None, source: str = "", split: str = "") -> Clip:
    """A Clip from raw T x 68 x 3 landmarks (normalised here by `mean`/`std` when given).

    Feature and landmark lengths are reconciled by trimming to the shorter (a feature file one
    frame longer than the video is common and harmless); a gap of more than 2 video frames is
    an error, since it means the two do not belong together.
    """
    landmarks = _f32(landmarks)
    features = _f32(features)
    n = min(len(landmarks), len(features) // 2)
    if abs(len(landmarks) - len(features) / 2) > 2:
        raise UsageError(f"{source or name}: {len(landmarks)} landmark frames but {len(features)} feature frames "
                         "(expected two per video frame)")
    lm = landmarks[:n]
    if mean is not None and std is not None:
        lm = (lm - _f32(mean)) / np.maximum(_f32(std), 1e-6)
    opening = None if mouth_opening is None else _f32(mouth_opening)[:n]
    try:
        return Clip(name, speaker, lm.reshape(n, -1), features[: 2 * n], encoder,
                    None if mean is None else _f32(mean), None if std is None else _f32(std), opening, source, split)
    except ValueError as exc:  # NaN in a file, a wrong shape: the user's data, not a bug
        raise UsageError(f"{source or name}: {exc}") from None
