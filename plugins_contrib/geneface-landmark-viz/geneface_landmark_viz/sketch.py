"""The `landmark_sketch` renderer: 68-point motion drawn as a front and a side view.

Axis convention assumed for canonical landmarks (OpenCV camera axes, as `Camera` uses):
x points to the image's right, y points down, z points forward, away from the camera (the
nose tip has the smallest z). Data with y pointing up is detected (chin above the brows)
or forced with `flip_y`; either way y points down in the picture.

- Front panel: (x, y), as the camera sees the face.
- Side panel: (z, y), seen from the camera's right (+x) looking back towards -x, so z grows
  to the right and the face looks left.

One scale and one offset per motion, fitted to the landmark range over *all* frames (plus a
margin), so the sketch does not jump or breathe from frame to frame; the same scale serves
both panels, so the face keeps its proportions and a point sits at the same height in both.
That fit over the whole motion is why the sketch cannot stream (`stream_problem`).
"""

from __future__ import annotations

from typing import Iterator, Literal, Optional

import attrs
import numpy as np

from geneface.core import landmarks68 as L68
from geneface.core.records import Camera, Motion
from geneface.core.stages import Renderer

# cv2 draws with integer coordinates; `shift` fractional bits give sub-pixel positions, so
# slow motion moves smoothly instead of in one-pixel steps.
SHIFT = 4
ONE = 1 << SHIFT

# Contours of the iBUG 68-point layout, drawn as polylines.
OPEN_CONTOURS = (
    L68.JAW,
    L68.BROW_LEFT,
    L68.BROW_RIGHT,
    L68.NOSE_BRIDGE,
    slice(L68.NOSE_BRIDGE.stop, L68.NOSE.stop),  # lower edge of the nose, alar to alar
)
CLOSED_CONTOURS = (L68.EYE_LEFT, L68.EYE_RIGHT)
MOUTH_CONTOURS = (L68.LIPS_OUTER, L68.LIPS_INNER)  # drawn in the highlight colour
MOUTH_START = L68.MOUTH.start

MIN_SIZE = 32


def _check_size(_instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{attribute.name} must be an integer number of pixels, got {value!r}")
    if value < MIN_SIZE or value % 2:
        # H.264 (geneface's VideoWriter) only takes even frame sizes.
        raise ValueError(
            f"{attribute.name} must be an even number of pixels >= {MIN_SIZE} "
            f"(H.264 needs even frame sizes), got {value}"
        )


def _check_rgb(_instance, attribute, value):
    def channel_ok(c):
        return isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255

    if len(value) != 3 or not all(channel_ok(c) for c in value):
        raise ValueError(f"{attribute.name} must be three integers 0-255 (R, G, B), got {value!r}")


def _check_thickness(_instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16:
        raise ValueError(f"{attribute.name} must be an integer from 1 to 16 pixels, got {value!r}")


def _check_margin(_instance, attribute, value):
    if not 0.0 <= value < 0.5:
        raise ValueError(f"{attribute.name} must be a fraction in [0, 0.5), got {value!r}")


def _check_flip(_instance, attribute, value):
    if value not in (True, False, "auto"):
        raise ValueError(f"{attribute.name} must be true, false or 'auto', got {value!r}")


@attrs.frozen
class SketchConfig:
    """Options of `landmark_sketch`; the keys of `config:` in a pipeline spec.

    Colours are (R, G, B): geneface frames are RGB, and cv2 writes the triple as given.
    """

    size: int = attrs.field(default=256, validator=_check_size)  # panel height and width, px
    background: tuple[int, int, int] = attrs.field(default=(255, 255, 255), converter=tuple, validator=_check_rgb)
    color: tuple[int, int, int] = attrs.field(default=(40, 40, 40), converter=tuple, validator=_check_rgb)
    mouth_color: tuple[int, int, int] = attrs.field(default=(214, 39, 40), converter=tuple, validator=_check_rgb)
    line_thickness: int = attrs.field(default=1, validator=_check_thickness)
    show_side: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    # "auto": y-up data is recognised by its chin lying above its brows.
    # A Literal (not Union[bool, ...]) so a bad value is reported with the allowed ones.
    flip_y: Literal["auto", True, False] = attrs.field(default="auto", validator=_check_flip)
    margin: float = attrs.field(default=0.08, converter=float, validator=_check_margin)
    show_counter: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))


def y_points_up(landmarks: np.ndarray) -> bool:
    """Whether (T x) 68 x 3 landmarks have y pointing up: the chin (8) above the brows (17-26)."""
    lm = np.asarray(landmarks).reshape(-1, 68, 3)
    return bool(lm[:, L68.CHIN, 1].mean() < lm[:, L68.BROWS, 1].mean())


def fit_panels(
    landmarks: np.ndarray, size: int, margin: float = 0.08, flip_y: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Panel pixel coordinates (front (x, y), side (z, y)), each T x 68 x 2 float.

    The whole motion's bounding box, centred, is scaled by one factor so that its largest
    side fills the panel less `margin` on each edge.
    """
    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 68, 3)
    lo = lm.min(axis=(0, 1))
    hi = lm.max(axis=(0, 1))
    extent = max(float((hi - lo).max()), 1e-12)  # a motion that is one point stays centred
    scale = size * (1.0 - 2.0 * margin) / extent
    mid = (size - 1) / 2.0  # the centre of the panel's pixel grid
    px = (lm - (lo + hi) / 2.0) * scale + mid
    if flip_y:
        px[..., 1] = 2.0 * mid - px[..., 1]
    return px[..., [0, 1]], px[..., [2, 1]]


class LandmarkSketch(Renderer):
    """Motion -> a landmark sketch: no model, no weights; for checking motion by eye."""

    name = "landmark_sketch"
    description = "Front + side sketch of 68-point motion, mouth highlighted; no model, for checking motion"
    Config = SketchConfig
    # cv2 is imported when rendering, so a missing OpenCV shows this plugin as unavailable
    # in `geneface plugins` instead of failing the import of the whole module.
    requires = ("cv2",)

    def frame_size(self) -> tuple[int, int]:
        size = self.config.size
        return (size, 2 * size) if self.config.show_side else (size, size)

    def _flip(self, landmarks: np.ndarray) -> bool:
        flip = self.config.flip_y
        return y_points_up(landmarks) if flip == "auto" else bool(flip)

    def _template(self, cv2) -> np.ndarray:
        """The parts of a frame that never change: background, panel labels, divider."""
        cfg = self.config
        height, width = self.frame_size()
        frame = np.empty((height, width, 3), np.uint8)
        frame[:] = cfg.background
        muted = tuple(int(2 * b + c) // 3 for b, c in zip(cfg.background, cfg.color))
        baseline = int(round(cfg.size * 0.06))
        self._text(cv2, frame, "front", (6, baseline), muted)
        if cfg.show_side:
            cv2.line(frame, (cfg.size, 0), (cfg.size, height - 1), muted, 1)
            self._text(cv2, frame, "side", (cfg.size + 6, baseline), muted)
        return frame

    def _text(self, cv2, frame: np.ndarray, text: str, origin: tuple[int, int], color) -> None:
        scale = self.config.size / 640.0  # text keeps its share of the panel at any size
        cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)

    def stream_problem(self) -> str:
        return ("one scale and offset are fitted to the landmark range of the whole motion (and y-up is judged "
                "over all of it), so no frame is final before the last")

    def render(self, motion: Motion, camera: Optional[Camera] = None) -> Iterator[np.ndarray]:
        """Yield one RGB uint8 frame per motion frame. `camera` is ignored: the sketch shows
        the canonical, pose-free landmarks."""
        import cv2

        cfg = self.config
        front, side = fit_panels(motion.landmarks, cfg.size, cfg.margin, self._flip(motion.landmarks))
        panels = [front]
        if cfg.show_side:
            side[..., 0] += cfg.size  # the side panel sits right of the front one
            panels.append(side)
        # Fixed-point ints for every frame at once: one vectorised pass instead of per frame.
        fixed = [np.rint(p * ONE).astype(np.int32) for p in panels]
        template = self._template(cv2)
        color, mouth_color = cfg.color, cfg.mouth_color
        thick = cfg.line_thickness
        radius = max(1, cfg.size // 128) * ONE
        counter_at = (6, cfg.size - int(round(cfg.size * 0.03)))
        aa = cv2.LINE_AA
        for t in range(motion.n_frames):
            frame = template.copy()  # a fresh array per frame: callers may keep frames
            for panel in fixed:
                pts = panel[t]
                cv2.polylines(frame, [pts[s] for s in OPEN_CONTOURS], False, color, thick, aa, SHIFT)
                cv2.polylines(frame, [pts[s] for s in CLOSED_CONTOURS], True, color, thick, aa, SHIFT)
                cv2.polylines(frame, [pts[s] for s in MOUTH_CONTOURS], True, mouth_color, thick, aa, SHIFT)
                # tolist(): cv2 parses plain ints fastest, and numpy scalars not in every version.
                for i, centre in enumerate(pts.tolist()):
                    dot = mouth_color if i >= MOUTH_START else color
                    cv2.circle(frame, centre, radius, dot, -1, aa, SHIFT)
            if cfg.show_counter:
                self._text(cv2, frame, f"frame {t}  {t / motion.fps:.2f} s", counter_at, color)
            yield frame
