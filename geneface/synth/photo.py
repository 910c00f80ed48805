"""The source photo and its one-time face-mesh tracking.

The default subject is scikit-image's `astronaut()` (a NASA portrait of Eileen Collins,
public domain, shipped inside the scikit-image wheel), so nothing is downloaded. The photo
is tracked once per process with mediapipe's face mesh (bundled weights) and cached.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Optional

import attrs
import numpy as np

from geneface.core.native_log import native_logs_silenced
from geneface.errors import UsageError

_CACHE: dict[str, "PhotoTrack"] = {}
_LOCK = threading.Lock()


@attrs.frozen(eq=False)
class PhotoTrack:
    """A photo (H x W x 3 uint8 RGB) and its 478 face-mesh points in pixels.

    `points[:, 2]` is mediapipe's relative depth, rescaled to pixels like x (smaller =
    nearer the camera).
    """

    image: np.ndarray
    points: np.ndarray
    name: str
    digest: str = ""  # content hash of the image: a stable cache key

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[..., :3])


def _digest(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()[:16]


def track_photo(image: Optional[np.ndarray] = None, name: str = "astronaut") -> PhotoTrack:
    """Track `image` (default: the astronaut) with the face mesh; cached by content."""
    if image is None:
        image, name = astronaut(), "astronaut"
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise UsageError(f"photo must be an RGB uint8 image, got {image.dtype} {image.shape}")
    key = _digest(image)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        points = _run_face_mesh(image)
        if points is None:
            raise UsageError(f"no face found in photo {name!r}")
        track = PhotoTrack(image=image, points=points, name=name, digest=key)
        _CACHE[key] = track
        return track


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


def _run_face_mesh(image: np.ndarray) -> Optional[np.ndarray]:
    import mediapipe as mp

    h, w = image.shape[:2]
    with native_logs_silenced(), mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, refine_landmarks=True, max_num_faces=1, min_detection_confidence=0.5
    ) as mesh:
        result = mesh.process(image)
    if not result.multi_face_landmarks:
        return None
    lm = result.multi_face_landmarks[0].landmark
    # mediapipe's z uses the same scale as x (normalised by image width).
    return np.array([[p.x * w, p.y * h, p.z * w] for p in lm], dtype=np.float64)
