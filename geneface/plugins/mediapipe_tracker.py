"""FaceTracker `mediapipe`: mediapipe's 478-point face mesh, tracked from frame to frame.

Uses the legacy `mp.solutions` graph of mediapipe 0.10.21, whose weights ship inside the
wheel (nothing is downloaded). Points come back in image pixels: x, y, and a relative depth
z in the same scale as x (mediapipe's convention: origin near the head's centre, smaller is
nearer the camera).

Tracking: mediapipe itself runs in video mode (each frame's landmark search starts from the
previous frame's face), and on top of that this plugin keeps *one* identity: when several
faces are found it follows the one nearest to the face it tracked last (the largest face at
the start), and reports how many faces it saw so the caller can flag the frame.

Confidence: mediapipe's legacy graph exposes no landmark score, only its face detections.
Asking for two faces makes the graph re-run its detector on every frame that shows fewer
than two (about 1 ms), so the tracked face's detection score is available per frame; on a
frame where no detection matches the tracked face the previous confidence is carried, since
the landmark model has already passed its own presence threshold (min_tracking_confidence).
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Iterator, Optional

import attrs
import numpy as np

from geneface import hookimpl
from geneface.core.landmarks68 import POSE_MESH, mesh_to_68
from geneface.core.native_log import native_logs_silenced
from geneface.core.stages import FaceTracker, TrackedFrame

_DETECTOR_SCORE_PARAM = (
    "facedetectionshortrangecpu__facedetectionshortrange__facedetection__"
    "TensorsToDetectionsCalculator.min_score_thresh"
)
_TRACKING_SCORE_PARAM = "facelandmarkcpu__ThresholdingCalculator.threshold"


@attrs.define
class MediapipeTrackerConfig:
    # Two, not one: with one the graph stops looking for other faces once it tracks one, so
    # a second person would go unnoticed (and the per-frame detection score would be lost).
    max_faces: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    min_detection_confidence: float = attrs.field(default=0.5, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])
    min_tracking_confidence: float = attrs.field(default=0.5, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])


def _open_graph(config: MediapipeTrackerConfig):
    """Mediapipe's FaceMesh graph, also returning its face detections (for the score)."""
    from mediapipe.python.solution_base import SolutionBase
    from mediapipe.python.solutions import face_mesh

    return SolutionBase(
        binary_graph_path=face_mesh._BINARYPB_FILE_PATH,
        side_inputs={
            "num_faces": config.max_faces,
            "with_attention": True,  # refine_landmarks=True: 478 points incl. lips/eyes/irises
            "use_prev_landmarks": True,  # video mode: track from the previous frame
        },
        calculator_params={
            _DETECTOR_SCORE_PARAM: config.min_detection_confidence,
            _TRACKING_SCORE_PARAM: config.min_tracking_confidence,
        },
        outputs=["multi_face_landmarks", "face_detections"],
    )


def _points(face, width: int, height: int) -> np.ndarray:
    raw = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float64)
    return (raw * np.array([width, height, width], dtype=np.float64)).astype(np.float32)


def _detection_boxes(detections, width: int, height: int) -> list[tuple[np.ndarray, float]]:
    out = []
    for det in detections or []:
        box = det.location_data.relative_bounding_box
        centre = np.array([(box.xmin + box.width / 2) * width, (box.ymin + box.height / 2) * height])
        out.append((centre, float(det.score[0]) if det.score else 0.0))
    return out


class MediapipeTracker(FaceTracker):
    name = "mediapipe"
    description = "Mediapipe face mesh (478 3-D points, bundled weights), tracked over time, CPU"
    Config = MediapipeTrackerConfig
    requires = ("mediapipe",)

    n_points = 478
    # Forehead, nose bridge, eye corners: what the pose is fitted on (see landmarks68).
    stable_points = POSE_MESH

    def track(self, frames: Iterator[np.ndarray]) -> Iterator[TrackedFrame]:
        # The graph's threads log (absl, TensorFlow Lite) from its opening until its models have
        # met the first frame, so one quiet stretch spans both; our own writes in it are kept.
        quiet = ExitStack()
        quiet.enter_context(native_logs_silenced())
        graph = None
        previous_centre: Optional[np.ndarray] = None
        confidence = 0.0
        try:
            graph = _open_graph(self.config)
            for frame in frames:
                if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                    raise ValueError(f"expected uint8 H x W x 3 RGB frames, got {frame.dtype} {frame.shape}")
                height, width = frame.shape[:2]
                result = graph.process(np.ascontiguousarray(frame))
                quiet.close()
                faces = [_points(f, width, height) for f in (result.multi_face_landmarks or [])]
                detections = _detection_boxes(result.face_detections, width, height)
                n_faces = max(len(faces), len(detections))
                if not faces:
                    yield TrackedFrame(points=None, confidence=0.0, n_faces=n_faces)
                    continue
                centres = [f[:, :2].mean(axis=0) for f in faces]
                if previous_centre is None:
                    # Start on the largest face: in a talking-head video that is the speaker.
                    spans = [np.ptp(f[:, 0]) * np.ptp(f[:, 1]) for f in faces]
                    chosen = int(np.argmax(spans))
                else:
                    chosen = int(np.argmin([np.linalg.norm(c - previous_centre) for c in centres]))
                points = faces[chosen]
                previous_centre = centres[chosen]
                if detections:
                    # The detection whose box centre lies nearest the tracked face is its own.
                    size = max(np.ptp(points[:, 0]), np.ptp(points[:, 1]), 1.0)
                    dist, score = min((np.linalg.norm(c - previous_centre), s) for c, s in detections)
                    if dist < 0.5 * size:
                        confidence = score
                yield TrackedFrame(points=points, confidence=float(confidence), n_faces=n_faces)
        finally:
            quiet.close()
            if graph is not None:
                graph.close()

    def to68(self, points: np.ndarray) -> np.ndarray:
        return mesh_to_68(points)


@hookimpl
def register_face_trackers(register):
    register(MediapipeTracker)
