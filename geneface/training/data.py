"""Training clips for the audio-to-motion models, from any list of datasets.

A `Clip` is what both trainers consume: normalised landmarks (T x 204, by the statistics of
the dataset the clip belongs to, which removes the person's face shape), the audio features
of one encoder (2T x D, 50 Hz) and who is speaking. Datasets come from `geneface process` /
`process-corpus` (real video) or `synth-corpus` (synthetic subject); `load_clips` reads any
mix of them through `geneface.core.dataset.Dataset`.

Validation is split by speaker, so validation figures are about voices and faces the model
never saw.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, Sequence

import attrs
import numpy as np

from geneface.core.arrays import true_runs
from geneface.core.corpus_index import speaker_of  # noqa: F401  (re-exported: the speaker rule)

from geneface.core.records import MOUTH, N_LANDMARKS
from geneface.errors import StageMismatchError, UsageError

if TYPE_CHECKING:
    from geneface.core.stages import AudioEncoder


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


# -- statistics ----------------------------------------------------------------------------


def feature_stats(clips: Sequence[Clip]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the features over every frame of `clips`."""
    total = sum(c.features.shape[0] for c in clips)
    mean = sum(c.features.astype(np.float64).sum(0) for c in clips) / total
    var = sum(((c.features - mean) ** 2).sum(0) for c in clips) / total
    return mean.astype(np.float32), np.sqrt(np.maximum(var, 1e-8)).astype(np.float32)


def motion_stats(clips: Sequence[Clip]) -> tuple[np.ndarray, np.ndarray]:
    """The 68 x 3 mean and std a generic model de-normalises its output with: the average of
    the datasets' own statistics (one vote per dataset, not per frame)."""
    per_source = {}
    for c in clips:
        if c.mean is not None and c.std is not None:
            per_source[c.source or c.speaker] = (c.mean, c.std)
    if not per_source:
        return np.zeros((N_LANDMARKS, 3), np.float32), np.ones((N_LANDMARKS, 3), np.float32)
    means, stds = zip(*per_source.values())
    return np.mean(means, axis=0).astype(np.float32), np.mean(stds, axis=0).astype(np.float32)


# -- splitting -----------------------------------------------------------------------------


@attrs.frozen
class Split:
    train: tuple
    val: tuple
    val_speakers: tuple

    def describe(self) -> str:
        speakers = lambda cs: len({c.speaker for c in cs})  # noqa: E731
        return (f"{len(self.train)} training clips ({speakers(self.train)} speakers), "
                f"{len(self.val)} validation clips ({', '.join(self.val_speakers) or 'none'})")


def split_by_speaker(clips: Sequence[Clip], val_speakers: Optional[Iterable[str]] = None,
                     val_fraction: float = 0.2, seed: int = 0) -> Split:
    """Hold out whole speakers: `val_speakers` if given; else a synthetic corpus's own test
    split (its voices and faces are unseen in its train split); else about `val_fraction` of
    the speakers (at least one when there are two or more), picked reproducibly from `seed`."""
    speakers = sorted({c.speaker for c in clips})
    if val_speakers is None and any(c.split == "test" for c in clips):
        val = tuple(c for c in clips if c.split == "test")
        train = tuple(c for c in clips if c.split != "test")
        if train:
            return Split(train, val, tuple(sorted({c.speaker for c in val})))
    if val_speakers is not None:
        chosen = sorted(set(val_speakers))
        unknown = [s for s in chosen if s not in speakers]
        if unknown:
            raise UsageError(f"validation speaker(s) {', '.join(unknown)} not in the data (speakers: {', '.join(speakers)})")
    elif len(speakers) < 2:
        chosen = []
    else:
        n_val = min(len(speakers) - 1, max(1, int(round(val_fraction * len(speakers)))))
        order = np.random.default_rng(seed).permutation(len(speakers))
        chosen = sorted(speakers[i] for i in order[:n_val])
    train = tuple(c for c in clips if c.speaker not in chosen)
    val = tuple(c for c in clips if c.speaker in chosen)
    if not train:
        raise UsageError("every speaker is held out for validation; nothing is left to train on")
    if not val:
        # One speaker only: validate on the last 10 % of each clip's time instead (a weaker
        # check, said out loud).
        print("warning: one speaker only, so validation uses the last 10% of each clip (not unseen speakers)",
              file=sys.stderr)
        train, val = zip(*(_cut_tail(c, 0.1) for c in clips))
        train, val = tuple(c for c in train if c is not None), tuple(c for c in val if c is not None)
    return Split(train, val, tuple(chosen))


def _cut_tail(clip: Clip, fraction: float) -> tuple[Optional[Clip], Optional[Clip]]:
    n = clip.n_frames
    k = int(round(n * (1 - fraction)))
    if k <= 0 or k >= n:
        return clip, None
    return clip.piece(0, k), clip.piece(k, n, ":tail")


def check_width(clips: Sequence[Clip], width: Optional[int], what: str) -> int:
    """All clips share one feature width, which must equal `width` (a checkpoint's) if given."""
    widths = sorted({c.width for c in clips})
    if len(widths) > 1:
        by_width = {w: next(c.source or c.name for c in clips if c.width == w) for w in widths}
        raise StageMismatchError("the datasets hold features of different widths: "
                                 + ", ".join(f"{w} ({src})" for w, src in by_width.items()))
    if width is not None and widths[0] != width:
        raise StageMismatchError(f"{what} was trained on features {width} wide, but the data's "
                                 f"'{clips[0].encoder}' features are {widths[0]} wide")
    return widths[0]


# -- loading datasets ----------------------------------------------------------------------


SYNTH_CORPUS_FORMAT = "geneface-synth-corpus"
SYNTH_CLIP_FORMAT = "geneface-synth-clip"
GROUND_TRUTH = "ground_truth.npz"  # a synthetic clip's exact per-frame values
CM = 0.01  # synthetic ground truth (cm) -> the canonical unit of every dataset (metres)


def _json(path: Path) -> Optional[dict]:
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def synth_clip_folders(path: Path) -> Optional[list[Path]]:
    """The clip folders of a `synth-corpus` folder (or a single `synth` clip), else None."""
    path = Path(path)
    corpus = _json(path / "corpus.json")
    if corpus and corpus.get("format") == SYNTH_CORPUS_FORMAT:
        return [path / e["id"] for e in corpus.get("clips", []) if (path / e["id"] / "meta.json").is_file()]
    meta = _json(path / "meta.json")
    if meta and meta.get("format") == SYNTH_CLIP_FORMAT:
        return [path]
    return None


def read_synth_clips(folders: Sequence[Path], encoder: Optional["AudioEncoder"]) -> list[Clip]:
    """Clips from synthetic talking-subject folders: the exact canonical landmarks and mouth
    opening of the ground truth (converted from centimetres to metres, the unit of processed
    datasets), and `encoder`'s features of the clip's speech (computed here:
    the folders hold audio, not features).

    Landmarks are normalised per identity, over all of its clips, as a dataset of one person
    would be; the speaker is voice + identity; the corpus's train/test split is kept.
    """
    from geneface.core.media import read_audio

    raw = []
    for folder in folders:
        meta = _json(folder / "meta.json") or {}
        entry = meta.get("corpus_entry") or {}
        with np.load(folder / GROUND_TRUTH, allow_pickle=False) as gt:
            # The ground truth is in centimetres; processed datasets are in metres. One unit for
            # every clip, so corpora may mix synthetic and real speakers.
            lm, opening = gt["landmarks68_canonical"] * CM, gt["mouth_opening"] * CM
            offset = int(gt["audio_offset_frames"]) if "audio_offset_frames" in gt.files else 0
        try:  # no encoder: landmarks only (zero feature columns)
            feats = (encoder.encode(read_audio(folder / "speech.wav")).values if encoder is not None
                     else np.zeros((2 * len(lm), 0), np.float32))
        except UsageError as exc:
            raise UsageError(f"{folder}: computing '{encoder.name}' features failed ({exc}); "
                             "process the clips into datasets with the features instead") from None
        # A clip made with its audio delayed by k frames: frame t is heard at t + k.
        if offset > 0:
            lm, opening, feats = lm[:-offset], opening[:-offset], feats[2 * offset:]
        elif offset < 0:
            lm, opening, feats = lm[-offset:], opening[-offset:], feats[: 2 * offset]
        n = min(len(lm), len(feats) // 2)
        person = str(entry.get("identity_id", folder.name))
        speaker = f"{entry.get('voice') or meta.get('voice_resolved', '?')}/id{person}"
        raw.append((folder, person, speaker, entry.get("split", ""), lm[:n], opening[:n], feats[: 2 * n]))
    stats = {}
    for person in {r[1] for r in raw}:
        frames = np.concatenate([r[4] for r in raw if r[1] == person])
        stats[person] = (frames.mean(0), frames.std(0) + 1e-6)
    name = encoder.name if encoder is not None else ""
    return [make_clip(folder.name, speaker, lm, feats, *stats[person], name, opening, str(folder), split)
            for folder, person, speaker, split, lm, opening, feats in raw]


def dataset_folders(path: Path) -> list[Path]:
    """`path` itself when it is a dataset, else every dataset below it (a corpus, at any depth:
    `process-corpus` keeps an LRS3-like SPEAKER/CLIP layout)."""
    from geneface.core.corpus_index import find_datasets
    from geneface.core.dataset import DatasetError, is_dataset, read_manifest

    path = Path(path)
    if is_dataset(path):
        return [path]
    found = find_datasets(path) if path.is_dir() else []
    if not found:
        read_manifest(path)  # raises the precise reason `path` is not a dataset
        raise DatasetError(f"{path}: no datasets inside")
    return found


def dataset_features(ds, encoder: "AudioEncoder") -> np.ndarray:
    """The dataset's stored features of `encoder`, else computed here from its audio.wav (so a
    corpus processed with mel can train a whisper model without being processed again)."""
    if encoder.name in ds.feature_names:
        return ds.audio_features(encoder.name).values
    if not ds.has_audio:
        have = ", ".join(ds.feature_names) or "none"
        raise UsageError(f"{ds.path}: no '{encoder.name}' audio features (it has: {have}) and no audio.wav "
                         "to compute them from")
    return encoder.encode(ds.audio()).values


def read_dataset_clips(path: Path, encoder: "AudioEncoder", min_frames: int = 5) -> list[Clip]:
    """The clips of one dataset (or of each dataset in a corpus folder).

    One dataset is one clip, cut where tracking failed (those frames hold interpolated
    guesses, not motion); pieces shorter than `min_frames` are dropped, and so are datasets
    flagged because their audio-to-video offset is unknown (`av_offset.skip_training`).
    """
    from geneface.core.dataset import FLAG_FAILED, Dataset

    clips = []
    root = Path(path)
    skipped = []
    for folder in dataset_folders(root):
        ds = Dataset(folder)
        if (ds.manifest.get("av_offset") or {}).get("skip_training"):
            skipped.append(folder.name)  # its audio-to-video offset is unknown: the pairing may be wrong
            continue
        values = dataset_features(ds, encoder)
        motion = ds.motion()
        flags = ds.tracking()["flags"] if (folder / "tracking.npz").exists() else np.zeros(motion.n_frames, int)
        speaker = speaker_of(ds.manifest, folder, root)
        n = min(motion.n_frames, len(values) // 2)
        good = (np.asarray(flags[:n]) & FLAG_FAILED) == 0
        for k, (a, b) in enumerate(true_runs(good)):
            if b - a < min_frames:
                continue
            clips.append(make_clip(
                folder.name if k == 0 else f"{folder.name}:{a}", speaker, motion.landmarks[a:b],
                values[2 * a: 2 * b], motion.mean, motion.std, encoder.name, None, str(folder)))
    if skipped:
        print(f"{root}: skipped {len(skipped)} clips whose audio-to-video offset is unknown "
              f"({', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''}; docs/av-offset.md)", file=sys.stderr)
    return clips


def load_clips(paths: Sequence[Path], encoder: "AudioEncoder") -> list[Clip]:
    """Every clip of every dataset (or synthetic corpus) in `paths`, with `encoder`'s features:
    read from a dataset (stored there under `encoder.name`), computed for synthetic clips."""
    clips: list[Clip] = []
    for path in paths:
        synth = synth_clip_folders(Path(path))
        clips.extend(read_synth_clips(synth, encoder) if synth is not None
                     else read_dataset_clips(Path(path), encoder))
    if not clips:
        raise UsageError("no usable clips in " + ", ".join(str(p) for p in paths))
    sources = [c.source for c in clips if c.name == Path(c.source).name]
    if len(set(sources)) != len(sources):
        raise UsageError("the same dataset was given twice")
    return clips


def mouth_slice() -> slice:
    """The mouth's 60 numbers in a flattened 204-number frame."""
    return slice(MOUTH.start * 3, MOUTH.stop * 3)


# -- sampling ----------------------------------------------------------------------------

BALANCE = ("speaker", "window")


def clip_weights(clips: Sequence[Clip], window: int, balance: str = "speaker") -> np.ndarray:
    """The probability of drawing each clip for a training window of `window` frames.

    `window`: every window of every clip equally likely, so a speaker weighs as much as their
    minutes (one long-recorded speaker, e.g. GRID's s1, dominates). `speaker`: every speaker
    equally likely, then windows uniform within the speaker's clips.
    """
    if balance not in BALANCE:
        raise UsageError(f"balance must be one of {', '.join(BALANCE)}, got '{balance}'")
    n = np.array([max(0, c.n_frames - window + 1) for c in clips], dtype=np.float64)
    if balance == "speaker":
        totals: dict[str, float] = {}
        for c, k in zip(clips, n):
            totals[c.speaker] = totals.get(c.speaker, 0.0) + k
        n = np.array([k / totals[c.speaker] if totals[c.speaker] else 0.0 for c, k in zip(clips, n)])
    if n.sum() <= 0:
        raise UsageError(f"no clip is {window} frames long")
    return n / n.sum()
