"""`geneface eval`: the field's evaluation of one talking-head video (docs/evaluation.md).

`evaluate_video(video, audio, registry, reference=None, syncnet=None)` reports:

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

Beside it: `eval_tracking` (the re-tracking, as `geneface process` tracks), the scores in
`geneface.metrics` (`sync`: lip sync over runs of face frames; `reference`: the one pass
over both videos; `image`, `landmarks`), and `eval_report` (the JSON and the table).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import attrs

from geneface.app.eval_report import evaluation_data, evaluation_json
from geneface.app.eval_tracking import (
    FaceFacts,
    PathLike,
    Progress,
    TrackedVideo,
    canonical_landmarks,
    track_video,
    video_frames,
    with_progress,
)
from geneface.core.records import VIDEO_FPS, frames_for_duration
from geneface.errors import CheckpointError, MediaError, UsageError
from geneface.metrics.sync import DEFAULT_MAX_OFFSET, SyncScores, score_sync

MAX_FRAME_SLACK = 2  # reference frame counts this close are scored on their common frames


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
        return evaluation_data(self)

    def to_json(self) -> str:
        return evaluation_json(self)


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


# -- lip sync ------------------------------------------------------------------------------


def load_syncnet(path: PathLike, registry, where: str = "--syncnet"):
    """A trained SyncScorer from its checkpoint; a checkpoint of another kind is a one-line error."""
    return registry.load(_require_file(Path(path), "a SyncNet checkpoint"), "syncnet", where)


def syncnet_encoder(scorer, registry, path: PathLike = "the SyncNet checkpoint"):
    """The audio encoder the SyncNet was trained on (its checkpoint names it), from `registry`."""
    name = getattr(scorer, "encoder", "")
    if not name:
        raise CheckpointError(f"{path}: the SyncNet checkpoint does not name the audio encoder it was trained on; "
                              "retrain it with this version")
    return registry.get("audio_encoder", name, where=f"{path}: its audio encoder").cls()


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


def score_reference(video: VideoFacts, reference: VideoFacts, video_track: TrackedVideo, tracker,
                    progress: Optional[Progress] = None) -> ReferenceScores:
    """PSNR / SSIM (full frame and face box) and LMD of `video` against `reference`.

    One pass over both files together (`geneface.metrics.reference.score_against_real`):
    each reference frame is tracked (its 68 points give the face box and its half of LMD)
    and scored against the video's frame at once, so no frames are kept in memory. `tracker`:
    a FaceTracker.
    """
    from geneface.metrics.landmarks import Tracked68, lmd_of_frames
    from geneface.metrics.reference import score_against_real

    n, note = check_reference(video, reference)
    pairs = zip(video_frames(Path(video.path), n), video_frames(Path(reference.path), n))
    pairs = with_progress(pairs, n, f"tracking {Path(reference.path).name} and comparing", progress)
    running, points = score_against_real(pairs, tracker, (reference.height, reference.width), where=video.path)
    compared = len(points)
    if not compared:
        raise MediaError(f"{reference.path}: video has no frames")
    real68 = Tracked68(points=points, width=reference.width, height=reference.height)
    if not real68.found.any():
        raise UsageError(f"{reference.path}: no face found in any of its {compared} frames (the reference)")
    mine = video_track.points68
    mine = Tracked68(points=mine.points[:compared], width=mine.width, height=mine.height)
    scores = running.mean()
    lmd, lmd_frames = None, 0
    try:
        result = lmd_of_frames(mine, real68, allow_missing=True)
        lmd, lmd_frames = result.lmd, result.n_scored
    except UsageError as exc:  # no frame with a face in both: the image scores still stand
        note = "; ".join(filter(None, [note, f"no LMD: {' '.join(str(exc).split())}"]))
    return ReferenceScores(
        path=reference.path, frames=compared, frames_video=video.frames, frames_reference=reference.frames,
        psnr=scores.psnr, ssim=scores.ssim, psnr_face=scores.psnr_face, ssim_face=scores.ssim_face,
        face_frames=running.n_face, lmd=lmd, lmd_frames=lmd_frames, resolution=reference.width,
        reference_missing=real68.missing.tolist(), note=note)


# -- the whole evaluation ------------------------------------------------------------------


def evaluate_video(video: PathLike, audio: PathLike, registry, reference: Optional[PathLike] = None,
                   syncnet: Optional[PathLike] = None, max_offset: int = DEFAULT_MAX_OFFSET, tracker=None,
                   progress: Optional[Progress] = None) -> VideoEvaluation:
    """Evaluate `video` (see the module doc). `audio`: the speech it should say (any audio or
    video file); `registry` (the application's): where the tracker, the SyncNet and its
    encoder come from; `reference`: real footage of the same frames; `syncnet`: a SyncScorer
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
            scorer = load_syncnet(syncnet, registry)
        else:
            scorer = syncnet
        from geneface.models.syncnet import V_FRAMES

        if min(facts.frames, audio_frames) < V_FRAMES:  # said before the encoder warns of a too short signal
            raise UsageError(f"lip sync needs at least {V_FRAMES} consecutive frames with a face and audio; "
                             f"{facts.path} has {facts.frames} frames and {audio_path} audio for {audio_frames}")
        # Encoded (and the width checked) before tracking, so a missing encoder model or a
        # mismatched checkpoint fails at once, not after every frame was tracked.
        features = syncnet_encoder(scorer, registry, checkpoint or "the SyncNet").encode(sound)
        if hasattr(scorer, "check_features"):
            scorer.check_features(features, f"{audio_path}'s features")
    notes = []
    if abs(audio_facts.length_difference_frames) > 1:
        longer = "video" if audio_facts.length_difference_frames > 0 else "audio"
        notes.append(f"the {longer} is {abs(audio_facts.length_difference_frames)} frames longer "
                     f"({facts.frames} video frames, {audio_frames} of audio)")

    faces = sync = ref_scores = None
    if scorer is not None or ref_facts is not None:
        tracker = face_tracker(tracker, registry)
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
