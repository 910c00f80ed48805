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
from geneface.training.clips import Clip, make_clip

if TYPE_CHECKING:
    from geneface.core.stages import AudioEncoder


# -- statistics ----------------------------------------------------------------------------


STATS_CLIPS = 4000  # feature statistics of a larger corpus come from this many clips, drawn by a fixed seed


def feature_stats(clips: Sequence[Clip]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the features over every frame of `clips` (of a fixed
    random `STATS_CLIPS` of them in a larger corpus: an estimate, read in seconds, not a pass
    over 400 hours)."""
    if len(clips) > STATS_CLIPS:
        pick = np.sort(np.random.default_rng(0).choice(len(clips), STATS_CLIPS, replace=False))
        clips = [clips[i] for i in pick]
    total = sum(c.features.shape[0] for c in clips)
    sums = np.zeros(clips[0].width, np.float64)
    squares = np.zeros(clips[0].width, np.float64)
    for c in clips:  # one read per clip (a lazy clip's features come from disk)
        f = np.asarray(c.features, dtype=np.float64)
        sums += f.sum(0)
        squares += (f * f).sum(0)
    mean = sums / total
    var = squares / total - mean * mean
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


def read_dataset_clips(path: Path, encoder: "AudioEncoder", min_frames: int = 5, lazy: bool = False) -> list:
    """The clips of one dataset (or of each dataset in a corpus folder).

    One dataset is one clip, cut where tracking failed (those frames hold interpolated
    guesses, not motion); pieces shorter than `min_frames` are dropped, and so are datasets
    flagged because their audio-to-video offset is unknown (`av_offset.skip_training`).

    A corpus folder with an index (`corpus_index.npz`, written by `process-corpus`) is read
    from the index, not walked: `LazyClip`s (arrays read window by window) with `lazy`,
    else the same clips in memory.
    """
    from geneface.core.corpus_index import has_index
    from geneface.core.dataset import is_dataset

    root = Path(path)
    if not is_dataset(root) and has_index(root):
        return _indexed_clips(root, encoder, min_frames, lazy)
    return _walked_clips(dataset_folders(root), root, encoder, min_frames)


def _indexed_clips(root: Path, encoder: "AudioEncoder", min_frames: int, lazy: bool) -> list:
    from geneface.core.corpus_index import read_index
    from geneface.training.lazy_clips import read_index_clips

    index = read_index(root)
    clips, without = read_index_clips(index, encoder.name, min_frames)
    if not lazy:
        clips = [c.load() for c in clips]
    if without:  # datasets without these stored features: computed from their audio, in memory
        print(f"{root}: {len(without)} datasets lack stored '{encoder.name}' features; computing them "
              "(process the corpus with --audio-encoder to read them lazily)", file=sys.stderr)
        clips += _walked_clips([index.path(i) for i in without], root, encoder, min_frames)
    return clips


def _walked_clips(folders: Sequence[Path], root: Path, encoder: "AudioEncoder", min_frames: int) -> list[Clip]:
    from geneface.core.dataset import FLAG_FAILED, Dataset

    clips = []
    skipped = []
    for folder in folders:
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


def load_clips(paths: Sequence[Path], encoder: "AudioEncoder", lazy: bool = False) -> list:
    """Every clip of every dataset (or synthetic corpus) in `paths`, with `encoder`'s features:
    read from a dataset (stored there under `encoder.name`), computed for synthetic clips.
    `lazy`: an indexed corpus gives `LazyClip`s (geneface.training.lazy_clips)."""
    clips: list = []
    for path in paths:
        synth = synth_clip_folders(Path(path))
        clips.extend(read_synth_clips(synth, encoder) if synth is not None
                     else read_dataset_clips(Path(path), encoder, lazy=lazy))
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

BALANCE = ("speaker", "window", "speaker-length")
LENGTH_BUCKETS = 4  # "speaker-length": clip lengths split at their quartiles


def clip_weights(clips: Sequence, window: int, balance: str = "speaker") -> np.ndarray:
    """The probability of drawing each clip for a training window of `window` frames.

    `window`: every window of every clip equally likely, so a speaker weighs as much as their
    minutes (one long-recorded speaker, e.g. GRID's s1, dominates). `speaker`: every speaker
    equally likely, then windows uniform within the speaker's clips. `speaker-length`: every
    speaker equally likely, then each of the speaker's length buckets (clip lengths cut at the
    corpus's quartiles) equally likely, then windows uniform within the bucket: short
    utterances (most of LRS3) are drawn as often as long ones instead of by their frames.
    """
    if balance not in BALANCE:
        raise UsageError(f"balance must be one of {', '.join(BALANCE)}, got '{balance}'")
    n = np.array([max(0, c.n_frames - window + 1) for c in clips], dtype=np.float64)
    if balance != "window":
        speakers = np.unique([c.speaker for c in clips], return_inverse=True)[1]
        groups = speakers
        if balance == "speaker-length":
            lengths = np.array([c.n_frames for c in clips], dtype=np.float64)
            cuts = np.quantile(lengths[n > 0], np.linspace(0, 1, LENGTH_BUCKETS + 1)[1:-1]) if (n > 0).any() else []
            groups = speakers * LENGTH_BUCKETS + np.searchsorted(cuts, lengths, side="right")
        total = np.bincount(groups, weights=n)
        n = np.where(total[groups] > 0, n / np.maximum(total[groups], 1e-300), 0.0)
        if balance == "speaker-length":  # a speaker's buckets share the speaker's one vote
            live = np.unique(groups[n > 0])
            shares = np.bincount(live // LENGTH_BUCKETS, minlength=speakers.max() + 1)
            n = n / np.maximum(shares[speakers], 1)
    if n.sum() <= 0:
        raise UsageError(f"no clip is {window} frames long")
    return n / n.sum()


class ClipDraw:
    """Draws a clip index with probabilities `p` in O(log n): the very draws of
    `rng.choice(len(p), p=p)`, without its O(n) cumulative sum on every call (100k clips)."""

    def __init__(self, p: np.ndarray) -> None:
        self.cdf = np.cumsum(np.asarray(p, dtype=np.float64))
        self.cdf /= self.cdf[-1]

    def __call__(self, rng: np.random.Generator) -> int:
        return int(self.cdf.searchsorted(rng.random(), side="right"))
