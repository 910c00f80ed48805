"""`geneface process`: one talking-head video -> one dataset folder (geneface.core.dataset).

Stages, each timed and recorded in the manifest:

1. source   probe, hash, refuse unusable files (truncated, no video, no audio unless allowed);
2. track    decode at 25 fps and track the face (FaceTracker plugin); fill short gaps, flag
            long ones, refuse too many failures or a face that is too small;
3. crop     one static square box from the whole track;
4. render   decode again, crop, segment the person, split head / torso, write frames and
            masks, sample frames for the background plate (`frames`);
5. pose     canonical face, similarity per frame, perspective camera, canonical keypoints;
6. audio    16 kHz mono wav as long as the frames; features per AudioEncoder, 2 per frame
            (`audio`, on a thread beside tracking);
   offset   the audio-to-video offset estimated from the mouth and the loudness, and the
            --av-offset rule applied (`offset_stage`; the audio moved, or the clip flagged);
7. finish   arrays, statistics, manifest (last), rename the work folder into place.

The crop needs the whole track, so frames are needed twice: a clip whose decoded frames fit
in FRAME_CACHE_BYTES keeps them from the tracking pass; a longer one is decoded again (~2 ms a
frame), which keeps memory flat however long the video.

Work happens in a hidden sibling folder `.NAME.partial` (`work`); finished stages are
recorded in its `state.json`, so `resume=True` continues after a crash or Ctrl-C from the
last finished stage. The folder becomes NAME only when everything is written, manifest last.
One run at a time per output: a second run into the same folder fails at once
(OutputBusyError) instead of sharing the work folder.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import attrs
import numpy as np

from geneface.core import dataset as fmt
from geneface.core import landmarks68 as L68
from geneface.core.arrays import save_npy, save_npz, true_runs
from geneface.core.camera_io import POSE_FILE, save_camera
from geneface.core.config import unstructure
from geneface.core.lock import output_lock
from geneface.core.media import iter_video_frames
from geneface.core.prefetch import prefetch
from geneface.core.progress import ProgressBars
from geneface.core.records import VIDEO_FPS, Camera
from geneface.errors import GenefaceError, MediaError, UsageError
from geneface.processing import tracking as trk
from geneface.processing.audio import audio_stage
from geneface.processing.config import ProcessConfig
from geneface.processing.crop import choose_crop
from geneface.processing.frames import render_stage
from geneface.processing.offset_stage import offset_stage
from geneface.processing.pose import PoseFit, fit_pose
from geneface.processing.source import SourceInfo, inspect_source
from geneface.processing.work import TRACK_FILE, WorkFolder

# Videos whose decoded frames fit in this many bytes are decoded once: tracking keeps the
# frames for the second pass. Longer ones are decoded twice, so memory stays flat.
FRAME_CACHE_BYTES = 768 << 20


@attrs.frozen
class ProcessResult:
    path: Path
    manifest: dict
    skipped: bool  # True when an identical finished dataset was already there


# -- plugins -------------------------------------------------------------------------------


def _get_tracker(name: str, registry):
    entry = registry.get("face_tracker", name, where="--tracker")
    return entry.cls(), entry


def _get_encoders(names: Iterable[str], registry) -> list:
    return [registry.get("audio_encoder", name, where="--audio-encoder").cls() for name in names]


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


# -- tracking ------------------------------------------------------------------------------


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
    save_npz(file, points=result.points, confidence=result.confidence, n_faces=result.n_faces, flags=result.flags)
    work.mark("track", {"n_frames": result.n_frames})
    return result


def _keep(frames: Iterable[np.ndarray], cache: list) -> Iterator[np.ndarray]:
    for frame in frames:
        cache.append(frame)
        yield frame


# -- the manifest's computed sections ------------------------------------------------------


def _stats(values: np.ndarray) -> dict:
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return {"mean": None, "max": None, "min": None}
    return {"mean": round(float(values.mean()), 4), "max": round(float(values.max()), 4), "min": round(float(values.min()), 4)}


def _camera_section(pose: PoseFit, fov_degrees: float) -> dict:
    distance = pose.focal / pose.scale  # camera-to-head distance per frame, canonical units
    radius = float(np.linalg.norm(pose.canonical_mesh, axis=1).max())
    return {
        "model": "pinhole",
        "axes": "opencv",
        "focal": round(pose.focal, 4),
        "cx": pose.cx,
        "cy": pose.cy,
        "fov_degrees": round(fov_degrees, 4),
        "distance": _stats(distance),
        "head_radius": round(radius, 5),
        "near": round(float(distance.min()) - 1.5 * radius, 5),
        "far": round(float(distance.max()) + 1.5 * radius, 5),
    }


def _quality_section(track: trk.TrackResult, pose: PoseFit, render: dict, face_px: float) -> dict:
    usable, flags = track.usable, track.flags
    failed = true_runs((flags & trk.FAILED) > 0)
    return {
        "reprojection_error_px": _stats(pose.reprojection_error[usable]),
        "rigid_residual_px": _stats(pose.rigid_residual[usable]),
        "head_hull_coverage": _stats(render["head_coverage"][usable]),
        "tracking_failures": int(((flags & trk.FAILED) > 0).sum()),
        "failed_ranges": [[trk.format_time(a), trk.format_time(b)] for a, b in failed],
        "interpolated_frames": int(((flags & trk.INTERPOLATED) > 0).sum()),
        "multi_face_frames": int(((flags & trk.MULTI_FACE) > 0).sum()),
        "low_confidence_frames": int(((flags & trk.LOW_CONFIDENCE) > 0).sum()),
        "confidence": _stats(track.confidence[usable]),
        "face_width_px": round(face_px, 1),
        "background_seen": render["background_seen"],
    }


def _warnings(track: trk.TrackResult) -> list[str]:
    warnings = []
    multi = int(((track.flags & trk.MULTI_FACE) > 0).sum())
    if multi:
        warnings.append(f"{multi} frames show more than one face; the tracked face was kept")
    failed = true_runs((track.flags & trk.FAILED) > 0)
    if failed:
        warnings.append(f"no face at {trk.format_ranges(failed)}; those frames are flagged and left out of splits")
    return warnings


def _offset_warnings(section: dict) -> list[str]:
    if section["skip_training"]:
        return [f"audio-to-video offset unknown ({section['reason']}); flagged so that training skips this clip"]
    if section["applied_frames"]:
        return [f"audio was {section['applied_frames']:+d} frames off the picture; moved into sync"]
    return []


# -- the whole thing -----------------------------------------------------------------------


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


def _check_output(out: Path, fingerprint: dict, resume: bool, overwrite: bool) -> Optional[dict]:
    """The manifest of an identical finished dataset to keep (with `resume`), None to go on;
    UsageError when `out` may not be written."""
    if not out.exists():
        return None
    existing = _existing(out, fingerprint)
    if resume and existing is not None:
        return existing
    if not fmt.is_dataset(out) and (not out.is_dir() or any(out.iterdir())):
        # --overwrite deletes datasets only, never an unrelated file or folder.
        raise UsageError(f"{out}: exists and is not a dataset; choose another output folder")
    if not overwrite:
        hint = "--overwrite to replace it" + ("" if existing is None else ", or --resume to keep it")
        raise UsageError(f"{out}: a dataset already exists (made from another source or settings); use {hint}")
    return None


class _Timings(dict):
    """Seconds per stage, as the manifest records them."""

    def __init__(self) -> None:
        super().__init__()
        self.started = self._since = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self[stage] = round(self.get(stage, 0.0) + now - self._since, 3)
        self._since = now


def process_video(
    video: Path,
    out: Path,
    config: Optional[ProcessConfig] = None,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
    *,
    registry,
) -> ProcessResult:
    """Process `video` into the dataset folder `out` (see the module docstring). `registry`:
    where the tracker and audio encoders the config names come from (handed down by the
    application layer, `geneface.app.process`)."""
    config = config or ProcessConfig()
    video, out = Path(video), Path(out)
    timings = _Timings()
    source = inspect_source(video)
    if not source.info.has_audio and not config.no_audio:
        raise MediaError(
            f"{video}: has no audio track, and a training dataset needs the speech; pass --no-audio "
            "to process the pictures alone (no audio features: fine for a renderer, not for lip sync)"
        )
    # Fail on a wrong plugin name before any long work.
    tracker, tracker_entry = _get_tracker(config.tracker, registry)
    encoders = [] if config.no_audio else _get_encoders(config.audio_encoders, registry)
    fingerprint = _fingerprint(source, config)
    # Two runs into one folder would share its work folder (each wiping or resuming the
    # other's files) and could publish a dataset mixing both: the second one stops here.
    with output_lock(out, "`geneface process` run"):
        existing = _check_output(out, fingerprint, resume, overwrite)
        if existing is not None:
            return ProcessResult(out, existing, skipped=True)
        timings.lap("source")
        work = WorkFolder(out, fingerprint, resume, log)
        # Audio needs only the frame count, so it runs beside tracking (its first call pays
        # for the encoder's imports, a second or two that would otherwise add to the wall time).
        audio_pool = ThreadPoolExecutor(max_workers=1)
        audio_job = audio_pool.submit(audio_stage, work, source, encoders, source.info.n_frames(VIDEO_FPS))
        try:
            manifest = _make_dataset(work, source, config, tracker, tracker_entry, encoders, audio_job, timings, quiet, log)
            work.finish(overwrite)
        except GenefaceError:
            audio_pool.shutdown(wait=True)  # never delete the folder under the audio thread
            work.discard()  # a definite verdict on this input: nothing worth resuming
            raise
        finally:
            # The audio thread writes into the work folder: it must be done before the lock
            # goes (Ctrl-C included), or it could write into the next run's folder.
            audio_pool.shutdown(wait=True, cancel_futures=True)
    return ProcessResult(out, manifest, skipped=False)


def _make_dataset(
    work: WorkFolder,
    source: SourceInfo,
    config: ProcessConfig,
    tracker,
    tracker_entry,
    encoders: list,
    audio_job: Future,
    timings: _Timings,
    quiet: bool,
    log: Callable[[str], None],
) -> dict:
    """Every stage after the source checks, into `work`; returns the manifest it wrote."""
    to68, stable = _layout(tracker)
    video = source.info.path
    n_expected = source.info.n_frames(VIDEO_FPS)
    fits = n_expected * source.info.width * source.info.height * 3 <= FRAME_CACHE_BYTES
    cache: Optional[list] = [] if fits else None
    with ProgressBars(quiet) as bars:
        track = _track_stage(work, source, config, tracker, bars, cache)
        timings.lap("tracking")
        face_px = trk.check_face_size(track, config.min_face_px, source=video.name)
        n = track.n_frames
        if n != n_expected:
            raise MediaError(f"{video}: decoded {n} frames, expected {n_expected} from its duration")
        warnings = _warnings(track)
        for msg in warnings:
            log(f"warning: {video.name}: {msg}")
        box = choose_crop(
            track.points,
            (source.info.height, source.info.width),
            size=config.size,
            scale=config.crop_scale,
            usable=track.usable,
        )
        mesh_crop = box.points_to_crop(track.points)
        render = render_stage(work, source, config, box, mesh_crop, to68, bars, cache)
        cache = None  # free the frames before the pose and audio work
        timings.lap("render")

    usable = track.usable
    lm68_crop = to68(mesh_crop)
    pose_args = dict(fov_degrees=config.fov_degrees, fit_frames=usable, smoothing=config.pose_smoothing)
    if stable is not None:
        pose = fit_pose(mesh_crop, (config.size, config.size), stable=stable, to68=to68, **pose_args)
    else:
        pose = fit_pose(lm68_crop, (config.size, config.size), stable=L68.STABLE_68, to68=lambda p: p, **pose_args)
    n_train = fmt.held_out_start(n, config.val_fraction)  # the one rule every trainer reads back
    train_usable = usable.copy()
    train_usable[n_train:] = False
    if not train_usable.any():
        train_usable = usable
    canon = pose.canonical68
    mean = canon[train_usable].mean(axis=0)
    std = canon[train_usable].std(axis=0)
    save_npy(work.path / fmt.MESH, mesh_crop)
    save_npy(work.path / fmt.IMAGE68, lm68_crop)
    save_npy(work.path / fmt.CANONICAL68, canon)
    save_npz(work.path / fmt.STATS, mean=mean.astype(np.float32), std=std.astype(np.float32))
    save_npy(work.path / fmt.C2W, pose.c2w)
    save_npz(work.path / fmt.POSE, **{k: getattr(pose, k) for k in ("scale", "rotation", "translation", "canonical_mesh")})
    camera = _camera_section(pose, config.fov_degrees)
    # The same camera as a pose file, so a spec's `input.poses` can take it on its own.
    save_camera(
        work.path / POSE_FILE,
        Camera(focal=camera["focal"], width=config.size, height=config.size, c2w=pose.c2w, cx=pose.cx, cy=pose.cy),
    )
    per_frame = {k: getattr(track, k) for k in ("confidence", "n_faces", "flags")}
    per_frame.update({k: getattr(pose, k) for k in ("reprojection_error", "rigid_residual")})
    save_npz(work.path / fmt.TRACKING, **per_frame, head_coverage=render["head_coverage"])
    timings.lap("pose")

    audio, audio_seconds = audio_job.result()
    timings["audio"] = round(audio_seconds, 3)
    timings.lap("audio_wait")
    offset = None
    if audio is not None:
        offset, audio = offset_stage(work, source, config.av_offset, lm68_crop, usable, encoders, audio)
        for msg in _offset_warnings(offset):
            warnings.append(msg)
            log(f"warning: {video.name}: {msg}")
        timings.lap("av_offset")
    timings["total"] = round(time.perf_counter() - timings.started, 3)
    return fmt.write_manifest(
        work.path,
        n_frames=n,
        jpeg_quality=config.jpeg_quality,
        source=source.to_json(),
        crop=box.to_json(),
        camera=camera,
        splits={"train": [0, n_train], "val": [n_train, n]},
        audio=audio,
        av_offset=offset,
        tracker={
            "name": tracker.name,
            "points": int(track.points.shape[1]),
            "origin": str(tracker_entry.origin),
            "config": unstructure(tracker.config) if attrs.has(type(tracker.config)) else {},
        },
        settings=unstructure(config),
        quality=_quality_section(track, pose, render, face_px),
        warnings=warnings,
        timings={**timings, "fps": round(n / max(timings["total"], 1e-9), 2)},
    )
