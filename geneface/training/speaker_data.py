"""The data flags and loading shared by the generic audio-to-motion recipes (syncnet, vae).

Both read any list of datasets or synthetic corpora (`--data`, repeatable), with one audio
encoder's features (`--encoder`), and hold out whole speakers for validation (`--val-speakers`,
or chosen by the seed).
"""

from __future__ import annotations

import sys
from typing import Optional

import attrs

from geneface.training.recipe import TrainInputs, TrainOption

OPTIONS = (
    TrainOption("encoder", "which audio features of the datasets to use", default="mel"),
    TrainOption("val-speakers", "comma-separated speakers to hold out (default: chosen by --seed)"),
)


@attrs.frozen
class SpeakerData:
    train: list
    val: list
    encoder: str
    info: dict  # datasets, encoder and speakers, for run.json and the exported checkpoint

    @property
    def width(self) -> int:
        return self.train[0].width


def load_speaker_data(inputs: TrainInputs, expected_width: Optional[int] = None, what: str = "") -> SpeakerData:
    """Load and split the clips; one feature width throughout (`expected_width`, if given)."""
    from geneface.registry import get_registry
    from geneface.training.data import check_width, load_clips, split_by_speaker

    name = inputs.options["encoder"]
    encoder = get_registry().get("audio_encoder", name, where="--encoder").cls()
    clips = load_clips(inputs.data, encoder)
    check_width(clips, expected_width, what)
    chosen = inputs.options["val_speakers"]
    chosen = [s.strip() for s in chosen.split(",") if s.strip()] if chosen else None
    split = split_by_speaker(clips, chosen, seed=inputs.loop.seed)
    print(split.describe(), file=sys.stderr)
    info = {"datasets": sorted({c.source for c in clips}), "encoder": name,
            "train_speakers": sorted({c.speaker for c in split.train}), "val_speakers": list(split.val_speakers)}
    return SpeakerData(list(split.train), list(split.val), name, info)
