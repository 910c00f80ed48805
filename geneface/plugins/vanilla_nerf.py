"""Renderer `vanilla_nerf`: GeneFace's original renderer (AD-NeRF style), a person-specific
landmark-conditioned head NeRF (frequency encodings, 8 x 256 MLP, coarse 64 + fine 128
samples) over a head-aware torso NeRF and the video's plate. The model is geneface.nerf.vanilla.

Trained on one `geneface process` dataset (`geneface train renderer --plugin vanilla_nerf`,
geneface.training.vanilla_task). The condition of a frame is smoothed over a window of
neighbouring frames' landmarks (`condition.window`, 5 by default): at render time the window is
the motion's own neighbouring frames, clamped at its ends. The checkpoint holds everything a
frame needs besides the motion (plate, camera, regions, the training video's poses: the default
camera path). Frames stream one at a time: memory does not grow with the motion.
"""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from geneface import hookimpl
from geneface.core.camera_io import camera_for_length
from geneface.core.landmarks68 import layout_problem
from geneface.core.net_stage import TorchStage
from geneface.core.records import Camera, Motion
from geneface.core.stages import Renderer
from geneface.errors import StageMismatchError
from geneface.nerf.vanilla import VanillaNeRFConfig, window_indices


class VanillaNeRF(TorchStage, Renderer):
    name = "vanilla_nerf"
    description = ("GeneFace's original renderer: landmark-conditioned head NeRF (frequency encoding, "
                   "8 x 256 MLP, coarse + fine samples, attention over neighbouring frames) over a head-aware "
                   "torso NeRF and the plate")
    Config = VanillaNeRFConfig
    needs_camera = True
    training = "geneface.training.vanilla_task:VanillaRecipe"

    def build_net(self):
        from geneface.nerf.vanilla import VanillaNeRFNet

        return VanillaNeRFNet(self.config)

    def frame_size(self) -> tuple[int, int]:
        return self.config.size, self.config.size

    def default_camera(self, n_frames: int) -> Optional[Camera]:
        return camera_for_length(self.net.camera(self.net.c2w.cpu().numpy()), n_frames)

    def check_input(self, record) -> Optional[str]:
        problem = super().check_input(record)
        if problem is not None:
            return problem
        return layout_problem(self.net.condition.mean.cpu().numpy(), record.landmarks)

    def render(self, motion: Motion, camera: Optional[Camera] = None, window: Optional[int] = None
               ) -> Iterator[np.ndarray]:
        """One uint8 frame per motion frame. `window`: frames the condition is smoothed over
        (default the trained window; 1 switches the smoothing off)."""
        import torch

        problem = self.check_input(motion)
        if problem:
            raise StageMismatchError(f"renderer '{self.name}': {problem}")
        trained = self.config.condition.window
        window = trained if window is None else window
        if window not in (1, trained):
            raise StageMismatchError(f"renderer '{self.name}': a window of {window} frames; it was trained with "
                                     f"{trained} (or give 1)")
        camera = camera_for_length(camera if camera is not None else self.default_camera(motion.n_frames),
                                   motion.n_frames)
        if (camera.width, camera.height) != (self.config.size, self.config.size):
            raise StageMismatchError(f"renderer '{self.name}': camera is {camera.width} x {camera.height} px, the "
                                     f"renderer was trained at {self.config.size} x {self.config.size}")
        device = self.net.plate.device
        landmarks = np.asarray(motion.landmarks, np.float32)
        for i in range(motion.n_frames):
            lm = torch.from_numpy(landmarks[window_indices(motion.n_frames, i, window)]).to(device)
            c2w = torch.from_numpy(camera.c2w[i]).to(device)
            frame = self.net.render_frame(lm, c2w)
            yield (frame * 255.0).round().to(torch.uint8).cpu().numpy()


@hookimpl
def register_renderers(register):
    register(VanillaNeRF)
