"""The corpus index: one file that says what a processed corpus holds (docs/distributed.md).

`geneface process-corpus` writes `OUT/corpus_index.npz` when it finishes (and `geneface
dataset index` rebuilds it for a corpus processed before the index existed). Training reads it
instead of walking the folders and opening every dataset, so a corpus of 100k clips starts in
seconds: the index alone gives each clip's speaker, its length, its usable stretches (runs of
frames where tracking did not fail), its landmark statistics, which audio features it stores,
its audio-to-video offset and its quality flags.

The file is an `.npz` of column arrays (one row per dataset, sorted by path; no pickles): a
numpy load, not a parse, so 10k entries read in milliseconds (benchmarks/bench_corpus_index.py).
It holds nothing that depends on when or where a clip was processed, so the same corpus gives
the same bytes whichever machine or scheduler processed it.
"""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import attrs
import numpy as np

from geneface.core.arrays import save_npz, true_runs
from geneface.core.dataset import FLAG_FAILED, MANIFEST, DatasetError, Dataset, read_manifest, require_files
from geneface.core.lock import output_lock
from geneface.core.records import N_LANDMARKS
from geneface.errors import OutputBusyError

INDEX = "corpus_index.npz"
FORMAT = "geneface-corpus-index"
VERSION = 1

# Numbered takes of one person (`Obama_clip1`, `feifeili_clip2_short`) are one speaker.
_TAKE = re.compile(r"_clip\d+.*$")


def speaker_of(manifest: dict, path: Path, root: Optional[Path] = None) -> str:
    """Who speaks in a dataset, by one rule:
    1. the manifest's `speaker` (synthetic and corpus datasets may name one);
    2. a dataset nested in a corpus (ROOT/SPEAKER/.../CLIP, LRS3's and VoxCeleb's layout): the
       first folder below the corpus root;
    3. the source video's name, less a numbered-take suffix (`NAME_clip2...` -> `NAME`)."""
    for where in (manifest, manifest.get("source") or {}):
        if where.get("speaker"):
            return str(where["speaker"])
    if root is not None:
        try:
            rel = Path(path).relative_to(root).parts
        except ValueError:
            rel = ()
        if len(rel) > 1:
            return rel[0]
    source = (manifest.get("source") or {}).get("name")
    return _TAKE.sub("", Path(source).stem if source else Path(path).name)


@attrs.frozen(eq=False)
class IndexEntry:
    """One dataset of a corpus, as the index records it."""

    dataset: str  # folder, relative to the corpus root (posix separators)
    speaker: str
    n_frames: int
    segments: tuple  # ((start, end), ...): runs of frames where tracking did not fail
    mean: np.ndarray  # 68 x 3 landmark statistics of the dataset (what its clips are normalised by)
    std: np.ndarray
    features: tuple  # ((encoder, width), ...) stored under audio_features/
    av_offset: int  # frames the audio was moved by when processed (0: taken as it was)
    av_status: str  # the estimate's status (e.g. "estimated", "unknown"); "" when never estimated
    skip_training: bool  # flagged by processing (e.g. the audio-to-video offset is unknown)
    failed_frames: int
    size: int  # crop side, px


def entry_of(folder: Path, root: Path) -> IndexEntry:
    """The index entry of one finished dataset (its manifest, tracking flags and statistics)."""
    ds = Dataset(folder)
    m = ds.manifest
    n = ds.n_frames
    flags = np.asarray(ds.tracking()["flags"][:n]) if (Path(folder) / "tracking.npz").exists() else np.zeros(n, int)
    mean, std = ds.landmark_stats()
    offset = m.get("av_offset") or {}
    features = ((m.get("audio") or {}).get("features") or {})
    return IndexEntry(
        dataset=Path(folder).relative_to(root).as_posix(),
        speaker=speaker_of(m, folder, root),
        n_frames=n,
        segments=tuple((int(a), int(b)) for a, b in true_runs((flags & FLAG_FAILED) == 0)),
        mean=np.asarray(mean, np.float32).reshape(N_LANDMARKS, 3),
        std=np.asarray(std, np.float32).reshape(N_LANDMARKS, 3),
        features=tuple(sorted((name, int(f["width"])) for name, f in features.items())),
        av_offset=int(offset.get("applied_frames", 0) or 0),
        av_status=str(offset.get("status") or ""),
        skip_training=bool(offset.get("skip_training", False)),
        failed_frames=int(((flags & FLAG_FAILED) != 0).sum()),
        size=ds.size,
    )


@attrs.frozen(eq=False)
class CorpusIndex:
    """The index as columns (row i = dataset i, sorted by path); `entry(i)` gives one record."""

    root: Path
    dataset: np.ndarray  # str
    speaker: np.ndarray  # str
    n_frames: np.ndarray  # int32
    seg_owner: np.ndarray  # int32: the row each usable segment belongs to
    seg_start: np.ndarray  # int32
    seg_end: np.ndarray  # int32
    mean: np.ndarray  # float32 N x 68 x 3
    std: np.ndarray
    features: np.ndarray  # str: "mel:80,hubert:1024"
    av_offset: np.ndarray  # int32
    av_status: np.ndarray  # str
    skip_training: np.ndarray  # bool
    failed_frames: np.ndarray  # int32
    size: np.ndarray  # int32

    def __len__(self) -> int:
        return len(self.dataset)

    def path(self, i: int) -> Path:
        return self.root / str(self.dataset[i])

    def feature_widths(self, i: int) -> dict[str, int]:
        text = str(self.features[i])
        return {name: int(width) for name, width in (p.split(":") for p in text.split(",") if p)}

    def entry(self, i: int) -> IndexEntry:
        segs = np.flatnonzero(self.seg_owner == i)
        return IndexEntry(str(self.dataset[i]), str(self.speaker[i]), int(self.n_frames[i]),
                          tuple((int(self.seg_start[k]), int(self.seg_end[k])) for k in segs),
                          self.mean[i], self.std[i], tuple(self.feature_widths(i).items()),
                          int(self.av_offset[i]), str(self.av_status[i]), bool(self.skip_training[i]),
                          int(self.failed_frames[i]), int(self.size[i]))

    def entries(self) -> list[IndexEntry]:
        return [self.entry(i) for i in range(len(self))]


def index_of(root: Path, entries: Iterable[IndexEntry]) -> CorpusIndex:
    """Entries -> the column form, sorted by dataset path (so the order never depends on which
    clip finished first)."""
    rows = sorted(entries, key=lambda e: e.dataset)
    segs = [(i, a, b) for i, e in enumerate(rows) for a, b in e.segments]
    seg = np.asarray(segs, np.int32).reshape(-1, 3)
    stats = lambda key: (np.stack([getattr(e, key) for e in rows]).astype(np.float32)  # noqa: E731
                         if rows else np.zeros((0, N_LANDMARKS, 3), np.float32))
    return CorpusIndex(
        root=Path(root),
        dataset=np.asarray([e.dataset for e in rows], dtype=str),
        speaker=np.asarray([e.speaker for e in rows], dtype=str),
        n_frames=np.asarray([e.n_frames for e in rows], np.int32),
        seg_owner=seg[:, 0].copy(), seg_start=seg[:, 1].copy(), seg_end=seg[:, 2].copy(),
        mean=stats("mean"), std=stats("std"),
        features=np.asarray([",".join(f"{n}:{w}" for n, w in e.features) for e in rows], dtype=str),
        av_offset=np.asarray([e.av_offset for e in rows], np.int32),
        av_status=np.asarray([e.av_status for e in rows], dtype=str),
        skip_training=np.asarray([e.skip_training for e in rows], bool),
        failed_frames=np.asarray([e.failed_frames for e in rows], np.int32),
        size=np.asarray([e.size for e in rows], np.int32),
    )


_COLUMNS = [f.name for f in attrs.fields(CorpusIndex) if f.name != "root"]


def write_index(index: CorpusIndex) -> Path:
    """`ROOT/corpus_index.npz`, written under a temporary name and renamed."""
    path = index.root / INDEX
    save_npz(path, format=np.asarray(FORMAT), version=np.asarray(VERSION, np.int32),
             **{name: getattr(index, name) for name in _COLUMNS})
    return path


def has_index(root: Path) -> bool:
    return (Path(root) / INDEX).is_file()


def read_index(root: Path) -> CorpusIndex:
    """The index of the corpus at `root`; a missing, foreign or damaged file is a one-line error."""
    path = Path(root) / INDEX
    try:
        with np.load(path, allow_pickle=False) as data:
            scalar = lambda key: data[key].reshape(-1)[0]  # noqa: E731  (saved as 1-element arrays)
            if "format" not in data.files or str(scalar("format")) != FORMAT:
                raise DatasetError(f"{path}: not a geneface corpus index")
            if int(scalar("version")) > VERSION:
                raise DatasetError(f"{path}: corpus index version {int(scalar('version'))} is newer than this "
                                   f"geneface reads ({VERSION}); upgrade geneface")
            missing = [c for c in _COLUMNS if c not in data.files]
            if missing:
                raise DatasetError(f"{path}: corpus index lacks {', '.join(missing)}; rebuild it with "
                                   "`geneface dataset index`")
            columns = {c: data[c] for c in _COLUMNS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # BadZipFile: cut off
        raise DatasetError(f"{path}: missing or unreadable corpus index ({exc}); rebuild it with "
                           "`geneface dataset index --overwrite`") from None
    return CorpusIndex(root=Path(root), **columns)


@attrs.frozen
class Damaged:
    """A folder that holds a dataset's manifest but is no usable dataset, and why."""

    path: Path
    reason: str  # one line, naming the file at fault


def find_datasets(root: Path, damaged: Optional[list] = None) -> list[Path]:
    """Every dataset folder below `root` (any depth; hidden folders skipped), in path order.
    A folder with a manifest this toolkit cannot read (cut off, another format version,
    incomplete) is no dataset: it is added to `damaged` (a list of `Damaged`) when one is given,
    and never searched further."""
    found: list[Path] = []

    def walk(folder: Path) -> None:
        for p in sorted(folder.iterdir()):
            if not p.is_dir() or p.name.startswith("."):
                continue
            try:
                read_manifest(p)
            except DatasetError as exc:
                if (p / MANIFEST).exists():
                    if damaged is not None:
                        damaged.append(Damaged(p, str(exc)))
                else:
                    walk(p)
                continue
            found.append(p)

    walk(Path(root))
    return found


def build_index(root: Path, folders: Optional[Sequence[Path]] = None,
                advance: Callable[[int], None] = lambda n=1: None, damaged: Optional[list] = None) -> CorpusIndex:
    """The index of `folders` (default: every dataset below `root`), read from disk. Each
    dataset is checked for the files it must hold; with `damaged` given (a list), one that
    lacks any or cannot be read is left out and added there as a `Damaged`, else it is an error."""
    root = Path(root)
    folders = find_datasets(root, damaged) if folders is None else folders
    entries = []
    for folder in folders:
        try:
            require_files(Path(folder))
            entries.append(entry_of(Path(folder), root))
        except DatasetError as exc:
            if damaged is None:
                raise
            damaged.append(Damaged(Path(folder), str(exc)))
        advance(1)
    return index_of(root, entries)


# How long a run waits for another run's index build into the same corpus before giving up.
INDEX_WAIT_S = 600.0


def rebuild_index(root: Path, progress: Callable[[int], Callable[[int], None]] = lambda total: (lambda n=1: None),
                  damaged: Optional[list] = None, wait_s: float = INDEX_WAIT_S) -> CorpusIndex:
    """Index every dataset on disk below `root` and write it, one writer at a time.

    Two runs into one corpus (two `process-corpus`, or one and a `dataset index`) each index
    what is on disk, not what they made themselves, and under one lock (waiting up to `wait_s`
    for the other), so the index written last was read after every dataset either run finished:
    it always matches the disk. `progress(total)` gives the advance of a progress bar;
    `damaged` as in `build_index`."""
    root = Path(root)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with output_lock(root / INDEX, "index build"):
                if damaged is not None:
                    damaged.clear()  # a retry scans again from the start
                folders = find_datasets(root, damaged)
                index = build_index(root, folders, progress(len(folders)), damaged)
                write_index(index)
                if damaged is not None:
                    damaged.sort(key=lambda d: d.path.as_posix())
                return index
        except OutputBusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
