"""Renderer `vanilla_nerf`: GeneFace's original renderer (AD-NeRF style), a person-specific
landmark-conditioned head NeRF (frequency encodings, 8 x 256 MLP, coarse 64 + fine 128
samples) over a head-aware torso NeRF and the video's plate. The model is geneface.nerf.vanilla.

Trained on one `geneface process` dataset (`geneface train renderer --plugin vanilla_nerf`):
the class says how it trains (its losses, the contract of geneface.training.renderer_contract),
geneface.training.vanilla_task holds its task config and profiles. The condition of a frame is smoothed over a window of
neighbouring frames' landmarks (`condition.window`, 5 by default): at render time the window is
the motion's own neighbouring frames, clamped at its ends. The checkpoint holds everything a
frame needs besides the motion (plate, camera, regions, the training video's poses: the default
camera path); a camera path it is handed (a spec's `input.poses`) is honoured: poses, focal
length and principal point (geneface.nerf.person). Frames stream one at a time: memory does
not grow with the motion. In a stream (`geneface stream`) a frame needs its window's half on
each side (`stream_context`), and `render_part` draws only the frames asked for.
"""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from geneface import hookimpl
from geneface.core.records import Camera, Motion
from geneface.core.stages import StreamContext
from geneface.errors import StageMismatchError
from geneface.nerf.fields.vanilla_head import window_indices
from geneface.nerf.stage import PersonNeRF
from geneface.nerf.vanilla import VanillaNeRFConfig
from geneface.training.renderer_contract import Losses, TrainableRenderer


class VanillaNeRF(PersonNeRF, TrainableRenderer):
    name = "vanilla_nerf"
    description = ("GeneFace's original renderer: landmark-conditioned head NeRF (frequency encoding, "
                   "8 x 256 MLP, coarse + fine samples, attention over neighbouring frames) over a head-aware "
                   "torso NeRF and the plate")
    Config = VanillaNeRFConfig
    training = "geneface.training.vanilla_task:VanillaRecipe"

    def build_net(self):
        from geneface.nerf.vanilla import VanillaNeRFNet

        return VanillaNeRFNet(self.config)

    # -- how it trains (geneface.training.renderer_contract; one parameter group) -----------
    @property
    def landmark_window(self) -> int:
        return self.config.condition.window  # each frame's condition reads its window

    def set_head_box(self, lo: list, hi: list, ds) -> None:
        import torch

        m = self.net
        m.box_lo.copy_(torch.tensor(lo))
        m.box_hi.copy_(torch.tensor(hi))
        cam = ds.manifest["camera"]
        m.near_far.copy_(torch.tensor([float(cam["near"]), float(cam["far"])]))

    def losses(self, batch, config) -> Losses:
        """MSE of the coarse and the fine pass (NeRF; the head alone over the plate-filled frame
        and the torso alone outside the head in the head phase, the composite after) + `w_mask` x
        BCE of the head's and torso's opacity against the dataset's masks."""
        import torch
        import torch.nn.functional as F

        from geneface.core.dataset import HEAD, TORSO
        from geneface.nerf.losses import photometric, psnr
        from geneface.nerf.volume import composite

        c, m, phase, slot = config, self.net, batch.phase, batch.slot
        cond = m.condition(batch.landmarks)
        pose = m.pose(batch.c2w)
        heads = m.render_head(batch.rays, cond[slot], perturb=True)
        torsos = m.render_torso(batch.pixels, pose[slot], perturb=True)
        target, label = batch.target, batch.label
        plate = m.plate_colours(batch.flat, batch.ray_clip)
        is_head = (label == HEAD).float()
        not_head = 1.0 - is_head
        behind = torch.where(is_head[:, None] > 0, plate, target)
        photo = target.new_zeros(())
        for weight, head, torso in zip((c.w_coarse, 1.0), heads, torsos):
            if phase == "head":
                pred = composite([(head.rgb, head.opacity)], behind)
                alone = composite([(torso.rgb, torso.opacity)], plate)
                photo = photo + weight * (photometric(pred, target) + photometric(alone, target, not_head))
            else:
                pred = composite([(head.rgb, head.opacity), (torso.rgb, torso.opacity)], plate)
                photo = photo + weight * photometric(pred, target)
        head, torso = heads[1], torsos[1]
        eps = 1e-4
        head_bce = F.binary_cross_entropy(head.opacity.clamp(eps, 1 - eps), is_head)
        torso_bce = (F.binary_cross_entropy(torso.opacity.clamp(eps, 1 - eps), (label == TORSO).float(),
                                            reduction="none") * not_head).sum() / not_head.sum().clamp(min=1.0)
        return Losses({"photometric": photo, "mask": c.w_mask * (head_bce + torso_bce)},
                      {"psnr": float(psnr(pred.detach(), target))})

    def render(self, motion: Motion, camera: Optional[Camera] = None, window: Optional[int] = None
               ) -> Iterator[np.ndarray]:
        """One uint8 frame per motion frame. `window`: frames the condition is smoothed over
        (default the trained window; 1 switches the smoothing off)."""
        camera = self.prepare(motion, camera)
        trained = self.config.condition.window
        window = trained if window is None else window
        if window not in (1, trained):
            raise StageMismatchError(f"renderer '{self.name}': a window of {window} frames; it was trained with "
                                     f"{trained} (or give 1)")
        landmarks = np.asarray(motion.landmarks, np.float32)
        n = motion.n_frames
        return self.frames((landmarks[window_indices(n, i, window)] for i in range(n)), camera)

    def stream_context(self) -> StreamContext:
        half = self.config.condition.window // 2  # the trained window of neighbouring frames
        return StreamContext(half, half)

    def render_part(self, motion: Motion, camera: Optional[Camera], start: int, stop: int) -> Iterator[np.ndarray]:
        """Frames start..stop-1 of `render(motion, camera)`, drawing only those."""
        import attrs

        camera = self.prepare(motion, camera)
        landmarks = np.asarray(motion.landmarks, np.float32)
        window, n = self.config.condition.window, motion.n_frames
        return self.frames((landmarks[window_indices(n, i, window)] for i in range(start, stop)),
                           attrs.evolve(camera, c2w=camera.c2w[start:stop]))


@hookimpl
def register_renderers(register):
    register(VanillaNeRF)
