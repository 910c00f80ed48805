"""What can vary between synthetic subjects and clips: identity, speaking style, voice.

A "target person" can be made to differ from a "corpus" in known, measurable ways (for
example `Style(mouth_amplitude=1.5)` opens the jaw half as much again for the same speech),
which is what a domain adapter is supposed to learn.
"""

from __future__ import annotations

import attrs
import numpy as np

from geneface.errors import UsageError


def _in_range(lo: float, hi: float):
    def check(_inst, attribute, value):
        if not (lo <= value <= hi):
            raise UsageError(f"{attribute.name} = {value} is outside {lo}..{hi}")

    return check


@attrs.frozen
class Identity:
    """How the subject looks. Zero / one everywhere is the photo as it is.

    Colour: `hue_shift` (degrees, whole image), `saturation` and `brightness` (gains) and
    `skin_tone` (RGB gains inside the face). Geometry: `scale` (face size in the frame;
    >1 = closer), `face_width`, `face_length`, `jaw_width` (relative changes of the
    face mesh; the photo texture follows, so the face itself changes shape).
    """

    hue_shift: float = attrs.field(default=0.0, validator=_in_range(-180.0, 180.0))
    saturation: float = attrs.field(default=1.0, validator=_in_range(0.0, 3.0))
    brightness: float = attrs.field(default=1.0, validator=_in_range(0.3, 2.0))
    skin_tone: tuple = attrs.field(default=(1.0, 1.0, 1.0), converter=lambda v: tuple(float(x) for x in v))
    scale: float = attrs.field(default=1.0, validator=_in_range(0.6, 1.6))
    face_width: float = attrs.field(default=0.0, validator=_in_range(-0.2, 0.2))
    face_length: float = attrs.field(default=0.0, validator=_in_range(-0.2, 0.2))
    jaw_width: float = attrs.field(default=0.0, validator=_in_range(-0.25, 0.25))

    @skin_tone.validator
    def _check_tone(self, _attr, value):
        if len(value) != 3 or not all(0.5 <= g <= 1.6 for g in value):
            raise UsageError(f"skin_tone must be three gains in 0.5..1.6, got {value}")

    @classmethod
    def random(cls, rng: np.random.Generator, strength: float = 1.0) -> "Identity":
        """A plausible variation; `strength` 0 gives the photo unchanged."""
        s = float(strength)
        warm = rng.normal(0.0, 0.08) * s  # warmer/cooler skin: red up, blue down together
        return cls(
            # Hue turns the skin too, so only a little of it; skin_tone varies the face.
            hue_shift=float(np.clip(rng.normal(0.0, 5.0) * s, -15, 15)),
            saturation=float(np.clip(1.0 + rng.normal(0.0, 0.12) * s, 0.6, 1.5)),
            brightness=float(np.clip(1.0 + rng.normal(0.0, 0.08) * s, 0.75, 1.3)),
            skin_tone=tuple(float(np.clip(g, 0.75, 1.3)) for g in (1 + warm, 1 + 0.3 * warm, 1 - warm)),
            scale=float(np.clip(1.0 + rng.normal(0.0, 0.08) * s, 0.8, 1.25)),
            face_width=float(np.clip(rng.normal(0.0, 0.05) * s, -0.12, 0.12)),
            face_length=float(np.clip(rng.normal(0.0, 0.05) * s, -0.12, 0.12)),
            jaw_width=float(np.clip(rng.normal(0.0, 0.06) * s, -0.15, 0.15)),
        )

    def to_dict(self) -> dict:
        d = attrs.asdict(self)
        d["skin_tone"] = list(self.skin_tone)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Identity":
        return cls(**d)


@attrs.frozen
class Style:
    """How the subject moves.

    `mouth_amplitude` scales jaw opening, `lip_amplitude` lip spreading and rounding,
    `coarticulation` the width of each phoneme's influence (higher = smoother, lazier
    speech), `motion_amplitude` head rotation and translation, `blink_rate` blinks per
    minute relative to about 17.

    `lip_corner_offset` is a lopsided speaking habit: the subject's left mouth corner
    (image right, landmarks 54 and 64) rises by `lip_corner_offset x 0.4 cm x (0.5 + jaw)`,
    jaw being the jaw opening as animated (0 closed, about 1 wide open, after
    `mouth_amplitude`); negative values lower it. The right corner stays where it is.
    """

    mouth_amplitude: float = attrs.field(default=1.0, validator=_in_range(0.0, 3.0))
    lip_amplitude: float = attrs.field(default=1.0, validator=_in_range(0.0, 3.0))
    coarticulation: float = attrs.field(default=1.0, validator=_in_range(0.25, 4.0))
    motion_amplitude: float = attrs.field(default=1.0, validator=_in_range(0.0, 5.0))
    blink_rate: float = attrs.field(default=1.0, validator=_in_range(0.0, 5.0))
    lip_corner_offset: float = attrs.field(default=0.0, validator=_in_range(-1.0, 1.0))

    def to_dict(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Style":
        return cls(**d)  # keys missing from older meta.json files take their defaults
