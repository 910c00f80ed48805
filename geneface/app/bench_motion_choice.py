"""What `geneface bench motion` compares, and on what: its flags checked before any work.

`--model NAME=CHECKPOINT` (repeat; the names label the rows, `truth` is the reference rows'),
`--speakers` (some speakers of `--data`), and the flags that must fit together (clips to
score, a temperature >= 0, inputs that exist): one-line errors here, before the output is
prepared. Once loaded, every model must read the SyncNet's features (`check_model`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import attrs

from geneface.core.stages import Stage
from geneface.errors import StageMismatchError, UsageError

TRUTH = "truth"  # the label of each group's reference row


@attrs.frozen
class ModelSpec:
    """One `--model NAME=CHECKPOINT`."""

    label: str
    checkpoint: Path


def parse_models(texts: Sequence[str], where: str = "--model") -> list[ModelSpec]:
    """`NAME=CHECKPOINT` each, names unique (they label the rows)."""
    specs, seen = [], set()
    for text in texts:
        label, eq, ckpt = text.partition("=")
        label, ckpt = label.strip(), ckpt.strip()
        if not eq or not label or not ckpt:
            raise UsageError(f"{where} {text!r}: expected NAME=CHECKPOINT")
        if label == TRUTH:
            raise UsageError(f"{where}: the name '{TRUTH}' is the reference rows'; choose another")
        if label in seen:
            raise UsageError(f"{where}: two models named '{label}'; name them apart")
        seen.add(label)
        specs.append(ModelSpec(label, Path(ckpt).expanduser()))
    if not specs:
        raise UsageError(f"{where}: give at least one NAME=CHECKPOINT")
    return specs


def parse_speakers(text: Optional[str], where: str = "--speakers") -> Optional[list[str]]:
    if text is None:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UsageError(f"{where}: expected SPEAKER[,SPEAKER...]")
    return names


def check_request(data: Sequence[Path], speakers: Optional[Sequence[str]], person: Optional[Path],
                  temperature: Optional[float]) -> None:
    """The flags that fit together (before any output is prepared or work done)."""
    if not data and person is None:
        raise UsageError("give clips to score: --data DATASET_OR_CORPUS and/or --person DATASET")
    if speakers is not None and not data:
        raise UsageError("--speakers picks speakers of --data; give --data too")
    if temperature is not None and not (math.isfinite(temperature) and temperature >= 0):
        raise UsageError(f"--temperature: expected a number >= 0, got {temperature:g}")
    for path in data:
        if not Path(path).exists():
            raise UsageError(f"--data {path}: no such file or folder")
    if person is not None and not Path(person).exists():
        raise UsageError(f"--person {person}: no such file or folder")


def check_model(spec: ModelSpec, stage: Stage, encoder_name: str, syncnet_path: Path) -> None:
    """The model reads the SyncNet's features (one audio encoder for the whole bench)."""
    name = getattr(stage, "encoder", "")
    if not name:
        raise UsageError(f"--model {spec.label}: {spec.checkpoint} does not name the audio encoder it was trained "
                         "with; retrain it with this version")
    if name != encoder_name:
        raise StageMismatchError(f"--model {spec.label}: {spec.checkpoint} was trained on '{name}' features, "
                                 f"--syncnet {syncnet_path} on '{encoder_name}' features; give models and a SyncNet "
                                 "of one audio encoder")
