"""Renderer `hashgrid_nerf`: a person-specific talking head (RAD-NeRF's design, ER-NeRF's
tri-plane by default) driven by canonical landmarks, over a 2-D torso and the video's plate.

Trained on one `geneface process` dataset (`geneface train renderer --plugin hashgrid_nerf`,
geneface.training.renderer_task); the checkpoint holds everything a frame needs besides the
motion (plate, camera, regions, the training video's poses: the default camera path), so it
renders anywhere. Frames stream one at a time: memory does not grow with the motion.
The model itself is geneface.nerf.talking_head.
"""

from __future__ import annotations

import importlib.util
from typing import Iterator, Optional

import numpy as np

from geneface import hookimpl
from geneface.core.camera_io import camera_for_length
from geneface.core.landmarks68 import layout_problem
from geneface.core.net_stage import TorchStage
from geneface.core.records import Camera, Motion
from geneface.core.stages import Renderer
from geneface.errors import StageMismatchError
from geneface.nerf.talking_head import TalkingHeadConfig

# Outer eye corners: their distance fixes the canonical frame's scale (0.09 by construction),
# so a motion whose distance is far off is in another layout or unit (pixels, a different
# normalisation), whatever its shape says.


def backend_status() -> tuple[str, str]:
    """(active backend, why), without importing torch unless tinycudann is installed."""
    if importlib.util.find_spec("tinycudann") is None:
        return "pytorch", "tinycudann is not installed; the default tri-plane needs no fused kernel"
    import torch

    if not torch.cuda.is_available():
        return "pytorch", "tinycudann is installed but there is no CUDA device"
    # The field is built on the CPU and moved afterwards, so `make_grid_encoding` keeps the
    # PyTorch grid: tinycudann's flat tables would not share the checkpoint format.
    return "pytorch", "tinycudann and CUDA are present, but the field keeps the PyTorch grid (one checkpoint format)"


def _description() -> str:
    backend, why = backend_status()
    return ("Landmark-driven head NeRF (tri-plane or 3-D hash grid, 2-D ambient space, occupancy marching) "
            f"over a 2-D torso and the plate; backend {backend} ({why})")


class HashGridNeRF(TorchStage, Renderer):
    name = "hashgrid_nerf"
    description = _description()
    Config = TalkingHeadConfig
    needs_camera = True
    training = "geneface.training.renderer_task:HashGridRecipe"

    def build_net(self):
        from geneface.nerf.talking_head import TalkingHeadNet

        return TalkingHeadNet(self.config)

    def frame_size(self) -> tuple[int, int]:
        return self.config.size, self.config.size

    def default_camera(self, n_frames: int) -> Optional[Camera]:
        return camera_for_length(self.net.camera(self.net.c2w.cpu().numpy()), n_frames)

    def check_input(self, record) -> Optional[str]:
        problem = super().check_input(record)
        if problem is not None:
            return problem
        return layout_problem(self.net.condition.mean.cpu().numpy(), record.landmarks)

    def render(self, motion: Motion, camera: Optional[Camera] = None) -> Iterator[np.ndarray]:
        import torch

        problem = self.check_input(motion)
        if problem:
            raise StageMismatchError(f"renderer '{self.name}': {problem}")
        camera = camera_for_length(camera if camera is not None else self.default_camera(motion.n_frames),
                                   motion.n_frames)
        if (camera.width, camera.height) != (self.config.size, self.config.size):
            raise StageMismatchError(f"renderer '{self.name}': camera is {camera.width} x {camera.height} px, the "
                                     f"renderer was trained at {self.config.size} x {self.config.size}")
        device = self.net.plate.device
        for i in range(motion.n_frames):
            landmarks = torch.from_numpy(motion.landmarks[i]).to(device)
            c2w = torch.from_numpy(camera.c2w[i]).to(device)
            frame = self.net.render_frame(landmarks, c2w)
            yield (frame * 255.0).round().to(torch.uint8).cpu().numpy()


@hookimpl
def register_renderers(register):
    register(HashGridNeRF)
