"""Training clips of an indexed corpus whose arrays stay on disk until a window is drawn.

`read_index_clips` turns a corpus index (geneface.core.corpus_index) into clips without
opening a single dataset: the index gives each clip's speaker, usable stretches, statistics
and feature width. A `LazyClip` reads the rows a training window needs from the dataset's
`.npy` files with one positioned read each (no memory map, no file kept open), so memory is
bounded by the batch, not by the corpus, and a 100k-clip corpus starts in seconds. Its
`landmarks` and `features` are `LazyRows`: sliced like the arrays of an in-memory `Clip`
(`clip.landmarks[t:t+n]`, `clip.landmarks[:, mouth]`), and whole arrays on `np.asarray`.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import attrs
import numpy as np

from geneface.core import dataset as fmt
from geneface.core.records import N_LANDMARKS
from geneface.errors import UsageError
from geneface.training.clips import Clip

if TYPE_CHECKING:
    from geneface.core.corpus_index import CorpusIndex


@lru_cache(maxsize=8192)  # headers only (a few dozen bytes each); bounded for 100k-clip corpora
def _npy_header(file: str) -> tuple[int, np.dtype, tuple]:
    """(data offset, dtype, shape) of a C-ordered `.npy` file."""
    try:
        with open(file, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(handle)
            offset = handle.tell()
    except (OSError, ValueError) as exc:
        raise fmt.DatasetError(f"{file}: missing or unreadable ({exc})") from None
    if fortran or dtype.hasobject or len(shape) < 1:
        raise fmt.DatasetError(f"{file}: not a C-ordered numeric array")
    return offset, dtype, tuple(shape)


def read_rows(file: str, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of a `.npy` file, flattened to 2-D, by one positioned read."""
    offset, dtype, shape = _npy_header(file)
    if not 0 <= start <= stop <= shape[0]:
        raise fmt.DatasetError(f"{file}: rows {start}-{stop} asked for, it has {shape[0]}")
    row = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    size = (stop - start) * row * dtype.itemsize
    fd = os.open(file, os.O_RDONLY)
    try:
        data = os.pread(fd, size, offset + start * row * dtype.itemsize)
    finally:
        os.close(fd)
    if len(data) != size:
        raise fmt.DatasetError(f"{file}: truncated (rows {start}-{stop} could not be read)")
    return np.frombuffer(data, dtype=dtype).reshape(stop - start, row)


@attrs.frozen(eq=False)
class LazyRows:
    """Rows [start, stop) of a `.npy` file as a float32 2-D array read on demand; with
    `mean`/`std` (one row each), normalised as (x - mean) / std."""

    file: str
    start: int
    stop: int
    width: int
    mean: Optional[np.ndarray] = None
    std: Optional[np.ndarray] = None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.stop - self.start, self.width)

    ndim = 2
    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.stop - self.start

    def _read(self, a: int, b: int) -> np.ndarray:
        rows = read_rows(self.file, self.start + a, self.start + b).astype(np.float32)
        if rows.shape[1] != self.width:
            raise fmt.DatasetError(f"{self.file}: rows are {rows.shape[1]} wide, the corpus index says {self.width}")
        if self.mean is not None:
            rows = (rows - self.mean) / self.std
        return rows

    def __getitem__(self, key):
        rows, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(rows, (int, np.integer)):
            i = int(rows) + (len(self) if rows < 0 else 0)
            return self._read(i, i + 1)[(0, *rest)]
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            return np.asarray(self)[key]
        a, b, _ = rows.indices(len(self))
        return self._read(a, max(a, b))[(slice(None), *rest)]

    def __array__(self, dtype=None, copy=None):
        whole = self._read(0, len(self))
        return whole if dtype is None else whole.astype(dtype)

    def astype(self, dtype) -> np.ndarray:
        return np.asarray(self).astype(dtype)


@attrs.frozen(eq=False)
class LazyClip:
    """A `Clip` whose landmarks and features are read from disk window by window."""

    name: str
    speaker: str
    source: str  # the dataset folder
    start: int  # first frame of the clip in the dataset
    stop: int
    encoder: str
    width: int  # feature width
    mean: np.ndarray  # 68 x 3
    std: np.ndarray
    split: str = ""
    mouth_opening: None = None  # real data has no ground-truth opening

    @property
    def n_frames(self) -> int:
        return self.stop - self.start

    @property
    def landmarks(self) -> LazyRows:
        return LazyRows(str(Path(self.source) / fmt.CANONICAL68), self.start, self.stop, N_LANDMARKS * 3,
                        self.mean.reshape(1, -1), np.maximum(self.std, 1e-6).reshape(1, -1))

    @property
    def features(self) -> LazyRows:
        return LazyRows(str(Path(self.source) / "audio_features" / f"{self.encoder}.npy"),
                        2 * self.start, 2 * self.stop, self.width)

    def piece(self, start: int, end: int, suffix: str = "") -> "LazyClip":
        return attrs.evolve(self, name=f"{self.name}{suffix}", start=self.start + start,
                            stop=self.start + min(end, self.n_frames))

    def denormalized(self) -> np.ndarray:
        raw = read_rows(str(Path(self.source) / fmt.CANONICAL68), self.start, self.stop)
        return raw.astype(np.float32).reshape(-1, N_LANDMARKS, 3)

    def load(self) -> "Clip":
        """This clip in memory."""
        return Clip(self.name, self.speaker, np.asarray(self.landmarks), np.asarray(self.features), self.encoder,
                    self.mean, self.std, None, self.source, self.split)


def read_index_clips(index: "CorpusIndex", encoder: str, min_frames: int = 5) -> tuple[list[LazyClip], list[int]]:
    """The lazy clips of every usable stretch of an indexed corpus with `encoder`'s stored
    features, and the rows of the datasets that lack them (to be read the slow way)."""
    clips: list[LazyClip] = []
    without: list[int] = []
    keep = ~index.skip_training
    long_enough = (index.seg_end - index.seg_start) >= min_frames
    for k in np.flatnonzero(long_enough & keep[index.seg_owner]):
        i = int(index.seg_owner[k])
        widths = index.feature_widths(i)
        if encoder not in widths:
            if not without or without[-1] != i:
                without.append(i)
            continue
        a, b = int(index.seg_start[k]), int(index.seg_end[k])
        folder = str(index.path(i))
        name = Path(str(index.dataset[i])).name
        first = int(np.searchsorted(index.seg_owner, i))  # a dataset's first stretch keeps its plain name
        clips.append(LazyClip(name if k == first else f"{name}:{a}", str(index.speaker[i]), folder, a, b,
                              encoder, widths[encoder], index.mean[i], index.std[i]))
    skipped = int((~keep).sum())
    if skipped:
        print(f"{index.root}: skipped {skipped} clips flagged by processing (e.g. an unknown audio-to-video "
              "offset; docs/av-offset.md)", file=sys.stderr)
    if not clips and not without:
        raise UsageError(f"{index.root}: the corpus index lists no usable clips")
    return clips, without
