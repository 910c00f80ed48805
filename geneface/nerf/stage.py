"""What every person-specific NeRF renderer stage shares (`hashgrid_nerf`, `vanilla_nerf`).

The net holds the training video's statistics and camera (`condition.mean`, `camera()`,
`c2w`, `plate`); the stage checks the motion's layout against them, gives the training
video's poses (looped back and forth) when the spec has no camera path, fits a camera path to
the motion and refuses one of another size, then yields frames one at a time.
"""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from geneface.core.camera_io import camera_for_length
from geneface.core.landmarks68 import layout_problem
from geneface.core.net_stage import TorchStage
from geneface.core.records import Camera, Motion
from geneface.core.stages import Renderer
from geneface.errors import StageMismatchError


class PersonNeRF(TorchStage, Renderer):
    needs_camera = True

    def frame_size(self) -> tuple[int, int]:
        return self.config.size, self.config.size

    def default_camera(self, n_frames: int) -> Optional[Camera]:
        return camera_for_length(self.net.camera(self.net.c2w.cpu().numpy()), n_frames)

    def check_input(self, record) -> Optional[str]:
        problem = super().check_input(record)
        if problem is not None:
            return problem
        return layout_problem(self.net.condition.mean.cpu().numpy(), record.landmarks)

    def prepare(self, motion: Motion, camera: Optional[Camera]) -> Camera:
        """Check `motion`; the camera path fitted to its length (the default one if None)."""
        problem = self.check_input(motion)
        if problem:
            raise StageMismatchError(f"renderer '{self.name}': {problem}")
        camera = camera_for_length(camera if camera is not None else self.default_camera(motion.n_frames),
                                   motion.n_frames)
        if (camera.width, camera.height) != (self.config.size, self.config.size):
            raise StageMismatchError(f"renderer '{self.name}': camera is {camera.width} x {camera.height} px, the "
                                     f"renderer was trained at {self.config.size} x {self.config.size}")
        return camera

    def frames(self, conditions: Iterator, camera: Camera) -> Iterator[np.ndarray]:
        """uint8 frames from per-frame landmark arrays (numpy) and the camera's poses."""
        import torch

        device = self.net.plate.device
        for i, landmarks in enumerate(conditions):
            frame = self.net.render_frame(torch.from_numpy(landmarks).to(device),
                                          torch.from_numpy(camera.c2w[i]).to(device))
            yield (frame * 255.0).round().to(torch.uint8).cpu().numpy()
