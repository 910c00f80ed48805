"""One synthetic talking-head clip: speech, animation, frames and exact ground truth.

Folder layout (see docs/synthetic_subject.md):

    video.mp4          H.264, 25 fps, speech muxed (AAC)
    speech.wav         the muxed audio, 16 kHz mono PCM
    ground_truth.npz   per-frame pose, 68 landmarks, mouth opening, visemes, blinks ...
    meta.json          text, voice, rate, pitch, seed, variation, phonemes, versions
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Iterator, Optional

import attrs
import numpy as np

from geneface.core.atomic import atomic_directory, atomic_output
from geneface.core.landmarks68 import LIP_INNER_PAIRS, MESH_TO_68, eye_openness, mouth_openness
from geneface.core.media import VideoWriter, write_wav
from geneface.core.records import VIDEO_FPS
from geneface.errors import UsageError
from geneface.speech import DEFAULT_PITCH, DEFAULT_RATE, DEFAULT_VOICE, Speech, concatenate, synthesize
from geneface.synth.face_model import LIP_LOWER_INNER, LIP_UPPER_INNER, FaceRig
from geneface.synth.motion import blink_track, head_motion, matrix_to_euler
from geneface.synth.photo import PhotoTrack, track_photo
from geneface.synth.render import Rasterizer, soften_outline
from geneface.synth.text import HARVARD
from geneface.synth.variation import Identity, Style
from geneface.synth.visemes import CHANNELS, VISEMES, ArticulationTrack, articulate

SYNTH_VERSION = 1
LEAD_IN = 0.3  # s of closed-mouth silence before the first word
TAIL = 0.4  # s after the last word when the length follows the text
SENTENCE_GAP = 0.3  # s between default sentences
SIZE_RANGE = (64, 1024)
SECONDS_RANGE = (0.2, 600.0)
MAX_OFFSET_FRAMES = 50


@attrs.frozen
class ClipSpec:
    """Everything that decides a clip. Same spec and seed -> same clip.

    `text` None speaks Harvard sentences (order drawn from the seed) until `seconds` are
    filled; `seconds` None lasts as long as the text plus a short lead-in and tail.
    `audio_offset_frames` > 0 delays the muxed audio against the mouth by that many
    frames (< 0 advances it), for testing sync detection; the ground truth records it.
    """

    text: Optional[str] = None
    seconds: Optional[float] = None
    size: int = 256
    seed: int = 0
    voice: str = DEFAULT_VOICE
    rate: int = DEFAULT_RATE
    pitch: int = DEFAULT_PITCH
    identity: Identity = Identity()
    style: Style = Style()
    audio_offset_frames: int = 0
    fps: float = VIDEO_FPS

    def validate(self) -> "ClipSpec":
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)):
            raise UsageError(f"size must be a whole number of pixels, got {self.size!r}")
        if not SIZE_RANGE[0] <= self.size <= SIZE_RANGE[1] or self.size % 2:
            raise UsageError(
                f"size {self.size} px is impossible: use an even size from {SIZE_RANGE[0]} to {SIZE_RANGE[1]} (256 or 512 usual)"
            )
        if self.seconds is not None and not SECONDS_RANGE[0] <= self.seconds <= SECONDS_RANGE[1]:
            raise UsageError(f"seconds {self.seconds} is outside {SECONDS_RANGE[0]}..{SECONDS_RANGE[1]}")
        if self.text is not None and not self.text.strip():
            raise UsageError("text is empty: give some words, or leave --text out for default sentences")
        if abs(self.audio_offset_frames) > MAX_OFFSET_FRAMES:
            raise UsageError(f"audio offset {self.audio_offset_frames} frames is beyond +-{MAX_OFFSET_FRAMES}")
        if self.seed < 0:
            raise UsageError(f"seed must be >= 0, got {self.seed}")
        return self

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "seconds": self.seconds,
            "size": self.size,
            "seed": self.seed,
            "voice": self.voice,
            "rate": self.rate,
            "pitch": self.pitch,
            "identity": self.identity.to_dict(),
            "style": self.style.to_dict(),
            "audio_offset_frames": self.audio_offset_frames,
            "fps": self.fps,
        }


@attrs.frozen(eq=False)
class GroundTruth:
    """What the generator knows about every frame. Shapes use T frames.

    Pose: camera = rotation @ canonical + translation (OpenCV camera axes, cm);
    `euler_deg` (pitch, yaw, roll) of that rotation, `motion_euler_deg` of the head motion
    added to the photo's own pose. Landmarks: the 68-point layout in output pixels, in
    camera space (cm) and in canonical head space (cm). Mouth: inner-lip gap in cm and as
    a fraction of mouth width. Eyes: lid closure 0..1 as animated, openness per eye.
    """

    rotation: np.ndarray  # T x 3 x 3
    translation: np.ndarray  # T x 3
    euler_deg: np.ndarray  # T x 3
    motion_euler_deg: np.ndarray  # T x 3
    motion_translation_cm: np.ndarray  # T x 3
    landmarks68_image: np.ndarray  # T x 68 x 2
    landmarks68_camera: np.ndarray  # T x 68 x 3
    landmarks68_canonical: np.ndarray  # T x 68 x 3
    mouth_opening: np.ndarray  # T, cm
    mouth_openness: np.ndarray  # T, gap / width
    blink: np.ndarray  # T
    eye_openness: np.ndarray  # T x 2
    viseme: np.ndarray  # T, ids into VISEMES
    articulation: np.ndarray  # T x 5, CHANNELS
    frame_times: np.ndarray  # T, s (frame centres)
    audio_offset_frames: int
    focal: float
    principal: tuple
    size: int

    @property
    def n_frames(self) -> int:
        return int(self.rotation.shape[0])

    def save(self, path: Path) -> None:
        arrays = {k: getattr(self, k) for k in (
            "rotation", "translation", "euler_deg", "motion_euler_deg", "motion_translation_cm",
            "landmarks68_image", "landmarks68_camera", "landmarks68_canonical", "mouth_opening",
            "mouth_openness", "blink", "eye_openness", "viseme", "articulation", "frame_times",
        )}
        arrays = {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in arrays.items()}
        with atomic_output(Path(path)) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(
                    fh,
                    **arrays,
                    audio_offset_frames=np.int32(self.audio_offset_frames),
                    intrinsics=np.array(
                        [[self.focal, 0, self.principal[0]], [0, self.focal, self.principal[1]], [0, 0, 1]], np.float32
                    ),
                    image_size=np.array([self.size, self.size], np.int32),
                    viseme_names=np.array(VISEMES),
                    articulation_channels=np.array(CHANNELS),
                )

    @classmethod
    def load(cls, path: Path) -> "GroundTruth":
        with np.load(Path(path)) as z:
            data = {k: z[k] for k in z.files}
        K = data.pop("intrinsics")
        size = int(data.pop("image_size")[0])
        data.pop("viseme_names", None)
        data.pop("articulation_channels", None)
        return cls(
            **{k: v for k, v in data.items() if k != "audio_offset_frames"},
            audio_offset_frames=int(data["audio_offset_frames"]),
            focal=float(K[0, 0]),
            principal=(float(K[0, 2]), float(K[1, 2])),
            size=size,
        )


@attrs.frozen(eq=False)
class Performance:
    """The animation plan of a clip: what every articulator, lid and the head does."""

    articulation: ArticulationTrack
    blink: np.ndarray
    euler_deg: np.ndarray
    translation_cm: np.ndarray

    @property
    def n_frames(self) -> int:
        return self.articulation.n_frames


# ----------------------------------------------------------------------------- speech
def make_speech(spec: ClipSpec) -> tuple[Speech, bool]:
    """The speech the face says, already placed on the clip's timeline (lead-in, padding).

    Returns (speech, truncated): truncated when the text ran past `seconds`.
    """
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 1]))
    if spec.text is not None:
        spoken = synthesize(spec.text, spec.voice, spec.rate, spec.pitch)
    else:
        want = (spec.seconds if spec.seconds is not None else 10.0) - LEAD_IN
        order = rng.permutation(len(HARVARD))
        parts, total, i = [], 0.0, 0
        while total < want:
            part = synthesize(HARVARD[order[i % len(order)]], spec.voice, spec.rate, spec.pitch)
            parts.append(part)
            total += part.duration + SENTENCE_GAP
            i += 1
        spoken = concatenate(parts, gap=SENTENCE_GAP)
    if spec.seconds is not None:
        seconds = spec.seconds
    elif spec.text is not None:
        seconds = LEAD_IN + spoken.duration + TAIL
    else:
        seconds = 10.0
    n_frames = max(1, int(round(seconds * spec.fps)))
    total = n_frames / spec.fps
    truncated = spec.text is not None and LEAD_IN + spoken.duration > total + 1e-6
    return spoken.shifted(LEAD_IN, total=total), truncated


def plan_performance(speech: Speech, n_frames: int, spec: ClipSpec) -> Performance:
    style = spec.style
    blink_rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 2]))
    motion_rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 3]))
    art = articulate(speech.phonemes, n_frames, spec.fps, style.coarticulation)
    blink = blink_track(n_frames, spec.fps, blink_rng, style.blink_rate)
    euler, trans = head_motion(n_frames, spec.fps, motion_rng, style.motion_amplitude)
    return Performance(art, blink, euler, trans)


# ------------------------------------------------------------------------------ frames
_RIGS: dict = {}


def get_rig(identity: Identity, size: int, photo: Optional[PhotoTrack] = None) -> FaceRig:
    """Rigs are cheap (~20 ms) but the corpus maker reuses a few many times."""
    track = photo if photo is not None else track_photo()
    key = (track.digest or id(track.image), identity, size)
    rig = _RIGS.get(key)
    if rig is None:
        if len(_RIGS) > 16:
            _RIGS.clear()
        rig = _RIGS[key] = FaceRig(track, identity, size)
    return rig


def render_frame(rig: FaceRig, raster: Rasterizer, perf: Performance, k: int, style: Style):
    """Frame `k` of `perf` -> (RGB frame, id buffer, per-frame ground truth).

    The id buffer says which triangle of `rig.draw_order` drew each pixel; ids below
    `rig.n_interior_triangles` are the mouth interior.
    """
    jaw, spread, rnd, closure, tuck = perf.articulation.values[k]
    face, interior, outer = rig.deform(
        jaw, spread, rnd, closure, tuck, perf.blink[k],
        mouth_amp=style.mouth_amplitude, lip_amp=style.lip_amplitude, corner_offset=style.lip_corner_offset,
    )
    R, t, Rm, q = rig.pose(perf.euler_deg[k], perf.translation_cm[k])
    cam = rig.frame_vertices(face, interior, outer, R, t, Rm, q, perf.translation_cm[k])
    uv = rig.project(cam)
    frame, ids = raster.render(uv, rig.texture_coords, rig.draw_order(cam))
    lips = np.concatenate([uv[LIP_UPPER_INNER], uv[LIP_LOWER_INNER][::-1][1:-1]])
    soften_outline(frame, lips)
    return frame, ids, {
        "R": R,
        "t": t,
        "lm_can": face[MESH_TO_68],
        "lm_cam": cam[MESH_TO_68],
        "lm_img": uv[MESH_TO_68],
    }


def render_performance(rig: FaceRig, perf: Performance, style: Style) -> Iterator[tuple[np.ndarray, dict]]:
    """Yield (RGB frame, per-frame ground truth) for every frame of `perf`."""
    raster = Rasterizer(rig.texture, rig.size)
    for k in range(perf.n_frames):
        frame, _ids, row = render_frame(rig, raster, perf, k, style)
        yield frame, row


def assemble_ground_truth(rows: list[dict], perf: Performance, rig: FaceRig, spec: ClipSpec) -> GroundTruth:
    R = np.stack([r["R"] for r in rows])
    lm_can = np.stack([r["lm_can"] for r in rows])
    gap = np.linalg.norm(lm_can[:, LIP_INNER_PAIRS[:, 0]] - lm_can[:, LIP_INNER_PAIRS[:, 1]], axis=-1).mean(-1)
    n = len(rows)
    return GroundTruth(
        rotation=R,
        translation=np.stack([r["t"] for r in rows]),
        euler_deg=matrix_to_euler(R),
        motion_euler_deg=perf.euler_deg[:n],
        motion_translation_cm=perf.translation_cm[:n],
        landmarks68_image=np.stack([r["lm_img"] for r in rows]),
        landmarks68_camera=np.stack([r["lm_cam"] for r in rows]),
        landmarks68_canonical=lm_can,
        mouth_opening=gap,
        mouth_openness=mouth_openness(lm_can),
        blink=perf.blink[:n],
        eye_openness=eye_openness(lm_can),
        viseme=perf.articulation.viseme[:n],
        articulation=perf.articulation.values[:n],
        frame_times=(np.arange(n) + 0.5) / spec.fps,
        audio_offset_frames=spec.audio_offset_frames,
        focal=rig.focal,
        principal=rig.principal,
        size=rig.size,
    )


@attrs.frozen(eq=False)
class Clip:
    """A generated clip held in memory (frames included): for tests and short previews."""

    frames: np.ndarray
    speech: Speech  # as animated (no audio offset)
    audio: Speech  # as muxed (offset applied)
    ground_truth: GroundTruth
    truncated: bool
    spec: ClipSpec


def _muxed(speech: Speech, spec: ClipSpec) -> Speech:
    if spec.audio_offset_frames == 0:
        return speech
    return speech.shifted(spec.audio_offset_frames / spec.fps, total=speech.duration)


def generate(spec: ClipSpec, photo: Optional[PhotoTrack] = None) -> Clip:
    """Make a clip in memory."""
    spec.validate()
    speech, truncated = make_speech(spec)
    n = int(round(speech.duration * spec.fps))
    perf = plan_performance(speech, n, spec)
    rig = get_rig(spec.identity, spec.size, photo)
    frames, rows = [], []
    for frame, row in render_performance(rig, perf, spec.style):
        frames.append(frame)
        rows.append(row)
    gt = assemble_ground_truth(rows, perf, rig, spec)
    return Clip(np.stack(frames), speech, _muxed(speech, spec), gt, truncated, spec)


def write_clip(
    spec: ClipSpec,
    out_dir: Path,
    overwrite: bool = False,
    photo: Optional[PhotoTrack] = None,
    progress: bool = False,
    extra_meta: Optional[dict] = None,
) -> Path:
    """Make a clip and write its folder atomically; returns the folder."""
    spec.validate()
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise UsageError(f"{out_dir} already exists (pass --overwrite to replace it)")
    speech, truncated = make_speech(spec)
    n = int(round(speech.duration * spec.fps))
    perf = plan_performance(speech, n, spec)
    rig = get_rig(spec.identity, spec.size, photo)
    muxed = _muxed(speech, spec)
    rows = []
    frames = render_performance(rig, perf, spec.style)
    if progress:
        from geneface.core.progress import track

        frames = track(frames, total=n, description=f"synth {out_dir.name}")
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        with VideoWriter(tmp / "video.mp4", fps=spec.fps, audio=muxed.audio) as writer:
            for frame, row in frames:
                writer.write(frame)
                rows.append(row)
        write_wav(tmp / "speech.wav", muxed.audio)
        gt = assemble_ground_truth(rows, perf, rig, spec)
        gt.save(tmp / "ground_truth.npz")
        meta = clip_meta(spec, speech, truncated, rig, n, photo.name if photo is not None else "astronaut")
        if extra_meta:
            meta.update(extra_meta)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


PHOTO_SOURCES = {"astronaut": "skimage.data.astronaut() (NASA portrait of Eileen Collins, public domain)"}


def clip_meta(spec: ClipSpec, speech: Speech, truncated: bool, rig: FaceRig, n_frames: int, photo_name: str) -> dict:
    from geneface.speech import engine_info

    return {
        "format": "geneface-synth-clip",
        "format_version": 1,
        "spec": spec.to_dict(),
        "text_spoken": speech.text,
        "voice_resolved": speech.voice,
        "truncated": truncated,
        "frames": n_frames,
        "fps": spec.fps,
        "duration": n_frames / spec.fps,
        "size": spec.size,
        "lead_in_seconds": LEAD_IN,
        "audio_offset_frames": spec.audio_offset_frames,
        "camera": {"focal": rig.focal, "cx": rig.principal[0], "cy": rig.principal[1]},
        "phonemes": speech.phoneme_table(),
        "photo": PHOTO_SOURCES.get(photo_name, photo_name),
        "versions": versions(engine_info()),
    }


def versions(tts: Optional[dict] = None) -> dict:
    import cv2
    import mediapipe

    from geneface import __version__

    out = {
        "geneface": __version__,
        "synth": SYNTH_VERSION,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "mediapipe": mediapipe.__version__,
        "python": platform.python_version(),
    }
    if tts:
        out["espeak_ng"] = tts["version"]
        out["espeak_origin"] = tts["origin"]
    return out
