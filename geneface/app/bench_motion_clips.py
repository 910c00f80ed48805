"""The clips `geneface bench motion` scores, and the features they are read with.

Two groups: the clips of the given datasets or corpora (`speaker_clips`: `load_clips`,
restricted to some speakers), and a person's held-out frames (`person_clips`: the last 1/11
of the person's video, `geneface.training.person_data`). Each `EvalClip` holds its features,
its true landmarks and the face statistics generated motion is put into. The features are
those of the SyncNet's audio encoder (`resolve_encoder`); an encoder that cannot run here is
still fine for data that stores its features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import attrs
import numpy as np

from geneface.core.stages import Stage
from geneface.errors import CheckpointError, UsageError

GROUP_SPEAKERS = "held-out speakers"
GROUP_PERSON = "person held-out"


class _StoredFeatures:
    """An audio encoder that cannot run here (an optional dependency is missing): its features
    can still be read from datasets that store them."""

    def __init__(self, name: str, reason: str):
        self.name, self._reason = name, reason

    def encode(self, audio):
        raise UsageError(f"audio encoder '{self.name}' cannot run here ({self._reason}) and the data does not "
                         "store its features")


def resolve_encoder(syncnet: Stage, registry, where: str = "--syncnet"):
    """The audio encoder the SyncNet was trained on: the features every model must read."""
    from geneface.errors import PluginError

    name = getattr(syncnet, "encoder", "")
    if not name:
        raise CheckpointError(f"{where}: the checkpoint does not name the audio encoder it was trained on; "
                              "retrain it with this version")
    try:
        return registry.get("audio_encoder", name, where=f"{where}: its audio encoder").cls()
    except PluginError as exc:
        return _StoredFeatures(name, str(exc))


@attrs.frozen(eq=False)
class EvalClip:
    """A clip to score: its features, its true landmarks (T x 68 x 3) and the face statistics
    generated motion is put into."""

    group: str
    name: str
    speaker: str
    source: str
    features: np.ndarray
    truth: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(len(self.truth))


def _face_stats(clip) -> tuple[np.ndarray, np.ndarray]:
    if clip.mean is not None and clip.std is not None:
        return clip.mean, clip.std
    truth = clip.denormalized()
    return truth.mean(0), truth.std(0) + 1e-6


def speaker_clips(data: Sequence[Path], encoder, speakers: Optional[Sequence[str]]) -> list[EvalClip]:
    """The clips of the datasets or corpora in `data` (`load_clips`), of `speakers` only when given."""
    from geneface.core.text import did_you_mean
    from geneface.training.data import load_clips

    clips = load_clips([Path(p) for p in data], encoder)
    if speakers is not None:
        known = sorted({c.speaker for c in clips})
        unknown = [s for s in speakers if s not in known]
        if unknown:
            hint = did_you_mean(unknown[0], known) if len(unknown) == 1 else ""
            raise UsageError(f"--speakers: {', '.join(unknown)} not in --data{hint} (its speakers: {', '.join(known)})")
        clips = [c for c in clips if c.speaker in set(speakers)]
    out = []
    for c in clips:
        mean, std = _face_stats(c)
        out.append(EvalClip(GROUP_SPEAKERS, c.name, c.speaker, c.source, c.features, c.denormalized(), mean, std))
    return out


def person_clips(person: Path, encoder) -> tuple[list[EvalClip], dict]:
    """The person's held-out last 1/11, in the person's face (statistics of the training frames)."""
    from geneface.training.person_data import load_person

    p = load_person(Path(person), encoder, where="--person")
    clips = [EvalClip(GROUP_PERSON, c.name, c.speaker or p.name, c.source or str(p.path), c.features,
                      p.denormalize(c.landmarks), p.mean, p.std) for c in p.held_out]
    return clips, p.info()
