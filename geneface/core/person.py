"""A person from several clips: the folder `geneface process CLIP [CLIP ...] -o PERSON` writes,
the one held-out rule for it, and `PersonDataset`, which every reader opens through `Dataset`.

Layout (format "geneface-person", version 1; docs/dataset_format.md, "A person from several
clips")::

    PERSON/
      manifest.json          the clips in order, their frame ranges, the splits, the person's
                             figures (written last: a folder without it is not a person)
      clips/NAME/            one complete dataset (format version 1) per clip, each with its own
                             background plate, camera fit, audio-visual offset, failed frames
      landmarks/stats.npz    mean, std (68 x 3) of canonical68 over the person's training frames

A clip's folder is named in the manifest relative to PERSON, so a person made of another
person's clips (`geneface dataset subset`: fewer training clips, the same held-out ones) holds
only its manifest and statistics.

The person is read as one video: the clips' frames one after another in the manifest's order,
frame indices running over all of them (`PersonDataset`), every per-frame array the clips'
arrays joined. What differs per clip is asked for by clip: `background(clip)`,
`clip_index()` (the clip of every frame), `clips` (their spans). The held-out clips are last, so
the held-out part is still one range at the end (`held_out_range`), and every trainer that
holds out a dataset's `val` split holds out whole clips without knowing it.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Optional, Sequence

import attrs
import numpy as np

from geneface.core import dataset as fmt
from geneface.core.atomic import atomic_output
from geneface.core.records import VIDEO_FPS, Audio, AudioFeatures, Camera

PERSON_FORMAT = "geneface-person"
PERSON_VERSION = 1
CLIPS_DIR = "clips"


def held_out_clips_start(clip_frames: Sequence[int], share: float = fmt.HELD_OUT_SHARE) -> int:
    """Index of the first held-out clip of a person whose clips have `clip_frames` frames, in
    order: the last clips, whole, as few as hold at least `share` of all frames (the field's
    last 1/11, `geneface.core.dataset.held_out_start` for one video), always leaving the first
    clip to train on. A person of one clip has no held-out clip: its held-out part is the
    clip's last frames (`held_out_start`)."""
    n_clips = len(clip_frames)
    if n_clips < 2:
        return n_clips
    need = math.ceil(sum(clip_frames) * share - 1e-9) if share > 0 else 0
    start, held = n_clips, 0
    while held < need and start > 1:
        start -= 1
        held += int(clip_frames[start])
    return start


@attrs.frozen
class ClipSpan:
    """One clip of a person: its name, its dataset folder, and its frames' range [start, end)
    in the person's frame indices."""

    name: str
    path: Path
    start: int
    end: int

    @property
    def n_frames(self) -> int:
        return self.end - self.start


def _read_clip(path: Path) -> dict:
    manifest = fmt.read_manifest(path)
    if manifest.get("format") != fmt.FORMAT_NAME:
        raise fmt.DatasetError(f"{path}: a person's clip must be a single-video dataset")
    return manifest


def _check_same_frame(manifests: list[dict], paths: list[Path]) -> None:
    """The clips of one person are drawn by one renderer: one frame size and one camera's
    intrinsics (the focal follows from --size and --fov, the principal point is the centre)."""
    first = manifests[0]
    for m, p in zip(manifests[1:], paths[1:]):
        if m["crop"]["size"] != first["crop"]["size"]:
            raise fmt.DatasetError(f"{p}: frames of {m['crop']['size']} px, but {paths[0]} has "
                                   f"{first['crop']['size']} px; process every clip of a person with the same --size")
        for key in ("focal", "cx", "cy"):
            a, b = float(m["camera"][key]), float(first["camera"][key])
            if abs(a - b) > 1e-6 * max(1.0, abs(b)):
                raise fmt.DatasetError(f"{p}: camera {key} {a:g}, but {paths[0]} has {b:g}; process every clip "
                                       "of a person with the same --size and --fov")


def clip_spans(person: Path, entries: Sequence[dict]) -> list[ClipSpan]:
    spans, start = [], 0
    for e in entries:
        n = int(e["n_frames"])
        spans.append(ClipSpan(str(e["name"]), (person / e["dir"]).resolve(), start, start + n))
        start += n
    return spans


def write_person_manifest(person: Path, clips: Sequence[Path], held_out_from: Optional[int] = None,
                          share: float = fmt.HELD_OUT_SHARE, names: Optional[Sequence[str]] = None,
                          identity: Optional[dict] = None, settings: Optional[dict] = None,
                          warnings: Sequence[str] = ()) -> dict:
    """Make `person` a person of the datasets `clips` (in this order) and return its manifest:
    the person's landmark statistics over its training frames, then manifest.json, last.

    `held_out_from`: the index of the first held-out clip (the clips from it on are held out);
    None: the one rule, `held_out_clips_start(..., share)`. One clip: its last `share` of frames
    is held out (`held_out_start`), as for a single video."""
    person = Path(person)
    clips = [Path(c) for c in clips]
    if not clips:
        raise fmt.DatasetError(f"{person}: a person needs at least one clip")
    manifests = [_read_clip(c) for c in clips]
    _check_same_frame(manifests, clips)
    frames = [int(m["n_frames"]) for m in manifests]
    n = sum(frames)
    if held_out_from is None:
        held_out_from = held_out_clips_start(frames, share)
    if len(clips) > 1 and not 1 <= held_out_from < len(clips):
        raise fmt.DatasetError(f"{person}: the held-out clips must leave at least one clip to train on and hold "
                               f"at least one (asked: from clip {held_out_from} of {len(clips)})")
    val_start = sum(frames[:held_out_from]) if len(clips) > 1 else fmt.held_out_start(n, share)
    names = list(names) if names is not None else [c.name for c in clips]
    if len(set(names)) != len(names):
        dup = next(x for x in names if names.count(x) > 1)
        raise fmt.DatasetError(f"{person}: two clips named '{dup}'; give each clip its own file name")
    entries = []
    for name, c, m in zip(names, clips, manifests):
        entries.append({
            "name": name,
            "dir": os.path.relpath(c.resolve(), person.resolve()),
            "n_frames": int(m["n_frames"]),
            "source": m["source"]["name"],
            "av_offset": (m.get("av_offset") or {}).get("applied_frames"),
            "failed_frames": int((m.get("quality") or {}).get("tracking_failures") or 0),
            "size": [m["source"].get("width"), m["source"].get("height")],
            "fps": m["source"].get("fps"),
        })
    first = manifests[0]
    features = [set(((m.get("audio") or {}).get("features") or {}).keys()) for m in manifests]
    shared = set.intersection(*features) if all(m.get("audio") for m in manifests) else set()
    audio = None
    if shared:
        audio = {"sample_rate": first["audio"]["sample_rate"],
                 "features": {k: dict(first["audio"]["features"][k]) for k in sorted(shared)}}
    radius = float(np.mean([float(m["camera"]["head_radius"]) for m in manifests]))
    camera = {**dict(first["camera"]), "head_radius": radius}
    splits = {"train": [0, val_start], "val": [val_start, n]}
    manifest = {
        "format": PERSON_FORMAT,
        "version": PERSON_VERSION,
        "complete": True,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "n_frames": n,
        "fps": VIDEO_FPS,
        "crop": {"size": int(first["crop"]["size"])},
        "camera": camera,
        "clips": entries,
        "held_out_clips": [e["name"] for e in entries[held_out_from:]] if len(clips) > 1 else [],
        "splits": splits,
        "audio": audio,
        "source": {"name": person.name, "clips": len(entries)},
        "identity": identity,
        "settings": settings or {},
        "tracker": first.get("tracker"),
        "versions": fmt.package_versions(),
        "warnings": list(warnings),
    }
    stats_file = person / fmt.STATS
    stats_file.parent.mkdir(parents=True, exist_ok=True)
    view = PersonDataset._from_manifest(person, fmt._Manifest.wrap(manifest, person / fmt.MANIFEST, ""))
    mean, std = person_statistics(view)
    from geneface.core.arrays import save_npz

    save_npz(stats_file, mean=mean, std=std)
    with atomic_output(person / fmt.MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    return manifest


def person_statistics(ds: "PersonDataset") -> tuple[np.ndarray, np.ndarray]:
    """mean, std (68 x 3, float32) of the canonical keypoints over the person's training frames."""
    lm = ds.landmarks_canonical()[ds.training_frames()]
    return lm.mean(0).astype(np.float32), np.maximum(lm.std(0), 1e-6).astype(np.float32)


def open_dataset(path) -> fmt.Dataset:
    """What every reader opens a person's data with: a `PersonDataset` for a person of several
    clips, a `Dataset` for one video's (DatasetError, naming the folder, for anything else)."""
    path = Path(path)
    try:
        raw = json.loads((path / fmt.MANIFEST).read_text())
    except (OSError, ValueError):
        raw = None
    if isinstance(raw, dict) and raw.get("format") == PERSON_FORMAT:
        return PersonDataset(path, read_person_manifest(path, raw))
    return fmt.Dataset(path)


def is_person(path) -> bool:
    try:
        return isinstance(open_dataset(path), PersonDataset)
    except fmt.DatasetError:
        return False


def missing_person_files(path: Path) -> list[str]:
    """What a person at `path` should hold and does not: its statistics, and each clip's files
    (`geneface.core.dataset.missing_files`), named by the clip's folder; a clip that is no
    complete dataset is one entry with the reason."""
    path = Path(path)
    manifest = read_person_manifest(path, json.loads((path / fmt.MANIFEST).read_text()))
    missing = [] if (path / fmt.STATS).is_file() else [fmt.STATS]
    for entry in manifest["clips"]:
        clip = path / entry["dir"]
        try:
            clip_manifest = fmt.read_manifest(clip)
        except fmt.DatasetError as exc:
            missing.append(f"clip '{entry['name']}' ({exc})")
            continue
        missing += [f"{entry['dir']}/{rel}" for rel in fmt.missing_files(clip, clip_manifest)]
    return missing


def missing_files(path: Path, manifest: Optional[dict] = None) -> list[str]:
    """`geneface.core.dataset.missing_files` for a person or a dataset of one video: what every
    command that vouches for a whole folder (`dataset info`) checks."""
    if manifest is not None and manifest.get("format") == PERSON_FORMAT or manifest is None and is_person(path):
        return missing_person_files(path)
    return fmt.missing_files(path, manifest)


def require_files(path: Path, manifest: Optional[dict] = None) -> None:
    """DatasetError naming what `missing_files` finds (a person: in its clips), if anything."""
    fmt.report_missing(path, missing_files(path, manifest))


def read_person_manifest(path: Path, manifest: dict) -> dict:
    """`manifest` (already parsed) checked as a complete person of a version this toolkit reads."""
    file = Path(path) / fmt.MANIFEST
    if manifest.get("version") != PERSON_VERSION:
        raise fmt.DatasetError(f"{path}: person format version {manifest.get('version')}, this toolkit reads "
                               f"version {PERSON_VERSION}; process the clips again with this version")
    if manifest.get("complete") is not True:
        raise fmt.DatasetError(f"{path}: person is incomplete")
    manifest = fmt._Manifest.wrap(manifest, file, "")
    fmt._check_fields(manifest)
    clips = manifest["clips"]
    if not isinstance(clips, list) or not clips:
        raise fmt.DatasetError(f"{file}: 'clips' must list the person's clips")
    total = 0
    for i, e in enumerate(clips):
        n = e["n_frames"]
        if not isinstance(n, int) or n < 1:
            raise fmt.DatasetError(f"{file}: 'clips[{i}].n_frames' must be a positive whole number, got {n!r}")
        total += n
    if total != manifest["n_frames"]:
        raise fmt.DatasetError(f"{file}: the clips hold {total} frames, 'n_frames' says {manifest['n_frames']}")
    return manifest


class PersonDataset(fmt.Dataset):
    """A person of several clips, read as one video (see the module's docstring). `Dataset(path)`
    returns one for a person's folder; everything `Dataset` offers works on it, with frame
    indices over all clips."""

    def __init__(self, path, manifest: Optional[dict] = None) -> None:
        self.path = Path(path)
        if manifest is None:
            raw = json.loads((self.path / fmt.MANIFEST).read_text())
            manifest = read_person_manifest(self.path, raw)
        self._setup(manifest)

    @classmethod
    def _from_manifest(cls, path: Path, manifest: dict) -> "PersonDataset":
        ds = object.__new__(cls)
        ds.path = Path(path)
        ds._setup(manifest)
        return ds

    def _setup(self, manifest: dict) -> None:
        self.manifest = manifest
        self._npz_cache = {}
        self._joined: dict[str, np.ndarray] = {}
        self.clips = clip_spans(self.path, manifest["clips"])
        self._datasets: list[Optional[fmt.Dataset]] = [None] * len(self.clips)
        self._starts = np.array([c.start for c in self.clips], np.int64)

    def __repr__(self) -> str:
        return f"<PersonDataset {self.path} {len(self.clips)} clips {self.n_frames} frames {self.size}px>"

    # -- the clips -----------------------------------------------------------------------
    @property
    def n_clips(self) -> int:
        return len(self.clips)

    def clip_dataset(self, clip: int) -> fmt.Dataset:
        """The dataset of clip `clip` (opened on first use)."""
        ds = self._datasets[clip]
        if ds is None:
            span = self.clips[clip]
            ds = fmt.Dataset(span.path)
            if ds.n_frames != span.n_frames:
                raise fmt.DatasetError(f"{span.path}: {ds.n_frames} frames, but {self.path / fmt.MANIFEST} "
                                       f"lists {span.n_frames} for clip '{span.name}'; the clip changed since")
            self._datasets[clip] = ds
        return ds

    def clip_of(self, index: int) -> int:
        """The clip frame `index` belongs to."""
        index = self._check_index(index)
        return int(np.searchsorted(self._starts, index, side="right") - 1)

    def clip_index(self) -> np.ndarray:
        """(T,) int: the clip of every frame."""
        return np.repeat(np.arange(self.n_clips), [c.n_frames for c in self.clips])

    def _local(self, index: int) -> tuple[fmt.Dataset, int]:
        k = self.clip_of(index)
        return self.clip_dataset(k), int(index) - self.clips[k].start

    # -- per frame -------------------------------------------------------------------------
    def frame(self, index: int) -> np.ndarray:
        ds, i = self._local(index)
        return ds.frame(i)

    def mask(self, index: int) -> np.ndarray:
        ds, i = self._local(index)
        return ds.mask(i)

    def frame_file(self, index: int) -> Path:
        ds, i = self._local(index)
        return ds.frame_file(i)

    def mask_file(self, index: int) -> Path:
        ds, i = self._local(index)
        return ds.mask_file(i)

    def background(self, clip: Optional[int] = None) -> np.ndarray:
        """The plate of clip `clip` (default: the first clip's)."""
        return self.clip_dataset(0 if clip is None else int(clip)).background()

    def background_seen(self, clip: Optional[int] = None) -> np.ndarray:
        return self.clip_dataset(0 if clip is None else int(clip)).background_seen()

    # -- arrays: the clips' joined ---------------------------------------------------------
    def _join(self, key: str, get) -> np.ndarray:
        if key not in self._joined:
            self._joined[key] = np.concatenate([get(self.clip_dataset(k)) for k in range(self.n_clips)])
        return self._joined[key]

    def tracking(self) -> dict[str, np.ndarray]:
        if "tracking" not in self._npz_cache:
            parts = [self.clip_dataset(k).tracking() for k in range(self.n_clips)]
            keys = set.intersection(*(set(p) for p in parts))
            self._npz_cache["tracking"] = {key: np.concatenate([p[key] for p in parts]) for key in sorted(keys)}
        return self._npz_cache["tracking"]

    def has_tracking(self) -> bool:
        return True  # every clip is a processed dataset: `tracking()` joins their flags

    def landmarks_mesh(self) -> np.ndarray:
        return self._join("mesh", lambda d: d.landmarks_mesh())

    def landmarks_image(self) -> np.ndarray:
        return self._join("image68", lambda d: d.landmarks_image())

    def landmarks_canonical(self) -> np.ndarray:
        return self._join("canonical68", lambda d: d.landmarks_canonical())

    def pose(self) -> dict[str, np.ndarray]:
        if "pose" not in self._npz_cache:
            parts = [self.clip_dataset(k).pose() for k in range(self.n_clips)]
            out = {k: np.concatenate([p[k] for p in parts]) for k in ("scale", "rotation", "translation")}
            out["canonical_mesh"] = np.mean([p["canonical_mesh"] for p in parts], axis=0)
            self._npz_cache["pose"] = out
        return self._npz_cache["pose"]

    def camera(self, indices=None) -> Camera:
        cam = self.manifest["camera"]
        c2w = self._join("c2w", lambda d: d.camera().c2w)
        return Camera(focal=float(cam["focal"]), width=self.size, height=self.size,
                      c2w=c2w if indices is None else c2w[np.asarray(indices)],
                      cx=float(cam["cx"]), cy=float(cam["cy"]))

    def audio(self) -> Audio:
        if not self.has_audio:
            raise fmt.DatasetError(f"{self.path}: some of its clips have no audio")
        parts = [self.clip_dataset(k).audio() for k in range(self.n_clips)]
        return Audio(np.concatenate([p.samples for p in parts]), parts[0].sample_rate)

    def audio_features(self, encoder: str = "mel") -> AudioFeatures:
        features = (self.manifest.get("audio") or {}).get("features") or {}
        if encoder not in features:
            raise fmt.DatasetError(f"{self.path}: no '{encoder}' audio features in every clip "
                                   f"(have: {', '.join(features) or 'none'}); reprocess with --audio-encoder {encoder}")
        parts = [self.clip_dataset(k).audio_features(encoder) for k in range(self.n_clips)]
        return AudioFeatures(np.concatenate([p.values for p in parts]), frame_rate=parts[0].frame_rate,
                             encoder=encoder, channels=parts[0].channels)

    # -- summary -------------------------------------------------------------------------
    def summary(self) -> dict:
        m = self.manifest
        held = set(m.get("held_out_clips") or [])
        return {
            **self.shape_summary(),
            "clips": [{"name": c.name, "dir": e["dir"], "frames": [c.start, c.end], "source": e.get("source"),
                       "av_offset": e.get("av_offset"), "failed_frames": e.get("failed_frames"),
                       "held_out": c.name in held}
                      for c, e in zip(self.clips, m["clips"])],
            "identity": m.get("identity"),
            "warnings": m.get("warnings") or [],
            "tracker": m.get("tracker"),
            "versions": m["versions"],
        }


def subset_clips(ds: "PersonDataset", train_minutes: Optional[float] = None,
                 train_clips: Optional[int] = None) -> int:
    """How many of `ds`'s first training clips make a subset: `train_clips` of them, or as few as
    hold at least `train_minutes` of tracked frames (DatasetError when the person has fewer)."""
    if (train_minutes is None) == (train_clips is None):
        raise fmt.DatasetError("give one of --train-minutes and --train-clips")
    held = set(ds.manifest.get("held_out_clips") or [])
    training = [k for k, c in enumerate(ds.clips) if c.name not in held]
    if not held or training != list(range(len(training))):
        raise fmt.DatasetError(f"{ds.path}: a subset needs a person whose last clips are held out "
                               "(a person of one clip holds out its own last frames)")
    if train_clips is not None:
        if not 1 <= train_clips <= len(training):
            raise fmt.DatasetError(f"{ds.path}: --train-clips must be 1 to {len(training)} (its training clips), "
                                   f"got {train_clips}")
        return int(train_clips)
    if not train_minutes > 0:
        raise fmt.DatasetError(f"--train-minutes must be positive, got {train_minutes:g}")
    usable = ds.usable()
    minutes = 0.0
    for k in training:
        span = ds.clips[k]
        minutes += usable[span.start:span.end].sum() / ds.fps / 60.0
        if minutes >= train_minutes - 1e-9:
            return k + 1
    raise fmt.DatasetError(f"{ds.path}: its training clips hold {minutes:.2f} min of tracked frames, fewer than "
                           f"the {train_minutes:g} asked for")


def write_subset(person: Path, out: Path, train_minutes: Optional[float] = None,
                 train_clips: Optional[int] = None) -> dict:
    """`geneface dataset subset`: the person `out` made of the first training clips of `person`
    (`subset_clips`) and exactly `person`'s held-out clips; the clips' folders stay where they
    are, named relative to `out`. Nested subsets of one person share one held-out set (what a
    study of training length needs)."""
    ds = open_dataset(person)
    if not isinstance(ds, PersonDataset):
        raise fmt.DatasetError(f"{person}: a dataset of one video; a subset is taken of a person of several clips")
    n_train = subset_clips(ds, train_minutes, train_clips)
    held = [k for k, c in enumerate(ds.clips) if c.name in set(ds.manifest["held_out_clips"])]
    keep = list(range(n_train)) + held
    names = [ds.clips[k].name for k in keep]
    identity = ds.manifest.get("identity")
    if identity:
        distances = dict(identity.get("distances") or {})
        identity = {**dict(identity), "distances": {n: distances.get(n) for n in names},
                    "flagged": [n for n in identity.get("flagged") or [] if n in names],
                    "measured_in": str(Path(person).resolve())}
    settings = {**dict(ds.manifest.get("settings") or {}),
                "subset": {"of": str(Path(person).resolve()), "train_minutes": train_minutes,
                           "train_clips": train_clips}}
    return write_person_manifest(out, [ds.clips[k].path for k in keep], held_out_from=n_train, names=names,
                                 identity=identity, settings=settings,
                                 warnings=[w for w in ds.manifest.get("warnings") or []
                                           if any(f"'{n}'" in w for n in names)])
