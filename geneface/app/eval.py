"""`geneface eval`: the field's evaluation of one talking-head video (docs/evaluation.md).

`evaluate_video(video, audio, reference=None, syncnet=None)` reports:

- the video's own facts (frames at 25 fps, the container's rate, duration, size, audio
  track) and how many frames the given audio is longer or shorter;
- the run's speed from `geneface run`'s sidecar `<video stem>.run.json`, when it exists;
- lip sync (with a `syncnet` checkpoint): every frame re-tracked with our face tracker, the
  tracked points turned into canonical 68 x 3 landmarks the way `geneface process` does
  (gaps filled, `fit_pose` with its settings), the audio encoded with the encoder the
  checkpoint names, then `SyncScorer.score`: confidence at offset 0, best offset, offset
  confidence and the whole curve over offsets;
- with a `reference` video of the same frames: LMD (mouth points 48-67, each set centred,
  pixels at the video's size) against the re-tracked reference, and PSNR / SSIM on the full
  frame and the face box (the reference frame's 68 points grown 10 %).

Frames without a face. They are listed (count and indices). For sync, a 5-frame SyncNet
window that would contain such a frame is left out: the face frames are cut into runs at the
faceless ones and each run is scored on its own (runs shorter than one window are left out,
and counted); the pose fit still sees every frame, gaps filled as `geneface process` fills
them, so the head frame stays continuous. For LMD the frame is left out of the mean; for the
face-box scores a reference frame without a face has no box and is left out of the face
means (the full-frame scores keep it).

Frame counts. A reference whose frame count differs by at most `MAX_FRAME_SLACK` frames (an
encoder's rounding of the last frame) is scored on the common first frames, with a note;
more, or a different frame size, is a one-line error naming both files.
"""

from __future__ import annotations

import json
import math
from collections import deque
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Union

import attrs
import numpy as np

from geneface.core.records import VIDEO_FPS, AudioFeatures, Motion, frames_for_duration
from geneface.errors import CheckpointError, MediaError, UsageError

FORMAT = "geneface-eval-1"
MAX_FRAME_SLACK = 2  # reference frame counts this close are scored on their common frames
DEFAULT_MAX_OFFSET = 15  # frames searched each way, as SyncNet's own offset search (vshift 15)

Progress = Callable[[Iterable, Optional[int], str], Iterable]
PathLike = Union[str, Path]


# -- the records ---------------------------------------------------------------------------


@attrs.frozen
class VideoFacts:
    """What the file is. `frames` counts frames at 25 fps (what every score reads: the video
    resampled as `geneface.core.media.iter_video_frames` does); `fps` is the container's own
    average rate."""

    path: str
    frames: int
    fps: float
    duration: float
    width: int
    height: int
    has_audio: bool
    codec: str


@attrs.frozen
class AudioFacts:
    """The audio given with `--audio`. `frames` = round(25 x seconds); `length_difference_frames`
    = video frames - audio frames (positive: the video is longer)."""

    path: str
    seconds: float
    frames: int
    length_difference_frames: int


@attrs.frozen
class RunFacts:
    """`geneface run`'s sidecar next to the video; every field None when there is none
    (`note` says why: absent, or unreadable)."""

    sidecar: Optional[str] = None
    fps: Optional[float] = None
    frames: Optional[int] = None
    seconds: Optional[float] = None
    device: Optional[str] = None
    note: Optional[str] = None


@attrs.frozen
class FaceFacts:
    """The re-tracked faces of one video: frames where the tracker found none, by index."""

    frames: int
    missing: tuple = attrs.field(converter=tuple)

    @property
    def n_missing(self) -> int:
        return len(self.missing)


@attrs.frozen
class SyncScores:
    """Lip sync of the video's re-tracked mouth against the audio, by a SyncScorer.

    `confidence`: mean sync probability at offset 0 (higher is better); `offset`: the audio
    delay in frames that fits best (0 = in sync; positive: the audio lags the picture);
    `offset_confidence`: median - min of the distance curve (SyncNet's LSE-C); `curve[i]`:
    the mean sync probability with the audio shifted by `offsets[i]` frames. `windows`:
    5-frame windows scored at offset 0; `segments`: the [start, end) runs of face frames
    scored; `frames_left_out`: frames in no scored run (no face, a run shorter than one
    window, or past the end of the audio).
    """

    checkpoint: str
    scorer: str
    encoder: str
    max_offset: int
    confidence: float
    offset: int
    offset_confidence: float
    offsets: tuple = attrs.field(converter=tuple)
    curve: tuple = attrs.field(converter=tuple)
    windows: int = 0
    frames_scored: int = 0
    segments: tuple = attrs.field(default=(), converter=tuple)
    frames_left_out: tuple = attrs.field(default=(), converter=tuple)

    def score_at(self, offset: int) -> Optional[float]:
        """The curve's value at `offset` frames (None outside the range searched)."""
        return dict(zip(self.offsets, self.curve)).get(int(offset))


@attrs.frozen
class ReferenceScores:
    """The video against a reference of the same frames (both the same size).

    PSNR (dB, capped at 100) and SSIM: means over `frames` frames; the face-box ones over the
    `face_frames` whose reference frame has a face. `lmd`: mean over `lmd_frames` frames with
    a face in both, pixels at the video's size (None, with `note`, when no frame has one).
    """

    path: str
    frames: int
    frames_video: int
    frames_reference: int
    psnr: float
    ssim: float
    psnr_face: Optional[float]
    ssim_face: Optional[float]
    face_frames: int
    lmd: Optional[float]
    lmd_frames: int
    resolution: int
    reference_missing: tuple = attrs.field(converter=tuple)
    note: Optional[str] = None


@attrs.frozen
class VideoEvaluation:
    """Everything `geneface eval` reports about one video; `as_dict()` is its JSON."""

    video: VideoFacts
    audio: AudioFacts
    run: RunFacts
    faces: Optional[FaceFacts] = None  # None: not tracked (neither sync nor a reference asked)
    sync: Optional[SyncScores] = None
    reference: Optional[ReferenceScores] = None
    notes: tuple = attrs.field(default=(), converter=tuple)

    def as_dict(self) -> dict:
        """Plain JSON-ready data: tuples as lists, NaN or infinite numbers as None."""
        data = _plain(self)
        if self.faces is not None:
            data["faces"]["n_missing"] = self.faces.n_missing
        return {"format": FORMAT, **data}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, allow_nan=False)


def _plain(value):
    """Records as dicts, tuples as lists, numpy scalars as Python ones, NaN as None."""
    if attrs.has(type(value)):
        return {f.name: _plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


# -- facts ---------------------------------------------------------------------------------


def _require_file(path: Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise UsageError(f"{path}: no such file ({what})")
    if not path.is_file():
        raise UsageError(f"{path}: is not a file ({what})")
    return path


def video_facts(path: PathLike) -> VideoFacts:
    """Probe a video (no decoding); a file without frames is a one-line error."""
    from geneface.core.media import probe_video

    path = _require_file(Path(path), "the video")
    info = probe_video(path)
    frames = info.n_frames(VIDEO_FPS)
    if frames == 0:
        raise MediaError(f"{path}: video has no frames (duration {info.duration:.3f} s)")
    return VideoFacts(str(path), frames, float(info.source_fps), float(info.duration), int(info.width),
                      int(info.height), bool(info.has_audio), str(info.codec))


def run_facts(video: PathLike) -> RunFacts:
    """`geneface run`'s sidecar `<video stem>.run.json` next to `video`, if any.

    The sidecar only adds facts, so an unreadable one is reported in `note`, never an error.
    """
    from geneface.app.run import run_record_path

    path = run_record_path(Path(video))
    if not path.is_file():
        return RunFacts(note=f"no {path.name} next to the video: speed unknown")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        return RunFacts(sidecar=str(path), note=f"{path.name} is unreadable ({' '.join(str(exc).split())}): speed unknown")

    def number(key, kind):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            return None
        return kind(value)

    device = data.get("device")
    fps = number("fps", float)
    return RunFacts(sidecar=str(path), fps=fps if fps else None, frames=number("frames", int),
                    seconds=number("seconds", float), device=device if isinstance(device, str) else None,
                    note=None if fps else f"{path.name} holds no frames-per-second: speed unknown")


# -- tracking ------------------------------------------------------------------------------


@attrs.frozen(eq=False)
class TrackedVideo:
    """Every frame of a video re-tracked: the tracker's own points with gaps filled as
    `geneface process` fills them (`track`: a processing.tracking.TrackResult), which frames
    really had a face (`found`), and the 68 image points (NaN rows where none)."""

    path: str
    track: object  # geneface.processing.tracking.TrackResult
    found: np.ndarray  # (T,) bool
    points68: object  # geneface.metrics.landmarks.Tracked68

    @property
    def n_frames(self) -> int:
        return int(len(self.found))

    @property
    def faces(self) -> FaceFacts:
        return FaceFacts(self.n_frames, np.flatnonzero(~self.found).tolist())


def _tracker_layout(tracker):
    # The same map to 68 points and stable points `geneface process` uses for this tracker.
    from geneface.processing.process import _layout

    return _layout(tracker)


def _frames(path: Path, n: Optional[int] = None) -> Iterator[np.ndarray]:
    from geneface.core.media import iter_video_frames

    frames = iter_video_frames(path, VIDEO_FPS)
    return frames if n is None else islice(frames, n)


def _progress(frames: Iterable, total: Optional[int], description: str, progress: Optional[Progress]) -> Iterable:
    return frames if progress is None else progress(frames, total, description)


def _fill(path: Path, points: list, confidence, n_faces):
    """Gaps filled as `geneface process` fills them, without its refusal of videos with many
    faceless frames (an evaluation reports those instead); no face at all is still an error."""
    from geneface.processing import tracking as trk
    from geneface.processing.config import ProcessConfig

    # max_failed_share 1: never refuse for the share of failures; fill_gaps' own "no face in
    # any frame" check (TrackingError, exit 2) still applies.
    return trk.fill_gaps(points, confidence, n_faces, max_gap=ProcessConfig().max_gap,
                         max_failed_share=1.0, source=str(path))


def track_video(path: PathLike, tracker=None, n_frames: Optional[int] = None,
                progress: Optional[Progress] = None) -> TrackedVideo:
    """Track every frame of `path` (the first `n_frames` if given) with `tracker` (default:
    the tracker of `geneface process`)."""
    from geneface.app.components import face_tracker
    from geneface.metrics.landmarks import Tracked68
    from geneface.processing import tracking as trk

    path = Path(path)
    tracker = face_tracker(tracker)
    to68, _ = _tracker_layout(tracker)
    size: list = []

    def remember_size(frames):
        for frame in frames:
            if not size:
                size.append(frame.shape[:2])
            yield frame

    total = n_frames
    if progress is not None and total is None:
        from geneface.core.media import probe_video

        total = probe_video(path).n_frames(VIDEO_FPS)
    frames = _progress(remember_size(_frames(path, n_frames)), total, f"tracking {path.name}", progress)
    points, confidence, n_faces = trk.collect(tracker.track(iter(frames)), getattr(tracker, "n_points", None))
    if not points:
        raise MediaError(f"{path}: video has no frames")
    result = _fill(path, points, confidence, n_faces)
    found = np.array([p is not None for p in points])
    lm68 = np.full((len(points), 68, 3), np.nan, np.float32)
    lm68[found] = to68(result.points[found])
    height, width = size[0]
    return TrackedVideo(str(path), result, found, Tracked68(points=lm68, width=int(width), height=int(height)))


def canonical_landmarks(tracked: TrackedVideo, tracker=None) -> np.ndarray:
    """(T, 68, 3) canonical landmarks (head pose removed) of every frame, as `geneface
    process` computes them: `fit_pose` with its settings, the canonical face built from the
    frames with a face only. Rows of faceless frames come from filled points: leave them out.

    `process` fits in its crop's pixels, here the frame's: the crop is a scale and a shift
    (z scaled too) and the canonical face is rescaled to a fixed eye distance, so the
    canonical landmarks are the same; only the camera (not used here) would differ.
    """
    from geneface.core import landmarks68 as L68
    from geneface.app.components import face_tracker
    from geneface.processing.config import ProcessConfig
    from geneface.processing.pose import fit_pose

    tracker = face_tracker(tracker)
    to68, stable = _tracker_layout(tracker)
    config = ProcessConfig()
    points = tracked.track.points
    size = (tracked.points68.height, tracked.points68.width)
    args = dict(fov_degrees=config.fov_degrees, fit_frames=tracked.found, smoothing=config.pose_smoothing)
    if stable is not None:
        pose = fit_pose(points, size, stable=stable, to68=to68, **args)
    else:
        pose = fit_pose(to68(points), size, stable=L68.STABLE_68, to68=lambda p: p, **args)
    return pose.canonical68


# -- lip sync ------------------------------------------------------------------------------


def load_syncnet(path: PathLike, where: str = "--syncnet"):
    """A trained SyncScorer from its checkpoint; a checkpoint of another kind is a one-line error."""
    from geneface.registry import get_registry

    return get_registry().load(_require_file(Path(path), "a SyncNet checkpoint"), "syncnet", where)


def syncnet_encoder(scorer, path: PathLike = "the SyncNet checkpoint"):
    """The audio encoder the SyncNet was trained on (its checkpoint names it)."""
    from geneface.registry import get_registry

    name = getattr(scorer, "encoder", "")
    if not name:
        raise CheckpointError(f"{path}: the SyncNet checkpoint does not name the audio encoder it was trained on; "
                              "retrain it with this version")
    return get_registry().get("audio_encoder", name, where=f"{path}: its audio encoder").cls()


def face_runs(found: np.ndarray, n: int, min_length: int) -> tuple[list, list]:
    """([start, end) runs of face frames among the first `n`, at least `min_length` long;
    the frames in no such run)."""
    from geneface.processing.tracking import runs

    mask = np.zeros(len(found), bool)
    mask[:n] = found[:n]
    kept = [(int(a), int(b)) for a, b in runs(mask) if b - a >= min_length]
    covered = np.zeros(len(found), bool)
    for a, b in kept:
        covered[a:b] = True
    return kept, np.flatnonzero(~covered).tolist()


def score_sync(canonical: np.ndarray, found: np.ndarray, features: AudioFeatures, scorer,
               max_offset: int = DEFAULT_MAX_OFFSET, checkpoint: str = "") -> SyncScores:
    """Score canonical landmarks (T x 68 x 3; rows where `found` is False are ignored)
    against their audio features with a SyncScorer.

    One normalisation for the whole video: its face frames' own per-coordinate mean and
    spread, which is what a dataset's statistics are for one person (the syncnet plugin does
    the same for a bare sequence). Every run of face frames is scored on its own; with one
    run (every frame has a face) the result is the scorer's own. With several, the offset-0
    confidence is the window-weighted mean of the runs'; the curve is the window-weighted
    mean over the runs long enough for the widest offset range any run reaches (shorter runs
    count at offset 0 only); the best offset is that curve's maximum and the offset
    confidence the window-weighted mean of those runs' own.
    """
    from geneface.models.syncnet import V_FRAMES

    canonical = np.asarray(canonical, np.float32)
    found = np.asarray(found, bool)
    n = min(len(canonical), features.n_frames // 2)  # audio shorter than the video: its end is left out
    segments, left_out = face_runs(found, n, V_FRAMES)
    if not segments:
        raise UsageError(f"lip sync needs at least {V_FRAMES} consecutive frames with a face and audio; "
                         f"none among {len(canonical)} frames ({int(found.sum())} with a face, audio for {n})")
    faces = canonical[found]
    mean, std = faces.mean(axis=0), faces.std(axis=0)
    results = []
    for a, b in segments:
        motion = Motion(canonical[a:b], VIDEO_FPS, mean=mean, std=std)
        part = AudioFeatures(features.values[2 * a: 2 * b], features.frame_rate, features.encoder, features.channels)
        results.append(scorer.score(motion, part, max_offset=max_offset))
    windows = [int(r.n_windows) for r in results]
    common = dict(checkpoint=checkpoint, scorer=getattr(scorer, "name", type(scorer).__name__),
                  encoder=features.encoder, max_offset=int(max_offset), windows=sum(windows),
                  frames_scored=sum(b - a for a, b in segments), segments=segments,
                  frames_left_out=left_out)
    if len(results) == 1:
        r = results[0]
        return SyncScores(confidence=float(r.confidence), offset=int(r.offset),
                          offset_confidence=float(r.offset_confidence), offsets=[int(k) for k in r.offsets],
                          curve=[float(v) for v in r.curve], **common)
    confidence = float(np.average([r.confidence for r in results], weights=windows))
    widest = max(len(r.offsets) for r in results)
    full = [(r, w) for r, w in zip(results, windows) if len(r.offsets) == widest]
    # The curve averages the windows each offset shares (all but k_max at either end).
    weights = [max(w - (widest - 1), 1) for _, w in full]
    curve = np.average([np.asarray(r.curve, np.float64) for r, _ in full], axis=0, weights=weights)
    offsets = [int(k) for k in full[0][0].offsets]
    return SyncScores(confidence=confidence, offset=offsets[int(np.argmax(curve))],
                      offset_confidence=float(np.average([r.offset_confidence for r, _ in full], weights=weights)),
                      offsets=offsets, curve=curve.tolist(), **common)


# -- against a reference -------------------------------------------------------------------


def check_reference(video: VideoFacts, reference: VideoFacts) -> tuple[int, Optional[str]]:
    """(frames to compare, a note or None); a one-line error naming both files when they
    cannot be compared frame for frame."""
    if (video.width, video.height) != (reference.width, reference.height):
        raise UsageError(f"{video.path} is {video.width} x {video.height} px but the reference {reference.path} is "
                         f"{reference.width} x {reference.height} px; PSNR, SSIM and LMD need frames of one size")
    gap = abs(video.frames - reference.frames)
    if gap > MAX_FRAME_SLACK:
        raise UsageError(f"{video.path} has {video.frames} frames but the reference {reference.path} has "
                         f"{reference.frames} (at 25 fps); they must show the same frames")
    n = min(video.frames, reference.frames)
    note = None
    if gap:
        longer = "video" if video.frames > reference.frames else "reference"
        note = (f"the {longer} is {gap} frame{'s' if gap > 1 else ''} longer ({video.frames} vs {reference.frames}); "
                f"scored the first {n} frames of both")
    return n, note


def _face_box(points68: np.ndarray, size: tuple[int, int]):
    """The reference frame's face box, or None (no face, or too small for SSIM's window)."""
    from geneface.metrics.image import SSIM_MIN_SIDE, face_box

    if not np.isfinite(points68[:, :2]).all():
        return None
    try:
        box = face_box(points68, size)
    except UsageError:  # the face lies outside the picture
        return None
    return box if min(box[2] - box[0], box[3] - box[1]) >= SSIM_MIN_SIDE else None


def score_reference(video: VideoFacts, reference: VideoFacts, video_track: TrackedVideo, tracker=None,
                    progress: Optional[Progress] = None) -> ReferenceScores:
    """PSNR / SSIM (full frame and face box) and LMD of `video` against `reference`.

    One pass over both files together: each reference frame is tracked (its 68 points give
    the face box and its half of LMD) and scored against the video's frame at once, so no
    frames are kept in memory.
    """
    from geneface.metrics.image import RunningScores, score_pair
    from geneface.app.components import face_tracker
    from geneface.metrics.landmarks import Tracked68, lmd_of_frames

    tracker = face_tracker(tracker)
    to68, _ = _tracker_layout(tracker)
    n, note = check_reference(video, reference)
    size = (reference.height, reference.width)
    pending: deque = deque()

    def reference_frames():
        # The tracker reads reference frames; the video frame waits beside it for the result.
        for rendered, real in zip(_frames(Path(video.path), n), _frames(Path(reference.path), n)):
            pending.append((rendered, real))
            yield real

    running = RunningScores()
    rows = []
    frames = _progress(reference_frames(), n, f"tracking {Path(reference.path).name} and comparing", progress)
    for index, tracked in enumerate(tracker.track(iter(frames))):
        rendered, real = pending.popleft()
        points = (np.full((68, 3), np.nan, np.float32) if tracked.points is None
                  else np.asarray(to68(tracked.points[None])[0], np.float32))
        rows.append(points)
        try:
            running.add(score_pair(rendered, real, _face_box(points, size)))
        except UsageError as exc:
            raise UsageError(f"{video.path} frame {index}: {exc}") from None
    if not rows:
        raise MediaError(f"{reference.path}: video has no frames")
    real68 = Tracked68(points=np.stack(rows), width=reference.width, height=reference.height)
    if not real68.found.any():
        raise UsageError(f"{reference.path}: no face found in any of its {len(rows)} frames (the reference)")
    mine = video_track.points68
    mine = Tracked68(points=mine.points[: len(rows)], width=mine.width, height=mine.height)
    scores = running.mean()
    lmd, lmd_frames = None, 0
    try:
        result = lmd_of_frames(mine, real68, allow_missing=True)
        lmd, lmd_frames = result.lmd, result.n_scored
    except UsageError as exc:  # no frame with a face in both: the image scores still stand
        note = "; ".join(filter(None, [note, f"no LMD: {' '.join(str(exc).split())}"]))
    return ReferenceScores(
        path=reference.path, frames=len(rows), frames_video=video.frames, frames_reference=reference.frames,
        psnr=scores.psnr, ssim=scores.ssim, psnr_face=scores.psnr_face, ssim_face=scores.ssim_face,
        face_frames=running.n_face, lmd=lmd, lmd_frames=lmd_frames, resolution=reference.width,
        reference_missing=real68.missing.tolist(), note=note)


# -- the whole evaluation ------------------------------------------------------------------


def evaluate_video(video: PathLike, audio: PathLike, reference: Optional[PathLike] = None,
                   syncnet: Optional[PathLike] = None, max_offset: int = DEFAULT_MAX_OFFSET, tracker=None,
                   progress: Optional[Progress] = None) -> VideoEvaluation:
    """Evaluate `video` (see the module doc). `audio`: the speech it should say (any audio or
    video file); `reference`: real footage of the same frames; `syncnet`: a SyncScorer
    checkpoint path (or a loaded SyncScorer); `tracker`: a FaceTracker or its name (default
    mediapipe, `geneface process`'s); `progress(iterable, total, description)` wraps the
    frame loops (e.g. `geneface.core.progress.track`).

    Every input is checked before any frame is tracked: missing files, a video without
    frames, a reference of another size or length, a checkpoint of the wrong kind.
    """
    from geneface.core.media import read_audio
    from geneface.app.components import face_tracker

    if int(max_offset) < 0:
        raise UsageError(f"--max-offset must be >= 0 frames, got {max_offset}")
    facts = video_facts(video)
    audio_path = _require_file(Path(audio), "the audio")
    sound = read_audio(audio_path)
    if len(sound.samples) == 0:
        raise UsageError(f"{audio_path}: audio has zero length")
    audio_frames = frames_for_duration(sound.duration)
    audio_facts = AudioFacts(str(audio_path), float(sound.duration), int(audio_frames), facts.frames - audio_frames)
    ref_facts = None
    if reference is not None:
        ref_facts = video_facts(_require_file(Path(reference), "the reference video"))
        check_reference(facts, ref_facts)
    scorer = features = None
    checkpoint = ""
    if syncnet is not None:
        if isinstance(syncnet, (str, Path)):
            checkpoint = str(syncnet)
            scorer = load_syncnet(syncnet)
        else:
            scorer = syncnet
        # Encoded (and the width checked) before tracking, so a missing encoder model or a
        # mismatched checkpoint fails at once, not after every frame was tracked.
        features = syncnet_encoder(scorer, checkpoint or "the SyncNet").encode(sound)
        if hasattr(scorer, "check_features"):
            scorer.check_features(features, f"{audio_path}'s features")
    notes = []
    if abs(audio_facts.length_difference_frames) > 1:
        longer = "video" if audio_facts.length_difference_frames > 0 else "audio"
        notes.append(f"the {longer} is {abs(audio_facts.length_difference_frames)} frames longer "
                     f"({facts.frames} video frames, {audio_frames} of audio)")

    faces = sync = ref_scores = None
    if scorer is not None or ref_facts is not None:
        tracker = face_tracker(tracker)
        tracked = track_video(facts.path, tracker, progress=progress)
        faces = tracked.faces
        if faces.n_missing:
            notes.append(f"no face found in {faces.n_missing} of {faces.frames} frames of the video")
        if scorer is not None:
            sync = score_sync(canonical_landmarks(tracked, tracker), tracked.found, features, scorer,
                              int(max_offset), checkpoint)
        if ref_facts is not None:
            ref_scores = score_reference(facts, ref_facts, tracked, tracker, progress)
            if ref_scores.note:
                notes.append(ref_scores.note)
    return VideoEvaluation(video=facts, audio=audio_facts, run=run_facts(facts.path), faces=faces, sync=sync,
                           reference=ref_scores, notes=notes)


# -- the human report ----------------------------------------------------------------------


def _num(value, fmt: str = ".2f", unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:{fmt}}{unit}"


def _indices(values, limit: int = 10) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def format_report(ev: VideoEvaluation, curve_span: int = 5) -> str:
    """A plain two-column table of the evaluation (the curve shown within +-`curve_span` frames)."""
    v, a, r = ev.video, ev.audio, ev.run
    rows: list[tuple[str, str]] = [
        ("video", v.path),
        ("frames", f"{v.frames} at 25 fps ({v.duration:.2f} s; container {v.fps:g} fps, {v.codec})"),
        ("size", f"{v.width} x {v.height} px"),
        ("audio track", "yes" if v.has_audio else "no"),
        ("audio", f"{a.path} ({a.seconds:.2f} s = {a.frames} frames)"),
        ("video - audio", f"{a.length_difference_frames:+d} frames"),
        ("run speed", f"{r.fps:.1f} fps" + (f" on {r.device}" if r.device else "") if r.fps else "unknown"),
    ]
    if ev.faces is not None:
        missing = ev.faces.missing
        rows.append(("no face", f"{len(missing)} of {ev.faces.frames} frames"
                     + (f" (frame {_indices(list(missing))})" if missing else "")))
    s = ev.sync
    if s is not None:
        rows += [
            ("sync confidence", f"{s.confidence:.3f} at offset 0 ({s.windows} windows, {s.scorer}, {s.encoder} features)"),
            ("best offset", f"{s.offset:+d} frames (offset confidence {s.offset_confidence:.3f})"),
            ("sync curve", "  ".join(f"{k:+d}:{c:.3f}" for k, c in zip(s.offsets, s.curve) if abs(k) <= curve_span)
             or "-"),
        ]
        if s.frames_left_out:
            rows.append(("sync left out", f"{len(s.frames_left_out)} frames (frame {_indices(list(s.frames_left_out))})"))
    f = ev.reference
    if f is not None:
        rows += [
            ("reference", f"{f.path} ({f.frames} frames compared)"),
            ("PSNR", f"{_num(f.psnr, '.2f', ' dB')} full frame, {_num(f.psnr_face, '.2f', ' dB')} face box"),
            ("SSIM", f"{_num(f.ssim, '.4f')} full frame, {_num(f.ssim_face, '.4f')} face box "
                     f"({f.face_frames} frames with a box)"),
            ("LMD", f"{_num(f.lmd, '.3f', ' px')} ({f.lmd_frames} frames, mouth 48-67 centred, at {f.resolution} px wide)"),
        ]
        if f.reference_missing:
            rows.append(("reference no face", f"{len(f.reference_missing)} frames "
                         f"(frame {_indices(list(f.reference_missing))})"))
    for note in ev.notes:
        rows.append(("note", note))
    if r.note and r.fps is None and r.sidecar:
        rows.append(("note", r.note))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {val}" for k, val in rows)
