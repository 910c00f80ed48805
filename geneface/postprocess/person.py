"""The target person's training material for post-processing, read once from a dataset folder.

Everything post-processing learns about the person (landmark range, blinks, closed mouth, head
path) comes from the frames a person-specific model may train on: the dataset's
`training_frames()`, those before the held-out part (the manifest's val split, by default the last 1/11: METHOD.md) minus frames whose
tracking failed. Frames are kept as contiguous runs (`segments`), because blinks and
intervals between them must not be measured across a gap, nor across the boundary between two
clips of a person of several clips (`geneface.core.person`: another recording). The looped
head path is one clip's poses (`loop_camera`, the longest training clip's): a loop stitched
across clips would jump from one recording's pose to the next's.

Motion reaches post-processing in the units of whoever made it (`Motion.mean`/`std`); the
steps work in the person's own units (`to_person_units`) and the result is handed back in the
motion's units (`from_person_units`), the convention `geneface.core.records.rebase`
set for every person-specific stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import attrs
import numpy as np

from geneface.core.records import N_LANDMARKS, Camera, Motion
from geneface.errors import UsageError

MIN_TRAIN_FRAMES = 25  # one second: less says nothing about a person's range or blinking


@attrs.frozen(eq=False)
class PersonFrames:
    """One person's training frames: landmark runs (person units), statistics, poses."""

    path: Path
    segments: tuple = attrs.field(converter=tuple)  # each T_i x 68 x 3, contiguous training frames
    mean: np.ndarray  # 68 x 3, over every training frame
    std: np.ndarray  # 68 x 3 (+1e-6, as geneface.training.person_data, so it never divides by 0)
    camera: Camera  # the person's camera with the training frames' poses only
    fps: float
    # the poses a head path loops: one clip's training range (the longest clip's); None: `camera`
    loop_poses: Optional[Camera] = None

    @property
    def loop_camera(self) -> Camera:
        return self.camera if self.loop_poses is None else self.loop_poses

    @property
    def landmarks(self) -> np.ndarray:
        """Every training frame, N x 68 x 3."""
        return np.concatenate(self.segments)

    @property
    def n_frames(self) -> int:
        return sum(len(s) for s in self.segments)

    @property
    def seconds(self) -> float:
        return self.n_frames / self.fps


def person_from_arrays(path: Path, segments, camera: Camera, fps: float = 25.0,
                       loop_poses: Optional[Camera] = None) -> PersonFrames:
    """A PersonFrames from landmark runs already split off (tests, third parties)."""
    segments = [np.asarray(s, np.float32).reshape(-1, N_LANDMARKS, 3) for s in segments if len(s)]
    frames = np.concatenate(segments).astype(np.float64)
    mean = frames.mean(0).astype(np.float32)
    std = (frames.std(0) + 1e-6).astype(np.float32)
    return PersonFrames(Path(path), segments, mean, std, camera, float(fps), loop_poses)


def read_person(path: Optional[Path], where: str = "person") -> PersonFrames:
    """The training frames of the dataset at `path`; one-line UsageError naming `where` otherwise."""
    from geneface.core.arrays import true_runs
    from geneface.core.dataset import Dataset, DatasetError
    from geneface.core.person import open_dataset

    if path is None:
        raise UsageError(f"{where}: required, the target person's dataset folder (made by `geneface process`)")
    path = Path(path).expanduser()
    try:
        ds = open_dataset(path)
        landmarks = ds.landmarks_canonical()
        camera = ds.camera()
        n = min(len(landmarks), ds.n_frames, camera.n_frames)
        train = ds.training_frames(n)  # the held-out part is never looked at
        start, _ = ds.held_out_range(n)
    except DatasetError as exc:
        raise UsageError(f"{where}: {exc}") from None
    if landmarks.ndim != 3 or landmarks.shape[1:] != (N_LANDMARKS, 3):
        raise UsageError(f"{where}: {path}: canonical landmarks must be T x 68 x 3, got {landmarks.shape}")
    kept = np.zeros(n, bool)
    kept[train] = True
    clip = ds.clip_index()[:n]
    # runs of training frames, cut where tracking failed and where one clip ends and the next begins
    segments = [landmarks[a:b] for k in range(ds.n_clips) for a, b in true_runs(kept & (clip == k))]
    n_train = sum(len(s) for s in segments)
    if n_train < MIN_TRAIN_FRAMES:
        raise UsageError(f"{where}: {path}: {n_train} usable training frames (before the held-out part); "
                         f"post-processing needs at least {MIN_TRAIN_FRAMES}")
    if not np.all(np.isfinite(landmarks[:start])):
        raise UsageError(f"{where}: {path}: canonical landmarks contain NaN or infinite values")
    # Poses: the whole training range, failed frames included (geneface process fills them for
    # continuity), so the looped head path has no jumps; of several clips, the longest clip's
    # training range alone (clips held out lie after `start`).
    loop = None
    if ds.n_clips > 1:
        ranges = [(c.start, min(c.end, start)) for c in ds.clips if c.start < start]
        a, b = max(ranges, key=lambda r: r[1] - r[0])
        loop = attrs.evolve(camera, c2w=camera.c2w[a:b])
    camera = attrs.evolve(camera, c2w=camera.c2w[:start])
    return person_from_arrays(path, segments, camera, ds.fps, loop)


def to_person_units(motion: Motion, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """T x 68 x 3 landmarks of `motion` in the person's units (float64).

    Motion with its own statistics is read as z-scores and re-expressed in the person's face;
    motion without them is taken to be in the person's units already.
    """
    if motion.mean is None or motion.std is None:
        return motion.landmarks.astype(np.float64)
    return motion.normalized().astype(np.float64) * std + mean


def from_person_units(landmarks: np.ndarray, motion: Motion, mean: np.ndarray, std: np.ndarray) -> Motion:
    """The inverse of `to_person_units`: a Motion like `motion` (fps, mean, std) holding `landmarks`."""
    x = np.asarray(landmarks, np.float64)
    if motion.mean is not None and motion.std is not None:
        # The same floor on std as Motion.normalized, so an untouched frame comes back as it was.
        x = (x - mean) / std * np.maximum(motion.std, 1e-6) + motion.mean
    return Motion(x.astype(np.float32), motion.fps, motion.mean, motion.std)
