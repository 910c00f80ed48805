"""Per-utterance feature normalisation: each channel of one utterance to zero mean, unit spread.

Why: a voice, a microphone and a room shift and scale every mel channel; a model trained on a
few dozen speakers learns those offsets as if they were speech. Normalising each utterance
over its own frames removes them. Training and inference must agree, so the models that use
it (`vae`, `syncnet`) record `utterance_norm` in their config and apply it to whatever
features they are given.
"""

from __future__ import annotations

import numpy as np

MIN_STD = 1e-3  # a channel that does not move (silence, a padded band) is only centred


def utterance_normalize(values: np.ndarray) -> np.ndarray:
    """T x D features -> the same, each channel centred and scaled over the T frames."""
    v = np.asarray(values, dtype=np.float32)
    if len(v) == 0:
        return v
    std = v.std(0)
    return ((v - v.mean(0)) / np.where(std > MIN_STD, std, 1.0)).astype(np.float32)
