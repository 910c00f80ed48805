"""`ProcessConfig`: every setting of `geneface process`, stored in the dataset's manifest."""

from __future__ import annotations

import attrs

from geneface.processing.pose import DEFAULT_FOV_DEGREES


def _positive(_inst, attribute, value):
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


def _share(_inst, attribute, value):
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{attribute.name} must be in [0, 1), got {value}")


def _offset_mode(value) -> str:
    from geneface.processing.av_offset import parse_mode

    return parse_mode(value)


@attrs.define
class ProcessConfig:
    """Every setting of `geneface process`; stored in the manifest."""

    size: int = attrs.field(default=512, validator=_positive)  # output crop side, px
    crop_scale: float = attrs.field(default=2.0, validator=_positive)  # crop side / face height
    val_fraction: float = attrs.field(default=1 / 11, validator=_share)  # last share of time -> validation (the field's 1/11)
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
    # Audio-to-video offset: "auto" (estimate, correct >= 2 frames, flag unknown), "0" or a
    # number of frames to shift by; geneface.processing.av_offset, docs/av-offset.md.
    av_offset: str = attrs.field(default="auto", converter=lambda v: _offset_mode(v))

    def __attrs_post_init__(self):
        if self.size % 2 or self.size < 16:
            raise ValueError(f"size must be an even number of at least 16 px, got {self.size}")
        if not 0 < self.fov_degrees < 120:
            raise ValueError(f"fov_degrees must be in (0, 120), got {self.fov_degrees}")
        if not self.no_audio and not self.audio_encoders:
            raise ValueError("name at least one audio encoder, or process with no_audio")
