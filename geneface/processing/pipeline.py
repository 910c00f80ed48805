"""`geneface process`: one talking-head video -> one dataset folder (geneface.core.dataset).

Stages, each timed and recorded in the manifest:

1. source   probe, hash, refuse unusable files (truncated, no video, no audio unless allowed);
2. track    decode at 25 fps and track the face (FaceTracker plugin); fill short gaps, flag
            long ones, refuse too many failures or a face that is too small;
3. crop     one static square box from the whole track;
4. render   decode again, crop, segment the person, split head / torso, write frames and
            masks (on a writer thread), sample frames for the background plate;
5. pose     canonical face, similarity per frame, perspective camera, canonical keypoints;
6. audio    16 kHz mono wav as long as the frames; features per AudioEncoder, 2 per frame;
7. finish   arrays, statistics, manifest (last), rename the work folder into place.

The crop needs the whole track, so frames are needed twice: a clip whose decoded frames fit
in FRAME_CACHE_BYTES keeps them from the tracking pass; a longer one is decoded again (~2 ms a
frame), which keeps memory flat however long the video.

Work happens in a hidden sibling folder `.NAME.partial`; finished stages are recorded in its
`state.json`, so `resume=True` continues after a crash or Ctrl-C from the last finished
stage. The folder becomes NAME only when everything is written, manifest last.
"""

from __future__ import annotations

import json
import math
import os
import platform
import queue
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import attrs
import numpy as np

from geneface.core import dataset as fmt
from geneface.core import landmarks68 as L68
from geneface.core.atomic import atomic_output
from geneface.core.config import unstructure
from geneface.core.media import iter_video_frames, read_audio, write_wav
from geneface.core.records import FEATURE_RATE, SAMPLE_RATE, VIDEO_FPS, Audio
from geneface.errors import GenefaceError, MediaError, UsageError
from geneface.processing import tracking as trk
from geneface.processing.background import BackgroundPlate
from geneface.processing.crop import CropBox, choose_crop
from geneface.processing.masks import Segmenter, split_person
from geneface.processing.pose import DEFAULT_FOV_DEGREES, fit_pose
from geneface.processing.source import SourceInfo, inspect_source

STATE_FILE = "state.json"
TRACK_FILE = "track.npz"
RENDER_FILE = "render.npz"
# Videos whose decoded frames fit in this many bytes are decoded once: tracking keeps the
# frames for the second pass. Longer ones are decoded twice, so memory stays flat.
FRAME_CACHE_BYTES = 768 << 20


def _positive(_inst, attribute, value):
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


def _share(_inst, attribute, value):
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{attribute.name} must be in [0, 1), got {value}")


@attrs.define
class ProcessConfig:
    """Every setting of `geneface process`; stored in the manifest."""

    size: int = attrs.field(default=512, validator=_positive)  # output crop side, px
    crop_scale: float = attrs.field(default=2.0, validator=_positive)  # crop side / face height
    val_fraction: float = attrs.field(default=0.1, validator=_share)  # last share of time -> validation
    audio_encoders: tuple[str, ...] = attrs.field(default=("mel",), converter=tuple)
    no_audio: bool = False
    tracker: str = "mediapipe"
    fov_degrees: float = attrs.field(default=DEFAULT_FOV_DEGREES, validator=_positive)
    pose_smoothing: float = 1.0  # Gaussian sigma in frames over the head pose (0 = off)
    max_gap: int = 5  # frames without a face that are interpolated (0.2 s)
    max_failed: float = attrs.field(default=0.05, validator=_share)  # share of failed frames allowed
    min_face_px: float = 80.0  # median face width (source pixels) below which we refuse
    min_confidence: float = 0.5  # frames under it are flagged LOW_CONFIDENCE (not dropped)
    jpeg_quality: int = 95
    background_samples: int = 40

    def __attrs_post_init__(self):
        if self.size % 2 or self.size < 16:
            raise ValueError(f"size must be an even number of at least 16 px, got {self.size}")
        if not 0 < self.fov_degrees < 120:
            raise ValueError(f"fov_degrees must be in (0, 120), got {self.fov_degrees}")
        if not self.no_audio and not self.audio_encoders:
            raise ValueError("name at least one audio encoder, or process with no_audio")


# -- small helpers -------------------------------------------------------------------------


class ProgressBars:
    """Rich progress bars with frames per second and time left; silent when `quiet`."""

    def __init__(self, quiet: bool) -> None:
        self._progress = None
        if not quiet:
            from geneface.core.progress import make_progress

            self._progress = make_progress("frame")

    def __enter__(self) -> "ProgressBars":
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def task(self, description: str, total: Optional[int], unit: str = "frame") -> Callable[[int], None]:
        if self._progress is None:
            return lambda n=1: None
        progress = self._progress
        task = progress.add_task(description, total=total, rate="")

        def advance(n: int = 1) -> None:
            progress.advance(task, n)
            speed = progress.tasks[task].speed
            if speed:
                progress.update(task, rate=f"{speed:.2f} {unit}/s")

        return advance


def prefetch(iterable: Iterable, depth: int = 8) -> Iterator:
    """Run `iterable` on a background thread, `depth` items ahead (decoding overlaps work)."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterable:
                if stop.is_set():
                    return
                items.put(item)
            items.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            items.put(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                items.get_nowait()
            except queue.Empty:
                thread.join(0.05)


def _save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(array), allow_pickle=False)


def _save_npz(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})


def _fit_rows(values: np.ndarray, n: int) -> np.ndarray:
    """Trim or edge-pad along time to exactly `n` rows."""
    if len(values) >= n:
        return values[:n]
    if len(values) == 0:
        return np.zeros((n,) + values.shape[1:], values.dtype)
    return np.concatenate([values, np.repeat(values[-1:], n - len(values), axis=0)])


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("geneface", "mediapipe", "numpy", "opencv-python", "av"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def _stats(values: np.ndarray) -> dict:
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return {"mean": None, "max": None, "min": None}
    return {"mean": round(float(values.mean()), 4), "max": round(float(values.max()), 4), "min": round(float(values.min()), 4)}


# -- the work folder -----------------------------------------------------------------------


class WorkFolder:
    """`.NAME.partial` next to the output, with the stages finished so far."""

    def __init__(self, out: Path, fingerprint: dict, resume: bool, log: Callable[[str], None]) -> None:
        self.out = out
        self.path = out.with_name(f".{out.name}.partial")
        self.fingerprint = fingerprint
        self._lock = threading.Lock()
        state = self._read_state()
        if self.path.exists() and not (resume and state and state.get("fingerprint") == fingerprint):
            if resume and state:
                log(f"{self.path.name}: left by a run with other settings or another source; starting over")
            shutil.rmtree(self.path)
            state = None
        self.path.mkdir(parents=True, exist_ok=True)
        self.state = state or {"fingerprint": fingerprint, "done": {}}
        if state:
            log(f"resuming: {', '.join(self.state['done']) or 'no'} stage(s) already done")

    def _read_state(self) -> Optional[dict]:
        try:
            return json.loads((self.path / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None

    def done(self, stage: str) -> Optional[dict]:
        return self.state["done"].get(stage)

    def mark(self, stage: str, info: dict) -> None:
        with self._lock:  # the audio stage runs on its own thread
            self.state["done"][stage] = info
            with atomic_output(self.path / STATE_FILE) as tmp:
                tmp.write_text(json.dumps(self.state, indent=1))

    def finish(self, overwrite: bool) -> None:
        for name in (STATE_FILE, TRACK_FILE, RENDER_FILE):
            (self.path / name).unlink(missing_ok=True)
        if self.out.exists():
            if not overwrite:
                raise UsageError(f"{self.out} appeared while processing; not replacing it")
            shutil.rmtree(self.out)
        os.replace(self.path, self.out)

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


# -- stages --------------------------------------------------------------------------------


def _get_tracker(name: str):
    from geneface.registry import get_registry

    entry = get_registry().get("face_tracker", name, where="--tracker")
    return entry.cls(), entry


def _get_encoders(names: Iterable[str]) -> list:
    from geneface.registry import get_registry

    registry = get_registry()
    return [(name, registry.get("audio_encoder", name, where="--audio-encoder").cls()) for name in names]


def _track_stage(
    work: WorkFolder, source: SourceInfo, config: ProcessConfig, tracker, bars: ProgressBars, cache: Optional[list]
) -> trk.TrackResult:
    """Track every frame; decoded frames are appended to `cache` when it is a list."""
    file = work.path / TRACK_FILE
    if work.done("track") and file.exists():
        with np.load(file, allow_pickle=False) as data:
            return trk.TrackResult(**{k: data[k] for k in ("points", "confidence", "n_faces", "flags")})
    n_expected = source.info.n_frames(VIDEO_FPS)
    advance = bars.task("tracking", n_expected)
    frames = prefetch(iter_video_frames(source.info.path, VIDEO_FPS))
    if cache is not None:
        frames = _keep(frames, cache)
    points, confidence, n_faces = trk.collect(tracker.track(frames), getattr(tracker, "n_points", None), advance)
    result = trk.fill_gaps(
        points,
        confidence,
        n_faces,
        max_gap=config.max_gap,
        max_failed_share=config.max_failed,
        min_confidence=config.min_confidence,
        source=source.info.path.name,
    )
    _save_npz(file, points=result.points, confidence=result.confidence, n_faces=result.n_faces, flags=result.flags)
    work.mark("track", {"n_frames": result.n_frames})
    return result


def _keep(frames: Iterable[np.ndarray], cache: list) -> Iterator[np.ndarray]:
    for frame in frames:
        cache.append(frame)
        yield frame


def _layout(tracker) -> tuple[Callable[[np.ndarray], np.ndarray], Optional[np.ndarray]]:
    """The tracker's map to the 68 keypoints, batched, and its stable point indices.

    A tracker that names no `stable_points` gets its pose fitted on the 68 keypoints'
    stable subset instead (L68.STABLE_68).
    """

    def to68(points: np.ndarray) -> np.ndarray:
        flat = points.reshape((-1,) + points.shape[-2:])
        out = np.stack([np.asarray(tracker.to68(p), np.float32) for p in flat])
        return out.reshape(points.shape[:-2] + out.shape[-2:])

    stable = getattr(tracker, "stable_points", None)
    return to68, (None if stable is None else np.asarray(stable))


def _render_stage(
    work: WorkFolder,
    source: SourceInfo,
    config: ProcessConfig,
    box: CropBox,
    mesh_crop: np.ndarray,
    to68: Callable[[np.ndarray], np.ndarray],
    bars: ProgressBars,
    cache: Optional[list] = None,
) -> dict:
    """Frames, masks and background plate; returns the per-frame head coverage etc."""
    import cv2

    done = work.done("render")
    if done and (work.path / RENDER_FILE).exists():
        with np.load(work.path / RENDER_FILE, allow_pickle=False) as data:
            return {"head_coverage": data["head_coverage"], "background_seen": float(done["background_seen"])}
    n = len(mesh_crop)
    frames_dir = work.path / fmt.FRAMES_DIR
    masks_dir = work.path / fmt.MASKS_DIR
    for d in (frames_dir, masks_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    lm68 = to68(mesh_crop)
    coverage = np.zeros(n, np.float32)
    plate = BackgroundPlate(n, max_samples=config.background_samples)
    advance = bars.task("frames, masks", n)
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, int(config.jpeg_quality)]
    png = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]  # fastest for label maps

    def write(index: int, crop: np.ndarray, labels: np.ndarray) -> None:
        name = fmt.frame_name(index)
        if not cv2.imwrite(str(frames_dir / name), crop[..., ::-1], jpeg):
            raise GenefaceError(f"cannot write {frames_dir / name}")
        if not cv2.imwrite(str(masks_dir / fmt.frame_name(index, fmt.MASK_EXT)), labels, png):
            raise GenefaceError(f"cannot write mask {index}")

    pending = []
    count = 0
    with Segmenter() as segmenter, ThreadPoolExecutor(max_workers=1) as writer:
        frames = cache if cache and len(cache) == n else prefetch(iter_video_frames(source.info.path, VIDEO_FPS))
        for index, frame in enumerate(frames):
            if index >= n:
                break
            crop = box.apply(frame)
            person = segmenter.person(crop) > 0.5
            labels, coverage[index] = split_person(person, lm68[index], mesh_crop[index, :, :2])
            if plate.wants(index):
                plate.add(crop, person)
            pending.append(writer.submit(write, index, crop, labels))
            if len(pending) > 16:  # bound memory; also surfaces write errors early
                pending.pop(0).result()
            count += 1
            advance(1)
        for future in pending:
            future.result()
    if count != n:
        raise MediaError(f"{source.info.path}: decoded {count} frames on the second pass, {n} on the first")
    background, seen = plate.result()
    cv2.imwrite(str(work.path / fmt.BACKGROUND), background[..., ::-1])
    cv2.imwrite(str(work.path / fmt.BACKGROUND_SEEN), seen.astype(np.uint8) * 255)
    _save_npz(work.path / RENDER_FILE, head_coverage=coverage)
    info = {"background_seen": round(float(seen.mean()), 4)}
    work.mark("render", info)
    return {"head_coverage": coverage, "background_seen": info["background_seen"]}


def _audio_stage(work: WorkFolder, source: SourceInfo, config: ProcessConfig, n_frames: int) -> tuple[Optional[dict], float]:
    """Runs on a thread beside tracking (it needs only the frame count): (info, seconds)."""
    started = time.perf_counter()
    if config.no_audio:
        return None, 0.0
    done = work.done("audio")
    if done:
        return done, 0.0
    audio = read_audio(source.info.path)
    target = int(round(n_frames / VIDEO_FPS * SAMPLE_RATE))
    padded = max(0, target - len(audio.samples)) / SAMPLE_RATE
    samples = audio.samples[:target]
    if len(samples) < target:  # an audio track that ends early: silence to the last frame
        samples = np.concatenate([samples, np.zeros(target - len(samples), np.float32)])
    audio = Audio(samples, SAMPLE_RATE)
    write_wav(work.path / fmt.AUDIO, audio)
    features = {}
    for name, encoder in _get_encoders(config.audio_encoders):
        encoded = encoder.encode(audio)
        if abs(encoded.frame_rate - FEATURE_RATE) > 1e-6:
            raise GenefaceError(
                f"audio encoder '{name}' gives features at {encoded.frame_rate:g} Hz; datasets store "
                f"{FEATURE_RATE:g} Hz (two per video frame), as the AudioEncoder contract asks"
            )
        values = _fit_rows(np.asarray(encoded.values, np.float32), 2 * n_frames)
        rel = f"{fmt.FEATURES_DIR}/{name}.npy"
        _save_npy(work.path / rel, values)
        features[name] = {
            "file": rel,
            "width": int(values.shape[1]),
            "rate": float(encoded.frame_rate),
            "channels": list(encoded.channels),
            "config": unstructure(encoder.config) if attrs.has(type(encoder.config)) else {},
        }
    info = {
        "file": fmt.AUDIO,
        "sample_rate": SAMPLE_RATE,
        "duration": round(len(samples) / SAMPLE_RATE, 4),
        "padded_seconds": round(padded, 3),
        "features": features,
    }
    work.mark("audio", info)
    return info, time.perf_counter() - started


# -- the whole thing -----------------------------------------------------------------------


@attrs.frozen
class ProcessResult:
    path: Path
    manifest: dict
    skipped: bool  # True when an identical finished dataset was already there


def _fingerprint(source: SourceInfo, config: ProcessConfig) -> dict:
    return {"sha256": source.sha256, "config": unstructure(config)}


def _existing(out: Path, fingerprint: dict) -> Optional[dict]:
    """The manifest of a finished dataset at `out` made from the same source and settings."""
    try:
        manifest = fmt.read_manifest(out)
    except fmt.DatasetError:
        return None
    same = manifest["source"]["sha256"] == fingerprint["sha256"] and manifest["settings"] == fingerprint["config"]
    return manifest if same else None


def process_video(
    video: Path,
    out: Path,
    config: Optional[ProcessConfig] = None,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> ProcessResult:
    """Process `video` into the dataset folder `out` (see the module docstring)."""
    config = config or ProcessConfig()
    video, out = Path(video), Path(out)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(stage: str, since: float) -> float:
        now = time.perf_counter()
        timings[stage] = round(timings.get(stage, 0.0) + now - since, 3)
        return now

    t = time.perf_counter()
    source = inspect_source(video)
    if not source.info.has_audio and not config.no_audio:
        raise MediaError(
            f"{video}: has no audio track, and a training dataset needs the speech; pass --no-audio "
            "to process the pictures alone (no audio features: fine for a renderer, not for lip sync)"
        )
    fingerprint = _fingerprint(source, config)
    if out.exists():
        existing = _existing(out, fingerprint)
        if resume and existing is not None:
            return ProcessResult(out, existing, skipped=True)
        if not fmt.is_dataset(out) and (not out.is_dir() or any(out.iterdir())):
            # --overwrite deletes datasets only, never an unrelated file or folder.
            raise UsageError(f"{out}: exists and is not a dataset; choose another output folder")
        if not overwrite:
            hint = "--overwrite to replace it" + ("" if existing is None else ", or --resume to keep it")
            raise UsageError(f"{out}: a dataset already exists (made from another source or settings); use {hint}")
    # Fail on a wrong plugin name before any long work.
    tracker, tracker_entry = _get_tracker(config.tracker)
    to68, stable = _layout(tracker)
    if not config.no_audio:
        _get_encoders(config.audio_encoders)
    t = lap("source", t)

    work = WorkFolder(out, fingerprint, resume, log)
    n_expected = source.info.n_frames(VIDEO_FPS)
    # Audio needs only the frame count, so it runs beside tracking (its first call pays for
    # the encoder's imports, a second or two that would otherwise add to the wall time).
    audio_pool = ThreadPoolExecutor(max_workers=1)
    audio_job = audio_pool.submit(_audio_stage, work, source, config, n_expected)
    fits = n_expected * source.info.width * source.info.height * 3 <= FRAME_CACHE_BYTES
    cache: Optional[list] = [] if fits else None
    try:
        with ProgressBars(quiet) as bars:
            track = _track_stage(work, source, config, tracker, bars, cache)
            t = lap("tracking", t)
            name = video.name
            face_px = trk.check_face_size(track, config.min_face_px, source=name)
            n = track.n_frames
            if n != n_expected:
                raise MediaError(f"{video}: decoded {n} frames, expected {n_expected} from its duration")
            multi = int((track.flags & trk.MULTI_FACE).astype(bool).sum())
            warnings = []
            if multi:
                warnings.append(f"{multi} frames show more than one face; the tracked face was kept")
            failed = trk.runs((track.flags & trk.FAILED) > 0)
            if failed:
                warnings.append(f"no face at {trk.format_ranges(failed)}; those frames are flagged and left out of splits")
            for msg in warnings:
                log(f"warning: {name}: {msg}")

            box = choose_crop(
                track.points,
                (source.info.height, source.info.width),
                size=config.size,
                scale=config.crop_scale,
                usable=track.usable,
            )
            mesh_crop = box.points_to_crop(track.points)
            render = _render_stage(work, source, config, box, mesh_crop, to68, bars, cache)
            cache = None  # free the frames before the pose and audio work
            t = lap("render", t)

        usable = track.usable
        lm68_crop = to68(mesh_crop)
        pose_args = dict(fov_degrees=config.fov_degrees, fit_frames=usable, smoothing=config.pose_smoothing)
        if stable is not None:
            pose = fit_pose(mesh_crop, (config.size, config.size), stable=stable, to68=to68, **pose_args)
        else:
            pose = fit_pose(lm68_crop, (config.size, config.size), stable=L68.STABLE_68, to68=lambda p: p, **pose_args)
        n_val = int(math.floor(n * config.val_fraction + 0.5)) if config.val_fraction > 0 else 0
        n_val = min(n_val, n - 1)
        n_train = n - n_val
        train_usable = usable.copy()
        train_usable[n_train:] = False
        if not train_usable.any():
            train_usable = usable
        canon = pose.canonical68
        mean = canon[train_usable].mean(axis=0)
        std = canon[train_usable].std(axis=0)
        _save_npy(work.path / fmt.MESH, mesh_crop)
        _save_npy(work.path / fmt.IMAGE68, lm68_crop)
        _save_npy(work.path / fmt.CANONICAL68, canon)
        _save_npz(work.path / fmt.STATS, mean=mean.astype(np.float32), std=std.astype(np.float32))
        _save_npy(work.path / fmt.C2W, pose.c2w)
        _save_npz(
            work.path / fmt.POSE,
            scale=pose.scale,
            rotation=pose.rotation,
            translation=pose.translation,
            canonical_mesh=pose.canonical_mesh,
        )
        coverage = render["head_coverage"]
        _save_npz(
            work.path / fmt.TRACKING,
            confidence=track.confidence,
            n_faces=track.n_faces,
            flags=track.flags,
            reprojection_error=pose.reprojection_error,
            rigid_residual=pose.rigid_residual,
            head_coverage=coverage,
        )
        t = lap("pose", t)

        audio, timings["audio"] = audio_job.result()
        timings["audio"] = round(timings["audio"], 3)
        t = lap("audio_wait", t)

        distance = pose.focal / pose.scale  # camera-to-head distance per frame, canonical units
        radius = float(np.linalg.norm(pose.canonical_mesh, axis=1).max())
        failed_ranges = [[trk.format_time(a), trk.format_time(b)] for a, b in failed]
        timings["total"] = round(time.perf_counter() - started, 3)
        manifest = {
            "format": fmt.FORMAT_NAME,
            "version": fmt.FORMAT_VERSION,
            "complete": True,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "source": source.to_json(),
            "n_frames": n,
            "fps": VIDEO_FPS,
            "frames": {"dir": fmt.FRAMES_DIR, "ext": fmt.FRAME_EXT, "jpeg_quality": config.jpeg_quality},
            "masks": {"dir": fmt.MASKS_DIR, "ext": fmt.MASK_EXT, "labels": {"background": 0, "head": 1, "torso": 2}},
            "crop": box.to_json(),
            "camera": {
                "model": "pinhole",
                "axes": "opencv",
                "focal": round(pose.focal, 4),
                "cx": pose.cx,
                "cy": pose.cy,
                "fov_degrees": round(config.fov_degrees, 4),
                "distance": _stats(distance),
                "head_radius": round(radius, 5),
                "near": round(float(distance.min()) - 1.5 * radius, 5),
                "far": round(float(distance.max()) + 1.5 * radius, 5),
            },
            "splits": {"train": [0, n_train], "val": [n_train, n]},
            "audio": audio,
            "tracker": {
                "name": tracker.name,
                "points": int(track.points.shape[1]),
                "origin": str(tracker_entry.origin),
                "config": unstructure(tracker.config) if attrs.has(type(tracker.config)) else {},
            },
            "versions": _versions(),
            "settings": unstructure(config),
            "quality": {
                "reprojection_error_px": _stats(pose.reprojection_error[usable]),
                "rigid_residual_px": _stats(pose.rigid_residual[usable]),
                "head_hull_coverage": _stats(coverage[usable]),
                "tracking_failures": int(((track.flags & trk.FAILED) > 0).sum()),
                "failed_ranges": failed_ranges,
                "interpolated_frames": int(((track.flags & trk.INTERPOLATED) > 0).sum()),
                "multi_face_frames": multi,
                "low_confidence_frames": int(((track.flags & trk.LOW_CONFIDENCE) > 0).sum()),
                "confidence": _stats(track.confidence[usable]),
                "face_width_px": round(face_px, 1),
                "background_seen": render["background_seen"],
            },
            "warnings": warnings,
            "timings": {**timings, "fps": round(n / max(timings["total"], 1e-9), 2)},
        }
        with atomic_output(work.path / fmt.MANIFEST) as tmp:
            tmp.write_text(json.dumps(manifest, indent=2))
        work.finish(overwrite)
    except GenefaceError:
        audio_pool.shutdown(wait=True)  # never delete the folder under the audio thread
        work.discard()  # a definite verdict on this input: nothing worth resuming
        raise
    finally:
        audio_pool.shutdown(wait=False)
    return ProcessResult(out, manifest, skipped=False)
