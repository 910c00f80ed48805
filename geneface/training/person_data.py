"""One target person's landmarks (and audio features), split by the field's protocol.

A person-specific model (a domain adapter, a renderer) learns from the person's own video
and is judged on what it never saw: the end of each of the person's videos is held out
(`geneface.core.dataset.held_out_start`, by default the last 1/11). The person may be
- a dataset from `geneface process` (one video; its manifest's `val` split is held out,
  frames whose tracking failed are left out),
- a person of several clips (`geneface process CLIP [CLIP ...] -o PERSON`: its last clips,
  whole, are held out); it is read clip by clip: a piece never spans two clips (each is another
  recording), each clip's frames pair with its own features, and clips whose audio-to-video
  offset is unknown follow `geneface.training.person_offset`'s rule,
- a synthetic clip (`geneface synth`) or a corpus of one synthetic identity
  (`geneface synth-corpus --identity-id N`): exact ground-truth landmarks; each clip's last
  1/11 is held out.

The person's statistics (mean and std of every landmark coordinate) are taken over the
training frames only; models work on landmarks normalised by them, like the generic motion
generator works on landmarks normalised by each speaker's own statistics. That shared
convention is what lets generic motion be re-expressed in the person's face
(`geneface.core.records.rebase`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import attrs
import numpy as np

from geneface.core.dataset import Dataset, DatasetError, held_out_start, is_dataset
from geneface.core.person import is_person, open_dataset
from geneface.core.records import N_LANDMARKS, rebase  # noqa: F401  (rebase: postnet_task imports it from here)
from geneface.errors import UsageError
from geneface.core.arrays import true_runs
from geneface.training.data import Clip, dataset_features, make_clip, read_synth_clips, synth_clip_folders

if TYPE_CHECKING:
    from geneface.core.stages import AudioEncoder

MIN_HELD_OUT = 5  # a sync window: the held-out part must be scorable


@attrs.frozen(eq=False)
class PersonData:
    """`train` and `held_out` clips hold landmarks normalised by the person's `mean`/`std`
    (over the training frames); features are zero columns wide when no encoder was asked for."""

    path: Path
    name: str
    train: tuple = attrs.field(converter=tuple)
    held_out: tuple = attrs.field(converter=tuple)
    mean: np.ndarray  # 68 x 3
    std: np.ndarray  # 68 x 3
    encoder: str = ""

    @property
    def n_train(self) -> int:
        return sum(c.n_frames for c in self.train)

    @property
    def n_held_out(self) -> int:
        return sum(c.n_frames for c in self.held_out)

    def train_frames(self) -> np.ndarray:
        """Every training frame, normalised: N x 204."""
        return np.concatenate([c.landmarks for c in self.train])

    def normalize(self, landmarks: np.ndarray) -> np.ndarray:
        """T x 68 x 3 in the person's units -> T x 204 normalised."""
        return ((np.asarray(landmarks, np.float32) - self.mean) / self.std).reshape(len(landmarks), -1)

    def denormalize(self, z: np.ndarray) -> np.ndarray:
        """T x 204 normalised -> T x 68 x 3 in the person's units."""
        return np.asarray(z, np.float32).reshape(-1, N_LANDMARKS, 3) * self.std + self.mean

    def info(self) -> dict:
        return {"person": str(self.path), "train_frames": self.n_train, "held_out_frames": self.n_held_out,
                "clips": len({c.name.split(":")[0] for c in self.train})}


def load_person(path: Path, encoder: Optional["AudioEncoder"] = None, min_train: int = 50,
                where: str = "--person") -> PersonData:
    """Read a person (see the module doc) with `encoder`'s features, or none."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{where} {path}: no such file or folder")
    synth = synth_clip_folders(path)
    if synth is not None:
        pieces = _synth_pieces(path, synth, encoder, where)
    elif is_person(path) or is_dataset(path):
        pieces = _dataset_pieces(open_dataset(path), encoder)
    else:
        _explain_not_person(path, where)
    train = [c for c, held in pieces if not held]
    held = [c for c, is_held in pieces if is_held]
    n_train, n_held = sum(c.n_frames for c in train), sum(c.n_frames for c in held)
    if n_train < min_train or n_held < MIN_HELD_OUT:
        total = n_train + n_held
        raise UsageError(f"{where} {path}: {total} usable frames ({n_train} to train on, {n_held} held out at the "
                         f"end); a person needs at least {min_train} training and {MIN_HELD_OUT} held-out "
                         f"frames (about {(min_train + MIN_HELD_OUT) * 11 / 10 / 25:.1f} s of video)")
    frames = np.concatenate([c.landmarks.reshape(-1, N_LANDMARKS, 3) for c in train]).astype(np.float64)
    mean, std = frames.mean(0).astype(np.float32), (frames.std(0) + 1e-6).astype(np.float32)
    if float(std.max()) < 1e-5:
        raise UsageError(f"{where} {path}: the landmarks do not move over the {n_train} training frames")
    name = encoder.name if encoder is not None else ""
    normalise = lambda c: make_clip(c.name, c.speaker, c.landmarks.reshape(-1, N_LANDMARKS, 3), c.features,  # noqa: E731
                                    mean, std, name, c.mouth_opening, c.source)
    return PersonData(path, path.name, [normalise(c) for c in train], [normalise(c) for c in held], mean, std, name)


def _explain_not_person(path: Path, where: str):
    from geneface.core.dataset import read_manifest

    if path.is_dir() and any(is_dataset(p) for p in path.iterdir() if p.is_dir()):
        raise UsageError(f"{where} {path}: a folder of several datasets; give the dataset of one person")
    read_manifest(path)  # the precise reason it is not a dataset
    raise DatasetError(f"{where} {path}: not a dataset or a synthetic clip or corpus")


def _dataset_pieces(ds: Dataset, encoder) -> list[tuple[Clip, bool]]:
    """Raw-unit clips of a processed video or person: its training and held-out frames
    (`Dataset.training_frames`, `held_out_frames`), cut where tracking failed and where one clip
    of a person ends and the next begins (the next clip is another recording: no window may
    span the two). With `encoder`, each clip's own features, paired with its frames by the
    offset rule of `geneface.training.person_offset`."""
    landmarks = ds.landmarks_canonical()
    n = min(landmarks.shape[0], ds.n_frames)
    clips = _clip_ranges(ds, n)
    offsets = None
    if encoder is not None:
        from geneface.training.person_offset import clip_offsets

        offsets = clip_offsets([d for d, _, _ in clips], str(ds.path))
    train, held_out = np.zeros(n, bool), np.zeros(n, bool)
    train[ds.training_frames(n)] = True
    held_out[ds.held_out_frames(n)] = True
    pieces = []
    for k, (clip_ds, start, end) in enumerate(clips):
        if encoder is not None:
            if not offsets[k].use:
                continue
            values = dataset_features(clip_ds, encoder)  # the clip's own: stored, else computed from its audio
            shift = offsets[k].frames  # frame t pairs with the audio of frame t + shift
            # the clip's frames with features at both ends of the pairing
            lo, hi = start + max(0, -shift), start + min(end - start, len(values) // 2 - shift)
        else:
            values, shift, lo, hi = None, 0, start, end
        label = ds.path.name if len(clips) == 1 else f"{ds.path.name}/{clip_ds.path.name}"
        for kept, held in ((train, False), (held_out, True)):
            for a, b in ((lo + a, lo + b) for a, b in true_runs(kept[lo:max(lo, hi)])):
                local = a - start + shift
                f = (values[2 * local: 2 * (local + b - a)] if values is not None
                     else np.zeros((2 * (b - a), 0), np.float32))
                pieces.append((make_clip(f"{label}:{a}", ds.path.name, landmarks[a:b], f,
                                         source=str(clip_ds.path)), held))
    return pieces


def _clip_ranges(ds: Dataset, n: int) -> list[tuple[Dataset, int, int]]:
    """(clip dataset, start, end) of each clip of `ds` within its first `n` frames (one video:
    itself, whole)."""
    if ds.n_clips == 1:
        return [(ds, 0, n)]
    return [(ds.clip_dataset(k), c.start, min(c.end, n)) for k, c in enumerate(ds.clips) if c.start < n]


def _synth_pieces(path: Path, folders: Sequence[Path], encoder, where: str) -> list[tuple[Clip, bool]]:
    clips = read_synth_clips(folders, encoder)
    identities = sorted({c.speaker.rsplit("/id", 1)[-1] for c in clips})
    if len(identities) > 1:
        raise UsageError(f"{where} {path}: clips of {len(identities)} identities ({', '.join(identities)}); "
                         "a person is one identity (make one with `geneface synth-corpus --identity-id N`)")
    pieces = []
    for c in clips:
        raw = attrs.evolve(c, landmarks=c.denormalized().reshape(c.n_frames, -1), mean=None, std=None)
        start = held_out_start(c.n_frames)
        pieces += [(raw.piece(0, start), False), (raw.piece(start, c.n_frames, ":held"), True)]
    return [(c, held) for c, held in pieces if c.n_frames > 0]

