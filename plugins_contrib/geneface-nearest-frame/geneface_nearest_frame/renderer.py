"""Renderer `nearest_frame`: each motion frame is the person's training frame with the nearest
landmarks, blended over a few neighbours and composited on the dataset's background plate.

No model and no optimiser: "training" (geneface_nearest_frame.fit) indexes the training
frames of one `geneface process` dataset by their canonical landmarks. It is the baseline
every learned renderer must beat: whatever the renderer, a frame the person really made with
a mouth of that shape is the first thing to compare with.

**Matching.** Landmarks (the motion's and the index's) are normalised per coordinate by the
dataset's statistics, z = (landmarks - mean) / std (landmarks/stats.npz, over its train
split), so each coordinate counts in standard deviations of the person's own motion. Each of
the 68 points then gets a weight (`mouth_weight` for 48-67, `eye_weight` for 36-47,
`rest_weight` for the jaw, brows and nose), and the distance between two frames is the
weighted root-mean-square of their z differences:

    d(a, b) = sqrt( sum_p w_p |z_a,p - z_b,p|^2 / (3 sum_p w_p) )

in standard deviations whatever the weights. The defaults (1, 0.5, 0.1) make the mouth decide
(speech moves it, and it is what a viewer checks), let blinks count, and nearly ignore the rest:
in the canonical frame the brows and nose hardly move, so their z-scores are mostly tracking
noise, and the jaw follows the mouth, which already counts.

**Blending.** The `k` nearest training frames are blended with weights from their distances:
`softmax` (w_i ~ exp(-(d_i - d_min) / temperature), temperature in standard deviations) or
`inverse_distance` (w_i ~ 1 / d_i; an exact match takes all). Weights below 1e-3 are dropped
(and the rest renormalised), which changes no pixel by more than a quarter of a grey level and
saves decoding frames that do not count.

**Compositing.** Only the person is blended: each neighbour i contributes its pixels inside its
own person mask a_i (the dataset's head and torso labels), over the plate P:

    out = P + sum_i w_i a_i (frame_i - P)

so where every neighbour has the person the output is their weighted mean, where none has it
the plate shows, and in between (a head that moved between the neighbours) the person fades
into the plate: an honest ghost rather than a smear of two backgrounds.

**Pose.** The canonical landmarks carry no head pose; the pose of a rendered frame is whatever
its chosen training frames had. So `needs_camera` is False and a camera path (`input.poses`)
is ignored; neighbours in different poses show as a soft double outline.

**What the checkpoint holds** (so `geneface run` needs nothing but it): the training frames'
canonical landmarks, the statistics, the dataset frame number of each, the plate, and the
frames and masks themselves as the dataset's own JPEG and PNG bytes, concatenated into two
uint8 tensors with offsets (no re-encoding: a training frame comes back bit for bit). Frames are
decoded when a motion frame needs them, through a small cache, one output frame at a time, so
memory is the checkpoint plus a few decoded frames, whatever the length of the motion.

**Streaming.** A frame is made from its own landmarks and the index alone, so the renderer
streams exactly with no context (`stream_context`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterator, Literal, Optional

import attrs
import numpy as np

from geneface.core import landmarks68 as L68
from geneface.core.dataset import HEAD, TORSO
from geneface.core.landmarks68 import layout_problem
from geneface.core.net_stage import check_state_keys
from geneface.core.records import Camera, Motion
from geneface.core.stages import Renderer, StreamContext
from geneface.errors import CheckpointError, StageMismatchError, UsageError
from geneface_nearest_frame import __version__

FIT_COMMAND = "geneface train renderer --plugin nearest_frame --data DATASET --out DIR"
STATE_KEYS = ("landmarks", "mean", "std", "frame_index", "plate", "jpeg", "jpeg_offsets", "mask_png", "mask_offsets")
STD_FLOOR = 1e-6  # as Motion.normalized: a coordinate that never moved
MIN_WEIGHT = 1e-3  # blend weights below this are dropped (the rest renormalised)
CHUNK = 256  # motion frames matched at once: memory CHUNK x training frames, whatever the motion's length
MAX_K = 64


def _check_k(_instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_K:
        raise ValueError(f"{attribute.name} must be a whole number of frames from 1 to {MAX_K}, got {value!r}")


def _check_weighting(_instance, attribute, value):
    if value not in ("softmax", "inverse_distance"):
        raise ValueError(f"{attribute.name} must be 'softmax' or 'inverse_distance', got {value!r}")


def _positive(_instance, attribute, value):
    if not value > 0:
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


def _non_negative(_instance, attribute, value):
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be a number >= 0, got {value!r}")


@attrs.frozen
class NearestFrameConfig:
    """Options of `nearest_frame`: how frames are matched and blended (the keys of `config:`).

    All of them act at render time, so a spec may change them on a fitted checkpoint.
    """

    k: int = attrs.field(default=4, validator=_check_k)  # training frames blended (1: the nearest alone)
    weighting: Literal["softmax", "inverse_distance"] = attrs.field(default="softmax", validator=_check_weighting)
    temperature: float = attrs.field(default=0.1, converter=float, validator=_positive)  # softmax, in std devs
    mouth_weight: float = attrs.field(default=1.0, converter=float, validator=_non_negative)  # points 48-67
    eye_weight: float = attrs.field(default=0.5, converter=float, validator=_non_negative)  # points 36-47
    rest_weight: float = attrs.field(default=0.1, converter=float, validator=_non_negative)  # jaw, brows, nose

    def __attrs_post_init__(self):
        if self.mouth_weight + self.eye_weight + self.rest_weight <= 0:
            raise ValueError("mouth_weight, eye_weight and rest_weight are all 0: nothing left to match on")

    def point_weights(self) -> np.ndarray:
        """One weight per landmark (68,)."""
        w = np.full(68, self.rest_weight, np.float64)
        w[L68.EYES] = self.eye_weight
        w[L68.MOUTH] = self.mouth_weight
        return w


def blend_weights(distances: np.ndarray, weighting: str, temperature: float) -> np.ndarray:
    """Blend weights (B x k, rows sum to one) from neighbour distances (B x k, ascending)."""
    d = np.asarray(distances, np.float64)
    if weighting == "softmax":
        w = np.exp(-(d - d[:, :1]) / temperature)
    else:
        w = 1.0 / np.maximum(d, 1e-9)
    w /= w.sum(1, keepdims=True)
    w[w < MIN_WEIGHT] = 0.0  # the nearest always stays: its weight is the largest, >= 1/k
    return w / w.sum(1, keepdims=True)


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _check_blob(name: str, blob: np.ndarray, offsets: np.ndarray, n: int) -> None:
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise ValueError(f"'{name}' must be a 1-D uint8 tensor, got {blob.dtype} {blob.shape}")
    if offsets.shape != (n + 1,) or offsets.dtype != np.int64:
        raise ValueError(f"'{name}' offsets must be {n + 1} int64 values, got {offsets.dtype} {offsets.shape}")
    if offsets[0] != 0 or offsets[-1] != len(blob) or (np.diff(offsets) <= 0).any():
        raise ValueError(f"'{name}' offsets do not cut its {len(blob)} bytes into {n} files")


class NearestFrame(Renderer):
    """Motion -> the nearest training frames by landmarks, blended on the plate."""

    name = "nearest_frame"
    description = ("The person's training frame with the nearest landmarks, blended over k neighbours on the plate; "
                   "indexed in seconds, the baseline for learned renderers")
    Config = NearestFrameConfig
    requires = ("cv2",)  # imported when decoding, so a missing OpenCV marks the plugin unavailable
    training = "geneface_nearest_frame.fit:NearestFrameRecipe"
    needs_checkpoint = True  # an empty index renders nothing: a spec must name a checkpoint
    needs_camera = False  # the pose comes with the chosen frames
    version = __version__  # recorded in checkpoints (geneface.core.checkpoint.stage_checkpoint)

    def __init__(self, config=None):
        super().__init__(config)
        self._state: Optional[dict] = None
        self._keys: Optional[np.ndarray] = None  # N x 204 weighted z-scores of the index, float64
        self._keys_sq: Optional[np.ndarray] = None  # |keys|^2 per row

    # -- state ---------------------------------------------------------------------------

    @property
    def fitted(self) -> bool:
        return self._state is not None

    @property
    def n_frames(self) -> int:
        """Training frames in the index."""
        return len(self._require()["landmarks"])

    @property
    def frame_index(self) -> np.ndarray:
        """The dataset frame number of each indexed frame (N,)."""
        return self._require()["frame_index"]

    def _require(self) -> dict:
        if self._state is None:
            raise UsageError(f"renderer '{self.name}' has no index: fit one with `{FIT_COMMAND}` and give the "
                             "spec its checkpoint")
        return self._state

    def state_dict(self) -> dict:
        import torch

        if self._state is None:
            return {}
        return {k: torch.from_numpy(np.ascontiguousarray(self._state[k])) for k in STATE_KEYS}

    def load_state_dict(self, state: dict) -> None:
        """Take the index (tensors or arrays); ValueError naming what does not fit."""
        check_state_keys(state, STATE_KEYS)
        s = {k: _numpy(state[k]) for k in STATE_KEYS}
        lm = s["landmarks"]
        if lm.ndim != 3 or lm.shape[1:] != (68, 3) or len(lm) == 0:
            raise ValueError(f"'landmarks' must be N x 68 x 3 with N >= 1, got {lm.shape}")
        n = len(lm)
        for key in ("mean", "std"):
            if s[key].shape != (68, 3):
                raise ValueError(f"'{key}' must be 68 x 3, got {s[key].shape}")
        if s["frame_index"].shape != (n,):
            raise ValueError(f"'frame_index' must hold {n} frame numbers, got {s['frame_index'].shape}")
        plate = s["plate"]
        if plate.dtype != np.uint8 or plate.ndim != 3 or plate.shape[2] != 3 or plate.shape[0] != plate.shape[1]:
            raise ValueError(f"'plate' must be a square uint8 S x S x 3 image, got {plate.dtype} {plate.shape}")
        _check_blob("jpeg", s["jpeg"], s["jpeg_offsets"], n)
        _check_blob("mask_png", s["mask_png"], s["mask_offsets"], n)
        for key in ("landmarks", "mean", "std"):
            s[key] = s[key].astype(np.float32)
        s["frame_index"] = s["frame_index"].astype(np.int64)
        self._state = s
        self._keys = self._weighted(lm)
        self._keys_sq = (self._keys ** 2).sum(1)

    # -- matching ------------------------------------------------------------------------

    def _weighted(self, landmarks: np.ndarray) -> np.ndarray:
        """(B, 68, 3) landmarks -> (B, 204) z-scores scaled so that Euclidean distance is d above."""
        s = self._state
        z = (np.asarray(landmarks, np.float64) - s["mean"]) / np.maximum(s["std"], STD_FLOOR)
        w = self.config.point_weights()
        scale = np.sqrt(w / (3.0 * w.sum()))
        return (z * scale[None, :, None]).reshape(len(z), -1)

    def neighbours(self, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The min(k, N) nearest indexed frames of each of B frames (B x 68 x 3): positions in
        the index (B x k, nearest first) and distances (B x k, standard deviations)."""
        self._require()
        q = self._weighted(landmarks)
        d2 = (q ** 2).sum(1)[:, None] - 2.0 * q @ self._keys.T + self._keys_sq[None, :]
        k = min(self.config.k, len(self._keys))
        part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < d2.shape[1] else np.tile(np.arange(k), (len(d2), 1))
        part_d2 = np.take_along_axis(d2, part, 1)
        order = np.argsort(part_d2, axis=1, kind="stable")
        picks = np.take_along_axis(part, order, 1)
        return picks, np.sqrt(np.maximum(np.take_along_axis(part_d2, order, 1), 0.0))

    # -- rendering -----------------------------------------------------------------------

    def frame_size(self) -> tuple[int, int]:
        size = self._require()["plate"].shape[0]
        return size, size

    def check_input(self, record) -> Optional[str]:
        problem = super().check_input(record)  # motion at 25 fps
        if problem is not None:
            return problem
        if self._state is None:
            return f"has no index (fit one with `{FIT_COMMAND}`)"
        return layout_problem(self._state["mean"], record.landmarks)

    def stream_context(self) -> StreamContext:
        return StreamContext(0, 0)  # each frame from its own landmarks

    def render(self, motion: Motion, camera: Optional[Camera] = None) -> Iterator[np.ndarray]:
        """One RGB uint8 S x S x 3 frame per motion frame, streamed. `camera` is ignored: each
        frame keeps the head pose of the training frames it is made of."""
        problem = self.check_input(motion)  # here, not at the first frame: the error comes at once
        if problem:
            raise StageMismatchError(f"renderer '{self.name}': {problem}")
        return self._frames(motion.landmarks)

    def _frames(self, landmarks: np.ndarray) -> Iterator[np.ndarray]:
        import cv2

        cfg = self.config
        plate = np.ascontiguousarray(self._state["plate"])
        base = plate.astype(np.float32)
        cache: OrderedDict[int, np.ndarray] = OrderedDict()
        capacity = 2 * cfg.k + 4  # consecutive frames share neighbours: decodes are reused
        for start in range(0, len(landmarks), CHUNK):
            picks, dist = self.neighbours(landmarks[start:start + CHUNK])
            weights = blend_weights(dist, cfg.weighting, cfg.temperature)
            for row_picks, row_weights in zip(picks, weights):
                out = base.copy()
                for i, w in zip(row_picks, row_weights):
                    if w > 0.0:
                        cv2.scaleAdd(self._person_over_plate(int(i), plate, cache, capacity), float(w), out, dst=out)
                # A convex combination of plate and frames, so already within 0..255: round to uint8.
                yield cv2.convertScaleAbs(out)

    def _person_over_plate(self, i: int, plate: np.ndarray, cache: OrderedDict, capacity: int) -> np.ndarray:
        """a_i (frame_i - plate) for indexed frame i (float32 S x S x 3, 0 outside the person),
        through an LRU cache."""
        import cv2

        if i in cache:
            cache.move_to_end(i)
            return cache[i]
        rgb, person = self.decode(i)
        diff = np.zeros(rgb.shape, np.float32)
        cv2.subtract(rgb, plate, dst=diff, mask=person.view(np.uint8), dtype=cv2.CV_32F)  # one pass
        cache[i] = diff
        if len(cache) > capacity:
            cache.popitem(last=False)
        return cache[i]

    def decode(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Indexed frame i as stored: (uint8 RGB S x S x 3, bool person mask S x S: head or torso)."""
        import cv2

        s = self._require()
        size = s["plate"].shape[0]
        jpeg = s["jpeg"][s["jpeg_offsets"][i]:s["jpeg_offsets"][i + 1]]
        png = s["mask_png"][s["mask_offsets"][i]:s["mask_offsets"][i + 1]]
        bgr = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        labels = cv2.imdecode(png, cv2.IMREAD_UNCHANGED)
        if bgr is None or labels is None or bgr.shape != (size, size, 3) or labels.shape != (size, size):
            raise CheckpointError(f"renderer '{self.name}': stored frame {int(s['frame_index'][i])} does not decode to "
                                  f"a {size} x {size} image and mask (a damaged checkpoint?)")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (labels == HEAD) | (labels == TORSO)
