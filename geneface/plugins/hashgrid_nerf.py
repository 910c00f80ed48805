"""Renderer `hashgrid_nerf`: a person-specific talking head (RAD-NeRF's design, ER-NeRF's
tri-plane by default) driven by canonical landmarks, over a 2-D torso and the video's plate.

Trained on one `geneface process` dataset (`geneface train renderer --plugin hashgrid_nerf`,
geneface.training.person_renderer_task); the checkpoint holds everything a frame needs
besides the motion (plate, camera, regions, the training video's poses: the default camera
path), so it renders anywhere. A camera path it is handed (a spec's `input.poses`) is
honoured: poses, focal length and principal point (geneface.nerf.person). Frames stream one
at a time: memory does not grow with the motion. The model itself is geneface.nerf.talking_head.
"""

from __future__ import annotations

import importlib.util
from typing import Iterator, Optional

import numpy as np

from geneface import hookimpl
from geneface.core.records import Camera, Motion
from geneface.nerf.stage import PersonNeRF
from geneface.nerf.talking_head import TalkingHeadConfig


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


class HashGridNeRF(PersonNeRF):
    name = "hashgrid_nerf"
    description = _description()
    Config = TalkingHeadConfig
    training = "geneface.training.person_renderer_task:HashGridRecipe"

    def build_net(self):
        from geneface.nerf.talking_head import TalkingHeadNet

        return TalkingHeadNet(self.config)

    def render(self, motion: Motion, camera: Optional[Camera] = None) -> Iterator[np.ndarray]:
        camera = self.prepare(motion, camera)
        return self.frames((motion.landmarks[i] for i in range(motion.n_frames)), camera)


@hookimpl
def register_renderers(register):
    register(HashGridNeRF)
