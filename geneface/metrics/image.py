"""Full-reference image scores of a rendered frame against the real one: PSNR and SSIM, on
the whole frame and on the face box; the face and mouth boxes themselves.

These are THE definitions of "PSNR", "PSNR face" and "PSNR mouth" in geneface: training's
validation of the person renderers (geneface.training.person_renderer_task), `geneface bench
renderers` and `geneface eval` all score with `psnr` / `psnr_box` and the boxes of
`face_box` / `mouth_box`, so their numbers are comparable. (The torch `psnr` of
geneface.nerf.losses, logged per training step on ray batches, is the same formula and cap.)

Conventions (the same for every function here):

- Images are RGB `H x W x 3` (or grey `H x W`), either uint8 (0-255) or float in [0, 1];
  the two images of a pair must have the same shape. Everything is computed in float64
  on [0, 1] (uint8 is divided by 255), so a uint8 pair and its float copy score the same.
- PSNR is in dB: `10 log10(1 / MSE)` over all pixels and channels. Identical images score
  `PSNR_MAX` (100 dB), not infinity, so that means over frames stay finite; 100 dB is an
  MSE of 1e-10, far below one grey level of difference (8-bit quantisation alone is ~59 dB).
- SSIM is scikit-image's `structural_similarity` with Wang et al. (2004)'s settings: an
  11 x 11 Gaussian window (sigma 1.5), population covariances, K1 0.01, K2 0.03, averaged
  over channels. These are the settings of the paper and of the SSIM most talking-head and
  NeRF code bases compute in torch; skimage's own defaults (a 7 x 7 box) read higher.
- The face box (the 68 points grown by `FACE_BOX_MARGIN`, 10 % a side) and the mouth box
  (points 48-67 grown by `MOUTH_BOX_MARGIN`, 25 % a side) come from the *real* frame's 68
  keypoints (dataset `landmarks/image68.npy`), so both images are cropped at the same place
  and a wrong render cannot move its own box.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

import attrs
import numpy as np

from geneface.core.landmarks68 import MOUTH
from geneface.errors import UsageError

PSNR_MAX = 100.0  # dB, what identical images score
FACE_BOX_MARGIN = 0.1  # the face box: the 68 points' box grown by this share of its side, each side
MOUTH_BOX_MARGIN = 0.25  # the mouth box: points 48-67's box grown by this share of its side, each side
SSIM_SIGMA = 1.5  # Gaussian window of Wang et al.; skimage truncates at 3.5 sigma -> 11 x 11
SSIM_MIN_SIDE = 11  # an image (or face box) smaller than the window cannot be scored

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels; x1, y1 exclusive
_END = object()


def as_unit_float(image: np.ndarray, name: str = "image") -> np.ndarray:
    """An image as float64 in [0, 1]: uint8 divided by 255, float checked to lie in [0, 1]."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise UsageError(f"{name}: expected an H x W x 3 (or H x W) image, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    if not np.issubdtype(image.dtype, np.floating):
        raise UsageError(f"{name}: expected uint8 or float pixels, got {image.dtype}")
    out = image.astype(np.float64)
    if not np.isfinite(out).all():
        raise UsageError(f"{name}: has NaN or infinite pixels")
    # A float image in 0-255 would silently score ~-48 dB; refuse it instead.
    if out.min() < -1e-6 or out.max() > 1.0 + 1e-6:
        raise UsageError(f"{name}: float pixels must lie in [0, 1], found {out.min():.3g}..{out.max():.3g}")
    return np.clip(out, 0.0, 1.0)


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_unit_float(a, "rendered image"), as_unit_float(b, "real image")
    if a.shape != b.shape:
        raise UsageError(f"images differ in shape: rendered {a.shape}, real {b.shape}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images (see the module's conventions); PSNR_MAX if identical."""
    a, b = _pair(a, b)
    mse = float(np.mean(np.square(a - b)))
    return PSNR_MAX if mse <= 10.0 ** (-PSNR_MAX / 10.0) else float(10.0 * np.log10(1.0 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two images, Wang et al.'s settings through scikit-image; 1.0 if identical."""
    from skimage.metrics import structural_similarity

    a, b = _pair(a, b)
    if min(a.shape[:2]) < SSIM_MIN_SIDE:
        raise UsageError(f"image of {a.shape[1]} x {a.shape[0]} px is too small for SSIM (at least {SSIM_MIN_SIDE} px a side)")
    return float(
        structural_similarity(
            a,
            b,
            data_range=1.0,
            channel_axis=-1 if a.ndim == 3 else None,
            gaussian_weights=True,
            sigma=SSIM_SIGMA,
            use_sample_covariance=False,
        )
    )


def face_box(landmarks68_image: np.ndarray, size: Union[int, Sequence[int]], margin: float = FACE_BOX_MARGIN
             ) -> Box:
    """The box around one frame's 68 keypoints (68 x 2 or 68 x 3, image pixels; x, y used),
    grown by `margin` times its width / height on each side and clipped to the image.

    `size` is the image's side (square) or its (height, width). Returns (x0, y0, x1, y1),
    integers, x1 and y1 exclusive. The 68 points run from the brows to the chin, so the box
    leaves out the forehead and hair: it is the part of the face that speech changes.
    """
    return _points_box(landmarks68_image, size, margin, "face box", slice(None))


def mouth_box(landmarks68_image: np.ndarray, size: Union[int, Sequence[int]], margin: float = MOUTH_BOX_MARGIN
              ) -> Box:
    """The box around one frame's mouth (points 48-67 of its 68 keypoints, as `face_box`
    takes them), grown by `margin` times its width / height on each side, clipped."""
    return _points_box(landmarks68_image, size, margin, "mouth box", MOUTH)


def _points_box(landmarks68_image: np.ndarray, size: Union[int, Sequence[int]], margin: float, what: str,
                part: slice) -> Box:
    points = np.asarray(landmarks68_image, np.float64)
    if points.ndim != 2 or points.shape[0] != 68 or points.shape[1] not in (2, 3):
        raise UsageError(f"{what} needs 68 x 2 or 68 x 3 image landmarks, got shape {points.shape}")
    points = points[part, :2]
    if not np.isfinite(points).all():
        raise UsageError(f"{what}: landmarks hold NaN (no face tracked in that frame)")
    if margin < 0:
        raise UsageError(f"{what} margin must be >= 0, got {margin}")
    height, width = (size, size) if np.isscalar(size) else (int(size[0]), int(size[1]))
    lo, hi = points.min(axis=0), points.max(axis=0)
    grow = margin * (hi - lo)
    x0, y0 = np.floor(lo - grow).astype(int)
    x1, y1 = np.ceil(hi + grow).astype(int)
    box = (max(int(x0), 0), max(int(y0), 0), min(int(x1), width), min(int(y1), height))
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        raise UsageError(f"{what} {box} lies outside the {width} x {height} image")
    return box


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.asarray(image)[y0:y1, x0:x1]


def psnr_box(a: np.ndarray, b: np.ndarray, box: Box) -> float:
    return psnr(crop(a, box), crop(b, box))


def ssim_box(a: np.ndarray, b: np.ndarray, box: Box) -> float:
    # SSIM of the cropped pair (windows stay inside the box, as when evaluating face crops).
    return ssim(crop(a, box), crop(b, box))


@attrs.frozen
class ImageScores:
    """PSNR (dB) and SSIM of a rendered frame against the real one: full frame and face box
    (None when no box was given, or over a sequence where no frame had one)."""

    psnr: float
    ssim: float
    psnr_face: Optional[float] = None
    ssim_face: Optional[float] = None


def score_pair(rendered: np.ndarray, real: np.ndarray, box: Optional[Box] = None) -> ImageScores:
    """All image scores of one frame; `box` usually `face_box(real frame's landmarks, size)`."""
    return ImageScores(
        psnr=psnr(rendered, real),
        ssim=ssim(rendered, real),
        psnr_face=None if box is None else psnr_box(rendered, real, box),
        ssim_face=None if box is None else ssim_box(rendered, real, box),
    )


@attrs.define
class RunningScores:
    """Mean of `ImageScores` over a sequence, one frame at a time (frames need not be kept).

    The mean of per-frame PSNR, as the field reports it (not PSNR of the pooled MSE). Face
    scores are averaged over the frames that had a box; `n_face` says how many.
    """

    n: int = 0
    n_face: int = 0
    _sum: np.ndarray = attrs.field(factory=lambda: np.zeros(4))

    def add(self, scores: ImageScores) -> None:
        self.n += 1
        self._sum[:2] += (scores.psnr, scores.ssim)
        if scores.psnr_face is not None:
            self.n_face += 1
            self._sum[2:] += (scores.psnr_face, scores.ssim_face)

    def mean(self) -> ImageScores:
        if self.n == 0:
            raise UsageError("no frames were scored")
        face = self._sum[2:] / self.n_face if self.n_face else (None, None)
        return ImageScores(
            psnr=float(self._sum[0] / self.n),
            ssim=float(self._sum[1] / self.n),
            psnr_face=None if face[0] is None else float(face[0]),
            ssim_face=None if face[1] is None else float(face[1]),
        )


def score_sequence(
    rendered: Iterable[np.ndarray], real: Iterable[np.ndarray], boxes: Optional[Iterable[Optional[Box]]] = None
) -> tuple[ImageScores, int]:
    """Mean scores over paired frames (streamed) and the number of frames.

    The two sequences must have the same length; `boxes` (one per frame, or None) too.
    """
    running = RunningScores()
    rendered_it, real_it = iter(rendered), iter(real)
    boxes_it = iter(boxes) if boxes is not None else None
    index = 0
    while True:
        a, b = next(rendered_it, None), next(real_it, None)
        if a is None or b is None:
            if a is not None or b is not None:
                longer = "rendered" if a is not None else "real"
                raise UsageError(f"the {longer} sequence is longer: the other one ended at frame {index}")
            break
        box = next(boxes_it, _END) if boxes_it is not None else None
        if box is _END:
            raise UsageError(f"face boxes ended at frame {index}, before the frames did")
        try:
            running.add(score_pair(a, b, box))
        except UsageError as exc:
            raise UsageError(f"frame {index}: {exc}") from None
        index += 1
    return running.mean(), running.n
