"""Typed records that pass between stages.

Each record validates its own shapes and dtypes on construction, so a malformed array is
caught where it is made, not three stages later. Conventions (see ARCHITECTURE.md):
audio is mono float32 at 16 kHz, audio features run at 50 Hz (two per video frame), motion
and video run at 25 fps, and motion is 68 canonical 3-D landmarks per frame.
"""

from __future__ import annotations

import math
from typing import Optional

import attrs
import numpy as np

# The 68-point layout has one home, landmarks68; its regions are named here for the records' users.
from geneface.core.landmarks68 import EYES, MOUTH, N_68  # noqa: F401  (re-exported)

SAMPLE_RATE = 16_000
FEATURE_RATE = 50.0
VIDEO_FPS = 25.0
N_LANDMARKS = N_68


def _float32_array(value) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(value, dtype=np.float32))


def frames_for_duration(seconds: float, fps: float = VIDEO_FPS) -> int:
    """Number of video frames that cover `seconds` of audio (rounded to the nearest frame)."""
    return int(math.floor(seconds * fps + 0.5))


@attrs.frozen(eq=False)
class Audio:
    """Mono audio: float32 samples in [-1, 1] and their sample rate."""

    samples: np.ndarray = attrs.field(converter=_float32_array)
    sample_rate: int = SAMPLE_RATE

    @samples.validator
    def _check(self, _attr, value):
        if value.ndim != 1:
            raise ValueError(f"Audio.samples must be 1-D (mono), got shape {value.shape}")
        if not np.all(np.isfinite(value)):
            raise ValueError("Audio.samples contains NaN or infinite values")

    @property
    def duration(self) -> float:
        return len(self.samples) / float(self.sample_rate)

    @property
    def n_video_frames(self) -> int:
        return frames_for_duration(self.duration)

    def samples_at(self, rate: int = SAMPLE_RATE) -> np.ndarray:
        """The samples resampled to `rate` (as they are when already there): what every
        16 kHz model reads."""
        if self.sample_rate == rate:
            return self.samples
        import librosa

        return librosa.resample(self.samples, orig_sr=self.sample_rate, target_sr=rate)


@attrs.frozen(eq=False)
class AudioFeatures:
    """Per-frame audio features (T x D) at `frame_rate` Hz, from encoder `encoder`."""

    values: np.ndarray = attrs.field(converter=_float32_array)
    frame_rate: float = FEATURE_RATE
    encoder: str = ""
    channels: tuple = attrs.field(default=(), converter=tuple)

    @values.validator
    def _check(self, _attr, value):
        if value.ndim != 2:
            raise ValueError(f"AudioFeatures.values must be T x D, got shape {value.shape}")
        if self.channels and len(self.channels) != value.shape[1]:
            raise ValueError(
                f"AudioFeatures has {value.shape[1]} columns but {len(self.channels)} channel names"
            )

    @property
    def n_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def width(self) -> int:
        return int(self.values.shape[1])

    @property
    def duration(self) -> float:
        return self.n_frames / self.frame_rate


@attrs.frozen(eq=False)
class Motion:
    """Canonical (head-pose-free) 68 x 3 landmarks per frame at `fps`.

    `mean` and `std` (68 x 3) are the normalisation statistics of the data the motion is
    expressed against; models work on (landmarks - mean) / std.
    """

    landmarks: np.ndarray = attrs.field(converter=_float32_array)
    fps: float = VIDEO_FPS
    mean: Optional[np.ndarray] = attrs.field(
        default=None, converter=attrs.converters.optional(_float32_array)
    )
    std: Optional[np.ndarray] = attrs.field(
        default=None, converter=attrs.converters.optional(_float32_array)
    )

    @landmarks.validator
    def _check(self, _attr, value):
        if value.ndim != 3 or value.shape[1:] != (N_LANDMARKS, 3):
            raise ValueError(f"Motion.landmarks must be T x 68 x 3, got shape {value.shape}")
        if value.shape[0] == 0:
            raise ValueError("Motion has zero frames")
        if not np.all(np.isfinite(value)):
            raise ValueError("Motion.landmarks contains NaN or infinite values")

    @mean.validator
    @std.validator
    def _check_stats(self, attribute, value):
        if value is not None and value.shape != (N_LANDMARKS, 3):
            raise ValueError(f"Motion.{attribute.name} must be 68 x 3, got shape {value.shape}")

    @property
    def n_frames(self) -> int:
        return int(self.landmarks.shape[0])

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    def normalized(self) -> np.ndarray:
        """(landmarks - mean) / std, or the raw landmarks when no statistics are attached."""
        if self.mean is None or self.std is None:
            return self.landmarks
        return (self.landmarks - self.mean) / np.maximum(self.std, 1e-6)

    def with_landmarks(self, landmarks: np.ndarray) -> "Motion":
        return attrs.evolve(self, landmarks=landmarks)


def rebase(motion: Motion, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Motion -> T x 204 normalised by a person's statistics `mean`/`std` (68 x 3).

    Motion that carries its own statistics (a generic generator's output: the average face
    of its training speakers) is read as normalised values and re-expressed in the person's
    face; motion without statistics is taken to be in the person's units already. Every
    person-specific stage reads generic motion this way: adapters at inference, their
    training, the benches.
    """
    z = motion.normalized() if motion.mean is not None and motion.std is not None else (
        (motion.landmarks - mean) / np.maximum(std, 1e-6))
    return np.ascontiguousarray(z.reshape(motion.n_frames, -1), dtype=np.float32)


@attrs.frozen(eq=False)
class Camera:
    """A pinhole camera shared by a video plus one camera-to-world matrix per frame.

    The head sits still in its canonical frame and the camera moves around it, as a NeRF
    expects. `c2w` is T x 4 x 4 (OpenCV axes: x right, y down, z forward).
    """

    focal: float
    width: int
    height: int
    c2w: np.ndarray = attrs.field(converter=_float32_array)
    cx: Optional[float] = None
    cy: Optional[float] = None

    @c2w.validator
    def _check(self, _attr, value):
        if value.ndim != 3 or value.shape[1:] != (4, 4):
            raise ValueError(f"Camera.c2w must be T x 4 x 4, got shape {value.shape}")

    @property
    def principal_point(self) -> tuple[float, float]:
        return (
            self.width / 2.0 if self.cx is None else self.cx,
            self.height / 2.0 if self.cy is None else self.cy,
        )

    @property
    def n_frames(self) -> int:
        return int(self.c2w.shape[0])

    def intrinsics(self) -> np.ndarray:
        cx, cy = self.principal_point
        return np.array([[self.focal, 0, cx], [0, self.focal, cy], [0, 0, 1]], dtype=np.float32)

