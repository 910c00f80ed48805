"""The standard 68-keypoint layout, read off mediapipe's 478-point face mesh.

The 68 points follow the iBUG 300-W convention that GeneFace's motion targets use
(0-based, "left"/"right" as seen in the image, so "right eye" is the subject's right eye):

    ======  =======  ==============================================
    points  region   order
    ======  =======  ==============================================
    0-16    jaw      image-left ear -> chin (8) -> image-right ear
    17-21   brow     image-left brow, outer -> inner
    22-26   brow     image-right brow, inner -> outer
    27-30   nose     bridge, top (between the eyes) -> tip
    31-35   nose     lower edge, image-left alar -> columella -> image-right alar
    36-41   eye      image-left eye: outer corner, upper lid x2, inner corner, lower lid x2
    42-47   eye      image-right eye: inner corner, upper lid x2, outer corner, lower lid x2
    48-59   mouth    outer lip: left corner, upper lip -> right corner (54), lower lip back
    60-67   mouth    inner lip: left corner, upper inner -> right corner (64), lower inner
    ======  =======  ==============================================

Mediapipe's mesh has no exact counterpart for every 68-point (its jaw line runs along the
visible cheek contour rather than the bone), so the chosen vertex is the nearest mesh vertex
on the same contour, picked against mediapipe's published mesh topology and checked on
a tracked face (tests/test_landmarks68.py: regions, anatomical layout, openness helpers). Points 468-477 of the refined mesh are the irises and are never used here.
"""

from __future__ import annotations

import numpy as np

N_MESH = 478
N_68 = 68

# Region by region so a wrong index is easy to spot against mediapipe's mesh diagram.
_JAW = [127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356]
_BROW_L = [70, 63, 105, 66, 107]
_BROW_R = [336, 296, 334, 293, 300]
_NOSE_BRIDGE = [168, 197, 5, 4]
_NOSE_LOWER = [75, 97, 2, 326, 305]
_EYE_L = [33, 160, 158, 133, 153, 144]
_EYE_R = [362, 385, 387, 263, 373, 380]
_LIP_OUTER = [61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91]
_LIP_INNER = [78, 81, 13, 311, 308, 402, 14, 178]

#: 68 indices into the 478-point mesh; ``mesh[MESH_TO_68]`` is the 68-point layout.
MESH_TO_68: np.ndarray = np.array(
    _JAW + _BROW_L + _BROW_R + _NOSE_BRIDGE + _NOSE_LOWER + _EYE_L + _EYE_R + _LIP_OUTER + _LIP_INNER,
    dtype=np.int64,
)
MESH_TO_68.setflags(write=False)

# Slices into the 68-point layout.
JAW = slice(0, 17)
BROWS = slice(17, 27)
BROW_LEFT = slice(17, 22)
BROW_RIGHT = slice(22, 27)
NOSE = slice(27, 36)
NOSE_BRIDGE = slice(27, 31)
EYES = slice(36, 48)
EYE_LEFT = slice(36, 42)
EYE_RIGHT = slice(42, 48)
MOUTH = slice(48, 68)
LIPS_OUTER = slice(48, 60)
LIPS_INNER = slice(60, 68)

#: Index arrays for the same regions (for fancy indexing and concatenation).
JAW_IDX = np.arange(0, 17)
BROWS_IDX = np.arange(17, 27)
NOSE_IDX = np.arange(27, 36)
EYES_IDX = np.arange(36, 48)
MOUTH_IDX = np.arange(48, 68)

#: Points that move with the skull but hardly with expression: brows' inner ends, nose
#: bridge and the eye corners. Lips and jaw are excluded on purpose: speech moves them, and
#: a pose fitted to them would turn mouth opening into head nodding.
STABLE_68 = np.array([19, 20, 21, 22, 23, 24, 27, 28, 29, 30, 36, 39, 42, 45], dtype=np.int64)

#: The same idea on the dense mesh, for a pose fit with more support: forehead, temples,
#: nose bridge and eye corners (mediapipe vertex ids). Brows are left out here because
#: the forehead carries the same rigid information without the brow raises.
STABLE_MESH = np.array(
    [
        10, 151, 9, 8, 168, 6, 197, 195, 5, 4,  # midline: forehead -> nose tip
        109, 67, 103, 338, 297, 332,  # upper forehead
        108, 69, 104, 337, 299, 333,  # lower forehead
        33, 133, 362, 263,  # eye corners
        226, 446, 130, 359,  # outer canthi neighbours
        122, 351, 245, 465,  # nose root sides
        127, 356, 162, 389,  # temples
    ],
    dtype=np.int64,
)
STABLE_MESH = np.unique(STABLE_MESH)

#: STABLE_MESH without the two temple vertices that double as jaw points 0 and 16: what
#: `geneface process` fits the head pose on, so no point named "jaw" ever steers the pose.
POSE_MESH = np.setdiff1d(STABLE_MESH, MESH_TO_68[JAW])

# Named 68-point landmarks used by later stages.
EYE_CORNERS = np.array([36, 39, 42, 45], dtype=np.int64)
MOUTH_CORNERS = np.array([48, 54], dtype=np.int64)
CHIN = 8
NOSE_TIP = 30

#: Upper/lower lid pairs of each eye (for an eye-openness measure): (37, 41), (38, 40), ...
EYE_LID_PAIRS = np.array([[37, 41], [38, 40], [43, 47], [44, 46]], dtype=np.int64)
#: Upper/lower inner-lip pairs (for a mouth-openness measure).
LIP_INNER_PAIRS = np.array([[61, 67], [62, 66], [63, 65]], dtype=np.int64)


def mesh_to_68(points: np.ndarray) -> np.ndarray:
    """Select the 68 keypoints from mesh points shaped (..., 478, 3) (or (..., 468, 3)).

    Works on any leading batch shape; returns a view-free copy shaped (..., 68, 3).
    """
    points = np.asarray(points)
    if points.ndim < 2 or points.shape[-2] < 468 or points.shape[-1] not in (2, 3):
        raise ValueError(f"mesh_to_68 expects (..., 478, 3) mesh points, got shape {points.shape}")
    return points[..., MESH_TO_68, :]


def eye_openness(lm68: np.ndarray) -> np.ndarray:
    """Mean lid gap over eye width, per eye, for (..., 68, >=2) landmarks -> (..., 2)."""
    lm = np.asarray(lm68, dtype=np.float64)
    gap = np.linalg.norm(lm[..., EYE_LID_PAIRS[:, 0], :2] - lm[..., EYE_LID_PAIRS[:, 1], :2], axis=-1)
    width_l = np.linalg.norm(lm[..., 36, :2] - lm[..., 39, :2], axis=-1)
    width_r = np.linalg.norm(lm[..., 42, :2] - lm[..., 45, :2], axis=-1)
    left = gap[..., :2].mean(-1) / np.maximum(width_l, 1e-9)
    right = gap[..., 2:].mean(-1) / np.maximum(width_r, 1e-9)
    return np.stack([left, right], axis=-1)


def mouth_openness(lm68: np.ndarray) -> np.ndarray:
    """Mean inner-lip gap over mouth width for (..., 68, >=2) landmarks -> (...)."""
    lm = np.asarray(lm68, dtype=np.float64)
    gap = np.linalg.norm(lm[..., LIP_INNER_PAIRS[:, 0], :2] - lm[..., LIP_INNER_PAIRS[:, 1], :2], axis=-1)
    width = np.linalg.norm(lm[..., 48, :2] - lm[..., 54, :2], axis=-1)
    return gap.mean(-1) / np.maximum(width, 1e-9)


OUTER_EYE_CORNERS = (36, 45)  # their distance gives a face's scale


def layout_problem(reference: np.ndarray, landmarks: np.ndarray) -> "str | None":
    """Why `landmarks` (T x 68 x 3) are not in the same layout and units as `reference`
    (68 x 3, e.g. the statistics a model was trained with), or None.

    Judged on the distance between the outer eye corners: canonical faces of different
    people differ by a few per cent; another unit or layout by far more.
    """
    a, b = OUTER_EYE_CORNERS
    expected = float(np.linalg.norm(reference[a] - reference[b]))
    if expected == 0.0:  # untrained: nothing to compare with
        return None
    got = float(np.median(np.linalg.norm(landmarks[:, a] - landmarks[:, b], axis=-1)))
    if not 0.5 < got / expected < 2.0:
        return (f"expects canonical 68-point landmarks (outer eye corners {expected:.3g} apart), got a distance "
                f"of {got:.3g}: another landmark layout or unit")
    return None


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """T x 68 x 3 (or T x 204) -> T: mean 3-D distance between the upper and lower inner lip
    (the synthetic corpus's `mouth_opening` is this very quantity)."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 68, 3)
    return np.linalg.norm(lm[:, LIP_INNER_PAIRS[:, 0]] - lm[:, LIP_INNER_PAIRS[:, 1]], axis=-1).mean(-1)


def as_sequence(array, where: str) -> np.ndarray:
    """Numbers of shape T x 68 x 3 (or T x 204), T > 0, all finite -> float64 T x 68 x 3;
    otherwise a one-line UsageError starting with `where` (a file or a key)."""
    from geneface.errors import UsageError

    array = np.asarray(array)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise UsageError(f"{where}: landmarks must be numbers, got dtype {array.dtype}")
    if array.ndim == 2 and array.shape[1] == 68 * 3:
        array = array.reshape(-1, 68, 3)
    if array.ndim != 3 or array.shape[1:] != (68, 3):
        raise UsageError(f"{where}: landmarks must be T x 68 x 3 (or T x 204), got shape {array.shape}")
    if array.shape[0] == 0:
        raise UsageError(f"{where}: landmark sequence has zero frames")
    if not np.all(np.isfinite(array)):
        bad = int(np.argwhere(~np.isfinite(array))[0][0])
        raise UsageError(f"{where}: landmarks contain NaN or infinite values (first at frame {bad})")
    return array.astype(np.float64, copy=False)
