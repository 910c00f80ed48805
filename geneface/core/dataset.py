"""The dataset folder `geneface process` writes, and `Dataset`, the one loader every trainer uses.

Layout (format version 1; docs/dataset_format.md has the full description)::

    DATASET/
      manifest.json              what, where from, sizes, camera, splits, quality (written last)
      frames/000000.jpg ...      RGB crops, size x size, JPEG quality 95, one per frame at 25 fps
      masks/000000.png ...       uint8 labels: 0 background, 1 head (face + hair), 2 torso
      background.png             static background plate (RGB, size x size)
      background_seen.png        255 where the plate saw real background, 0 where inpainted
      audio.wav                  16 kHz mono PCM, exactly n_frames / 25 seconds (absent with --no-audio)
      audio_features/NAME.npy    (2 * n_frames, D) float32 at 50 Hz, rows 2t and 2t+1 belong to frame t
      landmarks/mesh.npy         (T, N, 3) tracker points in crop pixels (x, y, relative depth z)
      landmarks/image68.npy      (T, 68, 3) the 68 keypoints in crop pixels
      landmarks/canonical68.npy  (T, 68, 3) pose-free keypoints: the motion targets
      landmarks/stats.npz        mean, std (68 x 3) of canonical68 over the train split
      camera/c2w.npy             (T, 4, 4) camera-to-world (OpenCV axes), head fixed at the origin
      camera/pose.npz            scale, rotation, translation (the per-frame similarity), canonical_mesh
      camera/camera.npz          the same camera as a pose file (geneface.core.camera_io), for `input.poses`
      tracking.npz               confidence, n_faces, flags, reprojection_error, head_coverage (T,)

A dataset is complete only when manifest.json exists with "complete": true; `geneface process`
builds it in a hidden temporary folder and renames it at the end, so an interrupted run never
leaves anything this class would open. No pickles: every array loads with allow_pickle=False.

Writing one: `geneface process` (geneface.processing) writes the files, then `write_manifest`
last; both sides of the manifest live here.

Using it::

    ds = Dataset("data/may")            # raises DatasetError if it is not a complete dataset
    ds.n_frames, ds.size, ds.fps        # 500, 512, 25.0
    ds.split("train")                   # frame indices, failed-tracking frames left out
    ds.training_frames()                # what a person-specific model trains on (before the held-out part)
    ds.held_out_frames()                # what it is judged on (the manifest's val split, by default
                                        # the last 1/11), failed tracking left out
    ds.frame(i), ds.mask(i)             # uint8 H x W x 3, uint8 H x W labels (HEAD / TORSO)
    ds.background()                     # uint8 H x W x 3
    ds.motion()                         # Motion: canonical 68 x 3 per frame with mean / std
    ds.landmarks_image()                # (T, 68, 3) keypoints in crop pixels
    ds.camera()                         # Camera: focal, size, c2w (T x 4 x 4)
    ds.audio()                          # Audio, 16 kHz mono
    ds.audio_features("mel")            # AudioFeatures, 2 rows per frame
    ds.tracking()                       # dict of per-frame quality arrays
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from geneface.core.atomic import atomic_output
from geneface.core.records import VIDEO_FPS, Audio, AudioFeatures, Camera, Motion
from geneface.errors import UsageError

FORMAT_NAME = "geneface-dataset"
FORMAT_VERSION = 1

MANIFEST = "manifest.json"
FRAMES_DIR = "frames"
MASKS_DIR = "masks"
FRAME_EXT = ".jpg"
MASK_EXT = ".png"
BACKGROUND = "background.png"
BACKGROUND_SEEN = "background_seen.png"
AUDIO = "audio.wav"
FEATURES_DIR = "audio_features"
MESH = "landmarks/mesh.npy"
IMAGE68 = "landmarks/image68.npy"
CANONICAL68 = "landmarks/canonical68.npy"
STATS = "landmarks/stats.npz"
C2W = "camera/c2w.npy"
POSE = "camera/pose.npz"
TRACKING = "tracking.npz"

# Mask labels.
BACKGROUND_LABEL, HEAD, TORSO = 0, 1, 2
MASK_LABELS = {"background": BACKGROUND_LABEL, "head": HEAD, "torso": TORSO}
# The distributions whose versions a manifest records (what made the data).
RECORDED_VERSIONS = ("geneface", "mediapipe", "numpy", "opencv-python", "av")
# tracking.npz "flags" bits (see geneface.processing.tracking).
FLAG_INTERPOLATED, FLAG_FAILED, FLAG_MULTI_FACE, FLAG_LOW_CONFIDENCE = 1, 2, 4, 8


class DatasetError(UsageError):
    """A folder that is not a complete dataset of a version this toolkit reads."""


def frame_name(index: int, ext: str = FRAME_EXT) -> str:
    return f"{index:06d}{ext}"


def read_manifest(path: Path) -> dict:
    """The manifest of a complete dataset at `path`; DatasetError with the reason otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: no such dataset folder")
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise DatasetError(f"{path}: not a dataset (no {MANIFEST}; an unfinished `geneface process` run?)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{manifest_path}: unreadable manifest ({exc})") from None
    if isinstance(manifest, dict) and manifest.get("format") == "geneface-person":
        raise DatasetError(f"{path}: a person of several clips, not one video's dataset (open it with "
                           "geneface.core.person.open_dataset)")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise DatasetError(f"{manifest_path}: not a {FORMAT_NAME} manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise DatasetError(
            f"{path}: dataset format version {manifest.get('version')}, this toolkit reads version "
            f"{FORMAT_VERSION}; reprocess the video with this version"
        )
    if manifest.get("complete") is not True:
        raise DatasetError(f"{path}: dataset is incomplete")
    manifest = _Manifest.wrap(manifest, manifest_path, "")
    _check_fields(manifest)
    return manifest


class _Manifest(dict):
    """A manifest whose missing keys are a DatasetError naming the file and key path.

    A hand-edited or damaged manifest should say which key it lacks wherever the key is
    read (Dataset, `dataset info`, trainers), not end as a KeyError.
    """

    file: Path
    where: str

    @classmethod
    def wrap(cls, value, file: Path, where: str):
        if isinstance(value, dict):
            out = cls({k: cls.wrap(v, file, f"{where}.{k}" if where else k) for k, v in value.items()})
            out.file, out.where = file, where
            return out
        if isinstance(value, list):
            return [cls.wrap(v, file, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    def __missing__(self, key):
        raise DatasetError(f"{self.file}: no '{f'{self.where}.{key}' if self.where else key}' key")


def _check_fields(manifest: dict) -> None:
    """The fields every reader needs, with usable values (the rest fail by name when read)."""
    file = manifest.file
    n, fps, size = manifest["n_frames"], manifest["fps"], manifest["crop"]["size"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise DatasetError(f"{file}: 'n_frames' must be a positive whole number, got {n!r}")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not (fps > 0 and math.isfinite(fps)):
        raise DatasetError(f"{file}: 'fps' must be a positive number, got {fps!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise DatasetError(f"{file}: 'crop.size' must be a positive whole number, got {size!r}")
    splits = manifest["splits"]
    for name, value in (splits.items() if isinstance(splits, dict) else [("", splits)]):
        ok = (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)
              and 0 <= value[0] <= value[1] <= n)
        if not ok:
            raise DatasetError(f"{file}: 'splits{'.' + name if name else ''}' must be [start, end] frames within 0..{n}, got {value!r}")


def package_versions() -> dict:
    """Python's and RECORDED_VERSIONS' versions (None for one not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in RECORDED_VERSIONS:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def write_manifest(folder: Path, n_frames: int, jpeg_quality: int = 95, **sections) -> dict:
    """Write `folder`/manifest.json, the file that makes a folder a dataset, and return it.

    Write it last: `read_manifest` takes its presence to mean everything else is there. The
    format's own fields (format, version, complete, created, fps, the frame and mask layout,
    versions) are filled in here; `sections` are the rest, as docs/dataset_format.md lists
    them (source, crop, camera, splits, audio, tracker, settings, quality, warnings, timings).
    """
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "complete": True,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "n_frames": int(n_frames),
        "fps": VIDEO_FPS,
        "frames": {"dir": FRAMES_DIR, "ext": FRAME_EXT, "jpeg_quality": int(jpeg_quality)},
        "masks": {"dir": MASKS_DIR, "ext": MASK_EXT, "labels": dict(MASK_LABELS)},
        "versions": package_versions(),
        **sections,
    }
    with atomic_output(Path(folder) / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    return manifest


HELD_OUT_SHARE = 1 / 11  # the field's protocol (METHOD.md, "Evaluation"): the last 1/11 is held out


def held_out_start(n_frames: int, share: float = HELD_OUT_SHARE) -> int:
    """First held-out frame of a video of `n_frames`: its last `share` (rounded up, at least
    one frame left to train on) is never trained on by a person-specific model.

    The one rule: `geneface process --val-fraction` writes it into the manifest's splits, and
    every reader takes a dataset's held-out part from there (`Dataset.held_out_range`).
    """
    n_held = math.ceil(n_frames * share - 1e-9) if share > 0 else 0  # 1e-9: 11 * (1/11) is 1
    return n_frames - min(n_held, n_frames - 1)


def is_dataset(path: Path) -> bool:
    try:
        read_manifest(path)
    except DatasetError:
        return False
    return True


class Dataset:
    """A processed video: read-only access to everything `geneface process` wrote.

    Arrays are loaded on first use and cached; images are read per call (a trainer samples
    frames at random, so nothing holds the whole video in memory).
    """

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self._npz_cache: dict[str, dict] = {}

    def __repr__(self) -> str:
        return f"<Dataset {self.path} {self.n_frames} frames {self.size}px>"

    # -- shape of the data -----------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return int(self.manifest["n_frames"])

    @property
    def fps(self) -> float:
        return float(self.manifest["fps"])

    @property
    def size(self) -> int:
        """Side of the square frames, in pixels."""
        return int(self.manifest["crop"]["size"])

    @property
    def has_audio(self) -> bool:
        return self.manifest.get("audio") is not None

    @property
    def feature_names(self) -> list[str]:
        audio = self.manifest.get("audio") or {}
        return sorted((audio.get("features") or {}).keys())

    # -- splits ----------------------------------------------------------------------
    def split(self, name: str, include_failed: bool = False) -> np.ndarray:
        """Frame indices of split `name` ("train" or "val"), in time order.

        Frames whose tracking failed (long gaps, filled only for continuity) are left out
        unless `include_failed`; sequence models that need contiguous windows can use
        `split_range` and `tracking()["flags"]` themselves.
        """
        start, end = self.split_range(name)
        idx = np.arange(start, end)
        if not include_failed:
            idx = idx[(self.tracking()["flags"][idx] & FLAG_FAILED) == 0]
        return idx

    def split_range(self, name: str) -> tuple[int, int]:
        """[start, end) frame range of split `name`."""
        splits = self.manifest["splits"]
        if name not in splits:
            raise DatasetError(f"{self.path}: no split '{name}' (have: {', '.join(splits)})")
        start, end = splits[name]
        return int(start), int(end)

    # -- the person's frames: trained on, held out -----------------------------------
    def usable(self, n: Optional[int] = None) -> np.ndarray:
        """bool per frame (the first `n`; default all): inside a split and tracked, i.e. its
        tracking did not fail (FLAG_FAILED clear; such frames are filled only for continuity).
        A folder without tracking.npz counts every frame of its splits as tracked."""
        n = self.n_frames if n is None else int(n)
        ok = np.zeros(n, bool)
        for name in self.manifest["splits"]:
            start, end = self.split_range(name)
            ok[start:end] = True
        if self.has_tracking():
            failed = (np.asarray(self.tracking()["flags"][:n]) & FLAG_FAILED) != 0
            ok[: len(failed)] &= ~failed
        return ok

    def has_tracking(self) -> bool:
        """Whether per-frame tracking flags exist (an old or hand-made folder may lack them)."""
        return (self.path / TRACKING).exists()

    @property
    def held_out_start(self) -> int:
        """First held-out frame: the start of the manifest's `val` split, which `geneface
        process` wrote with `held_out_start` and its `--val-fraction` (default the last 1/11);
        a manifest without one holds out the last 1/11."""
        splits = self.manifest["splits"]
        return self.split_range("val")[0] if "val" in splits else held_out_start(self.n_frames)

    def held_out_range(self, n: Optional[int] = None) -> tuple[int, int]:
        """[start, end) of the held-out frames among the first `n` (default all): the same
        frames whatever `n` (a trainer whose features end a frame early holds out no less)."""
        n = self.n_frames if n is None else int(n)
        return min(self.held_out_start, n), n

    def training_frames(self, n: Optional[int] = None) -> np.ndarray:
        """Indices of the frames a person-specific model trains on: the usable ones before the
        held-out part (of the first `n` frames; default all), in time order."""
        start, _ = self.held_out_range(n)
        return np.flatnonzero(self.usable(n)[:start])

    def held_out_frames(self, n: Optional[int] = None) -> np.ndarray:
        """Indices of the usable frames of the held-out part (of the first `n`; default all), in
        time order: what a person-specific model is judged on."""
        start, _ = self.held_out_range(n)
        return np.flatnonzero(self.usable(n)[start:]) + start

    # -- images ----------------------------------------------------------------------
    def _image(self, rel: str, flags: int) -> np.ndarray:
        import cv2

        file = self.path / rel
        image = cv2.imread(str(file), flags)
        if image is None:
            raise DatasetError(f"{file}: missing or unreadable image")
        return image

    def _check_index(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self.n_frames:
            raise IndexError(f"frame {index} out of range 0..{self.n_frames - 1}")
        return index

    def frame_file(self, index: int) -> Path:
        """The JPEG file of frame `index`."""
        return self.path / FRAMES_DIR / frame_name(self._check_index(index))

    def mask_file(self, index: int) -> Path:
        """The PNG file of mask `index`."""
        return self.path / MASKS_DIR / frame_name(self._check_index(index), MASK_EXT)

    @property
    def n_clips(self) -> int:
        """Clips of the person (one video: 1; geneface.core.person for several)."""
        return 1

    def clip_index(self) -> np.ndarray:
        """(T,) int: the clip of every frame (one video: all 0)."""
        return np.zeros(self.n_frames, np.int64)

    def clip_of(self, index: int) -> int:
        self._check_index(index)
        return 0

    def frame(self, index: int) -> np.ndarray:
        """RGB uint8 (size, size, 3) crop of frame `index`."""
        import cv2

        index = self._check_index(index)
        return self._image(f"{FRAMES_DIR}/{frame_name(index)}", cv2.IMREAD_COLOR)[..., ::-1].copy()

    def frames(self, indices=None) -> Iterator[np.ndarray]:
        """RGB frames in order (all, or `indices`), one at a time."""
        for i in range(self.n_frames) if indices is None else indices:
            yield self.frame(i)

    def mask(self, index: int) -> np.ndarray:
        """uint8 (size, size) labels of frame `index`: 0 background, HEAD (1), TORSO (2)."""
        import cv2

        index = self._check_index(index)
        return self._image(f"{MASKS_DIR}/{frame_name(index, MASK_EXT)}", cv2.IMREAD_UNCHANGED)

    def background(self, clip: Optional[int] = None) -> np.ndarray:
        """RGB uint8 (size, size, 3) static background plate (`clip`: for a person of several
        clips, whose; one video has one)."""
        import cv2

        return self._image(BACKGROUND, cv2.IMREAD_COLOR)[..., ::-1].copy()

    def background_seen(self, clip: Optional[int] = None) -> np.ndarray:
        """bool (size, size): True where the plate shows real background (not inpainted)."""
        import cv2

        return self._image(BACKGROUND_SEEN, cv2.IMREAD_GRAYSCALE) > 127

    # -- arrays ----------------------------------------------------------------------
    def _array(self, rel: str) -> np.ndarray:
        file = self.path / rel
        try:
            return np.load(file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{file}: missing or unreadable ({exc})") from None

    def _npz(self, rel: str) -> dict:
        if rel not in self._npz_cache:
            with self._array(rel) as data:
                self._npz_cache[rel] = {k: data[k] for k in data.files}
        return self._npz_cache[rel]

    def tracking(self) -> dict[str, np.ndarray]:
        """Per-frame arrays: confidence, n_faces, flags (bits FLAG_*), reprojection_error (px),
        head_coverage (share of the 68-point hull inside the segmented head)."""
        return self._npz(TRACKING)

    def landmarks_mesh(self) -> np.ndarray:
        """(T, N, 3) tracker points in crop pixels."""
        return self._array(MESH)

    def landmarks_image(self) -> np.ndarray:
        """(T, 68, 3) keypoints in crop pixels (x, y, relative depth)."""
        return self._array(IMAGE68)

    def landmarks_canonical(self) -> np.ndarray:
        """(T, 68, 3) pose-free keypoints in the canonical head frame (roughly metres)."""
        return self._array(CANONICAL68)

    def landmark_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std), each 68 x 3, of the canonical keypoints over the train split."""
        stats = self._npz(STATS)
        return stats["mean"], stats["std"]

    def motion(self, indices=None) -> Motion:
        """Canonical keypoints (all frames or `indices`) as Motion, with mean / std attached."""
        lm = self.landmarks_canonical()
        if indices is not None:
            lm = lm[np.asarray(indices)]
        mean, std = self.landmark_stats()
        return Motion(lm, fps=self.fps, mean=mean, std=std)

    def pose(self) -> dict[str, np.ndarray]:
        """The per-frame similarity (scale, rotation, translation) and the video's canonical mesh."""
        return self._npz(POSE)

    def camera(self, indices=None) -> Camera:
        """The camera: focal, size, one camera-to-world pose per frame (all, or `indices`)."""
        cam = self.manifest["camera"]
        c2w = self._array(C2W)
        return Camera(
            focal=float(cam["focal"]),
            width=self.size,
            height=self.size,
            c2w=c2w if indices is None else c2w[np.asarray(indices)],
            cx=float(cam["cx"]),
            cy=float(cam["cy"]),
        )

    # -- audio -----------------------------------------------------------------------
    def audio(self) -> Audio:
        """The speech, 16 kHz mono, as long as the frames."""
        if not self.has_audio:
            raise DatasetError(f"{self.path}: processed with --no-audio, it has no audio")
        import soundfile

        file = self.path / self.manifest["audio"]["file"]
        try:
            samples, rate = soundfile.read(str(file), dtype="float32", always_2d=False)
        except Exception as exc:  # soundfile raises its own error types
            raise DatasetError(f"{file}: unreadable audio ({exc})") from None
        return Audio(samples, int(rate))

    def audio_features(self, encoder: str = "mel") -> AudioFeatures:
        """Features of `encoder`, two rows per frame (rows 2t, 2t+1 belong to frame t)."""
        features = (self.manifest.get("audio") or {}).get("features") or {}
        if encoder not in features:
            raise DatasetError(
                f"{self.path}: no '{encoder}' audio features (have: {', '.join(features) or 'none'}); "
                f"reprocess with --audio-encoder {encoder}"
            )
        entry = features[encoder]
        values = self._array(entry["file"])
        return AudioFeatures(values, frame_rate=float(entry["rate"]), encoder=encoder, channels=tuple(entry.get("channels") or ()))

    # -- summary ---------------------------------------------------------------------
    def shape_summary(self) -> dict:
        """The keys every summary starts with (one video's and a person's): where, sizes, splits."""
        m = self.manifest
        return {
            "path": str(self.path),
            "source": m["source"]["name"],
            "n_frames": self.n_frames,
            "fps": self.fps,
            "size": self.size,
            "duration": self.n_frames / self.fps,
            "focal": m["camera"]["focal"],
            "splits": {k: list(v) for k, v in m["splits"].items()},
            "audio_features": self.feature_names,
        }

    def summary(self) -> dict:
        """What `geneface dataset info --json` prints."""
        m = self.manifest
        return {
            **self.shape_summary(),
            # None: processed before the offset step existed (`geneface dataset av-offset` adds it)
            "av_offset": m.get("av_offset"),
            "quality": m["quality"],
            "timings": m["timings"],
            "tracker": m["tracker"],
            "versions": m["versions"],
        }



# -- which files a finished dataset must hold (`dataset info`, `dataset index`) -------------
# Kept apart from the loader: `Dataset` opens files when they are used; this checks them all
# up front, for the commands that vouch for a whole dataset.
LAYOUT_FILES = (BACKGROUND, BACKGROUND_SEEN, MESH, IMAGE68, CANONICAL68, STATS, C2W, POSE, "camera/camera.npz",
                TRACKING)


def missing_files(path: Path, manifest: Optional[dict] = None) -> list[str]:
    """The files a complete dataset at `path` should hold and does not: the format's layout,
    every frame and mask the manifest counts, its audio and feature files. A run of missing
    frames or masks is one entry (`frames/: 3 of 40 missing, first 000012.jpg`). (A person of
    several clips: `geneface.core.person.missing_files`.)"""
    import os  # here, so this block stays apart from the module's head

    path = Path(path)
    manifest = read_manifest(path) if manifest is None else manifest
    missing = [rel for rel in LAYOUT_FILES if not (path / rel).is_file()]
    n = int(manifest["n_frames"])
    for section, default_dir, default_ext in (("frames", FRAMES_DIR, FRAME_EXT), ("masks", MASKS_DIR, MASK_EXT)):
        layout = manifest.get(section) or {}
        folder, ext = layout.get("dir", default_dir), layout.get("ext", default_ext)
        try:
            have = set(os.listdir(path / folder))
        except OSError:
            have = set()
        absent = [name for name in (frame_name(i, ext) for i in range(n)) if name not in have]
        if absent:
            missing.append(f"{folder}/: {len(absent)} of {n} missing, first {absent[0]}")
    audio = manifest.get("audio") or {}
    for rel in [audio.get("file")] + [f.get("file") for f in (audio.get("features") or {}).values()]:
        if rel and not (path / rel).is_file():
            missing.append(rel)
    return missing


def require_files(path: Path, manifest: Optional[dict] = None) -> None:
    """DatasetError naming what `missing_files` finds, if anything."""
    report_missing(path, missing_files(path, manifest))


def report_missing(path: Path, missing: list[str]) -> None:
    """DatasetError naming the first of `missing` (files a dataset at `path` lacks), if any."""
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise DatasetError(f"{path}: damaged dataset, missing {'; '.join(missing[:3])}{more}")
