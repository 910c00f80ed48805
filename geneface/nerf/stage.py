"""What every person-specific NeRF renderer stage shares (`hashgrid_nerf`, `vanilla_nerf`).

The net (a geneface.nerf.person.PersonCanvas) holds the training video's statistics and
camera (`condition.mean`, `camera()`, `c2w`, `intrinsics`, `plate`); the stage checks the
motion's layout against them, gives the training video's poses and camera (looped back and
forth) as its default head path, fits the head path it is handed to the motion, then yields
frames one at a time (`to_uint8`: the float frame as the uint8 one it yields).

Clips. A renderer trained on a person of several clips holds one plate per clip and draws a
render over one of them: its config's `clip` (a clip's name or index; default the first),
or the one `use_clip` names (`geneface bench renderers` scores each held-out frame over its
own clip's plate so). Its default head path is that clip's poses, looped back and forth.

The camera a renderer is handed is honoured: every frame is cast with its poses, focal length
and principal point (cx / cy None: the image centre), so a pose file's intrinsics reach the
rays; the torso and plate stay as trained (geneface.nerf.person says why). What cannot be
honoured is refused in one line naming the key (`StageMismatchError`), never dropped: a
width or height other than the renderer's, a focal length that is not positive and finite,
and any Camera field the rays do not read.
"""

from __future__ import annotations

import math
from typing import Iterator, Optional

import attrs
import numpy as np

from geneface.core.camera_io import camera_for_length
from geneface.core.landmarks68 import layout_problem
from geneface.core.net_stage import TorchStage
from geneface.core.records import Camera, Motion
from geneface.core.stages import Renderer
from geneface.errors import StageMismatchError

# The Camera fields the renderer casts rays from; any other field set on a camera is refused.
HONOURED_CAMERA_KEYS = frozenset({"focal", "width", "height", "c2w", "cx", "cy"})


def to_uint8(frame) -> np.ndarray:
    """A rendered float frame (torch, [0, 1]) as the uint8 frame a renderer yields."""
    import torch

    return (frame * 255.0).round().to(torch.uint8).cpu().numpy()


def _unset(value, default) -> bool:
    return value is None or (default is not attrs.NOTHING and np.array_equal(value, default))


class PersonNeRF(TorchStage, Renderer):
    needs_camera = True

    def frame_size(self) -> tuple[int, int]:
        return self.config.size, self.config.size

    def default_head_path(self, n_frames: int) -> Optional[Camera]:
        # The chosen clip's poses (the whole video's for one video) and camera, looped back and forth.
        from geneface.nerf.person import clip_ranges

        c2w = self.net.c2w.cpu().numpy()
        start, end = clip_ranges(getattr(self.config, "clip_frames", ()), len(c2w))[self.clip_index()]
        return camera_for_length(self.net.camera(c2w[start:end]), n_frames)

    # -- clips ---------------------------------------------------------------------------
    def _resolve_clip(self, clip, key: str) -> int:
        from geneface.nerf.person import resolve_clip

        try:
            return resolve_clip(getattr(self.config, "clips", ()), clip)
        except ValueError as exc:
            raise StageMismatchError(f"renderer '{self.name}': {key}: {exc}") from None

    def clip_index(self) -> int:
        """The clip renders draw over: `use_clip`'s if set, else the config's `clip`."""
        chosen = getattr(self, "_use_clip", None)
        if chosen is not None:
            return chosen
        # A renderer whose config has no `clip` (a plugin of one video's) draws its one plate.
        return self._resolve_clip(getattr(self.config, "clip", None), "config clip")

    def use_clip(self, clip) -> None:
        """Draw the following renders over clip `clip` (a name or index among the renderer's
        clips; None: back to the config's `clip`); a clip it does not hold is one line."""
        self._use_clip = None if clip is None else self._resolve_clip(clip, "clip")

    def check_input(self, record) -> Optional[str]:
        problem = super().check_input(record)
        if problem is not None:
            return problem
        return layout_problem(self.net.condition.mean.cpu().numpy(), record.landmarks)

    def camera_problem(self, camera: Camera) -> Optional[str]:
        """Why this renderer cannot honour `camera` (one line naming the key), or None."""
        size = self.config.size
        if (camera.width, camera.height) != (size, size):
            return f"camera is {camera.width} x {camera.height} px, the renderer was trained at {size} x {size}"
        if not (math.isfinite(camera.focal) and camera.focal > 0):
            return f"camera focal must be positive and finite, got {camera.focal}"
        for field in attrs.fields(Camera):
            if field.name not in HONOURED_CAMERA_KEYS and not _unset(getattr(camera, field.name), field.default):
                return (f"camera key '{field.name}' is not supported (the renderer casts pinhole rays from "
                        "focal, cx, cy)")
        return None

    def prepare(self, motion: Motion, camera: Optional[Camera]) -> Camera:
        """Check `motion` and `camera`; the camera path fitted to the motion's length (the
        default one if None)."""
        self.clip_index()  # a clip the config names and the renderer does not hold: one line, first
        problem = self.check_input(motion)
        if problem:
            raise StageMismatchError(f"renderer '{self.name}': {problem}")
        camera = camera_for_length(camera if camera is not None else self.default_head_path(motion.n_frames),
                                   motion.n_frames)
        problem = self.camera_problem(camera)
        if problem:
            raise StageMismatchError(f"renderer '{self.name}': {problem}")
        return camera

    def frames(self, conditions: Iterator, camera: Camera) -> Iterator[np.ndarray]:
        """uint8 frames from per-frame landmark arrays (numpy) and the camera: its poses, focal
        length and principal point. On a CPU with several torch threads, frames are drawn
        side by side (`frame_parallel`)."""
        import torch

        from geneface.nerf.person import intrinsics_of

        device = self.net.plate.device
        intrinsics = intrinsics_of(camera)
        # `clip` only to a model of several clips: a one-video model's render_frame need not take it.
        clip = {"clip": self.clip_index()} if self.net.plate.dim() == 4 else {}

        def draw(i: int, landmarks: np.ndarray) -> np.ndarray:
            frame = self.net.render_frame(torch.from_numpy(landmarks).to(device),
                                          torch.from_numpy(camera.c2w[i]).to(device), intrinsics=intrinsics,
                                          **clip)
            return to_uint8(frame)

        workers = torch.get_num_threads() if device.type == "cpu" else 1
        if workers < 2:
            for i, landmarks in enumerate(conditions):
                yield draw(i, landmarks)
            return
        yield from frame_parallel(draw, conditions, workers)


def frame_parallel(draw, conditions: Iterator, workers: int) -> Iterator[np.ndarray]:
    """`draw(i, conditions[i])` for each item, `workers` frames at a time on threads with one
    torch thread each, yielded in order.

    A frame is a few hundred small tensor operations; split over threads each one pays a
    fork and join that costs about as much as its work at 128 px, so two threads drew a frame
    barely faster than one (measured: 13.5 against 12.4 fps). Whole frames side by side keep
    every core busy instead. torch's thread count is process-wide: it is 1 while frames are
    drawn and restored between yields' batches and at the end. Each frame is drawn with one
    thread either way, so the frames do not depend on `workers`."""
    import torch

    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="geneface-frame") as pool:
            pending: deque = deque()
            for i, landmarks in enumerate(conditions):
                pending.append(pool.submit(draw, i, landmarks))
                if len(pending) >= workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
    finally:
        torch.set_num_threads(threads)
