"""The data flags and loading shared by the generic audio-to-motion recipes (syncnet, vae).

Both read any list of datasets or synthetic corpora (`--data`, repeatable), with one audio
encoder's features (`--encoder`), and hold out whole speakers for validation (`--val-speakers`,
or chosen by the seed). A corpus made by `process-corpus` is read from its index, its clips'
arrays from disk window by window (geneface.training.lazy_clips).
"""

from __future__ import annotations

import sys
from typing import Optional

import attrs

from geneface.training.recipe import TrainInputs, TrainOption

OPTIONS = (
    TrainOption("encoder", "which audio features of the datasets to use", default="mel"),
    TrainOption("val-speakers", "comma-separated speakers to hold out (default: chosen by --seed)"),
    TrainOption("balance", "how training windows are drawn: 'speaker' (every speaker equally often), "
                "'speaker-length' (every speaker, then each of its clip-length quartiles, equally often) or 'window' "
                "(every window of every clip equally often: long-recorded speakers dominate)", default="speaker"),
    TrainOption("utterance-norm", "normalise each clip's features over its own frames (voice and channel "
                "offsets removed; the model applies the same to its input)", kind="bool", default=False),
)


@attrs.frozen
class SpeakerData:
    train: list
    val: list
    encoder: str
    info: dict  # datasets, encoder and speakers, for run.json and the exported checkpoint
    balance: str = "speaker"  # how the trainers draw windows (data.clip_weights)
    utterance_norm: bool = False  # the clips' features are normalised per utterance

    @property
    def width(self) -> int:
        return self.train[0].width


def load_speaker_data(inputs: TrainInputs, expected_width: Optional[int] = None, what: str = "") -> SpeakerData:
    """Load and split the clips; one feature width throughout (`expected_width`, if given)."""
    from geneface.core.features import utterance_normalize
    from geneface.training.data import BALANCE, check_width, load_clips, split_by_speaker

    name = inputs.options["encoder"]
    encoder = inputs.registry.get("audio_encoder", name, where="--encoder").cls()
    balance = inputs.options["balance"]
    if balance not in BALANCE:
        from geneface.errors import UsageError

        raise UsageError(f"--balance must be one of {', '.join(BALANCE)}, got '{balance}'")
    norm = bool(inputs.options["utterance_norm"])
    # An indexed corpus is read lazily (window by window), except to normalise per utterance.
    clips = load_clips(inputs.data, encoder, lazy=not norm)
    if norm:
        clips = [attrs.evolve(c, features=utterance_normalize(c.features)) for c in clips]
    check_width(clips, expected_width, what)
    chosen = inputs.options["val_speakers"]
    chosen = [s.strip() for s in chosen.split(",") if s.strip()] if chosen else None
    split = split_by_speaker(clips, chosen, seed=inputs.loop.seed)
    print(split.describe(), file=sys.stderr)
    info = {"datasets": sorted({c.source for c in clips}), "encoder": name,
            "train_speakers": sorted({c.speaker for c in split.train}), "val_speakers": list(split.val_speakers),
            "balance": balance, "utterance_norm": norm}
    return SpeakerData(list(split.train), list(split.val), name, info, balance, norm)
