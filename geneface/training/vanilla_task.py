"""Training `vanilla_nerf` (GeneFace's original, AD-NeRF-style renderer) on one person's dataset.

Built on the shared person renderer task (geneface.training.person_renderer_task:
`PersonRendererTask`, `PersonRendererRecipe`): the same data in memory, held-out last
ceil(n / 11) frames (never sampled; validation renders them from their own tracked landmarks,
their window clamped to the held-out stretch, and their own poses), plate, camera and regions.

Stages, by share of the run's steps (AD-NeRF trains the head, then the torso under it):
- head (`head_stage`): 95 % (`face_share`) of the rays inside the frame's head box (the
  bounding box of its head mask: face and hair), the rest anywhere a person was seen; the head
  is rendered over the real frame with the head's pixels replaced by the plate (AD-NeRF's
  background-with-torso image), the torso NeRF learns alone on the pixels outside the head mask;
- torso: rays from the head box, the torso mask and anywhere a person was seen; head over
  torso over the plate, both trained on the composite.

Loss: MSE of the coarse and the fine pass (NeRF) + `w_mask` x BCE of the head's and torso's
opacity against the dataset's masks. The window of each training frame is clamped to the
training stretch, so a held-out frame's landmarks are never seen. One Adam over everything,
NeRF's exponential decay (lr x 0.1 over `decay_steps`) in the `full` profile.
"""

from __future__ import annotations

from typing import Callable, Optional

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from geneface.core.dataset import HEAD, TORSO, Dataset
from geneface.nerf.fields.vanilla_head import window_indices
from geneface.nerf.losses import photometric, psnr
from geneface.nerf.volume import composite
from geneface.training.recipe import TrainOption
from geneface.training.person_renderer_task import PersonRendererRecipe, PersonRendererTask

_unit = [attrs.validators.ge(0), attrs.validators.le(1)]


@attrs.define
class VanillaTaskConfig:
    head_stage: float = attrs.field(default=0.5, validator=_unit)  # share of steps: the head first
    frames_per_batch: int = attrs.field(default=1, validator=attrs.validators.gt(0))  # AD-NeRF: one image a step
    face_share: float = attrs.field(default=0.95, validator=_unit)  # head stage: rays in the head box
    w_coarse: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    w_mask: float = attrs.field(default=1e-2, validator=attrs.validators.ge(0))
    region_margin: float = attrs.field(default=0.03, validator=_unit)  # head / person regions grown by this share
    val_frames: int = attrs.field(default=0, validator=attrs.validators.ge(0))  # 0: every held-out frame
    val_images: int = attrs.field(default=2, validator=attrs.validators.ge(0))  # held-out frames shown


def _mask_boxes(masks: np.ndarray, label: int, size: int) -> np.ndarray:
    """Per frame, the (x0, y0, x1, y1) box of the pixels with `label` (the whole frame if none)."""
    out = np.tile(np.array([0, 0, size, size], np.int64), (len(masks), 1))
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m == label)
        if len(xs):
            out[i] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    return out


class VanillaTask(PersonRendererTask):
    name = "vanilla_nerf"
    config_cls = VanillaTaskConfig

    def __init__(self, stage, ds: Dataset, config: Optional[VanillaTaskConfig] = None, steps: int = 1):
        super().__init__(stage, ds, config, steps)
        self.head_box = _mask_boxes(self.masks.numpy(), HEAD, ds.size)
        self.window = self.stage.config.condition.window

    # -- what the model keeps from the data ----------------------------------------------
    def set_head_box(self, lo: list, hi: list) -> None:
        m = self.model
        m.box_lo.copy_(torch.tensor(lo))
        m.box_hi.copy_(torch.tensor(hi))
        cam = self.ds.manifest["camera"]
        m.near_far.copy_(torch.tensor([float(cam["near"]), float(cam["far"])]))

    # -- batches -------------------------------------------------------------------------
    def boxes(self) -> dict[str, np.ndarray]:
        return {**super().boxes(), "head_box": self.head_box}

    def ray_shares(self, phase: str) -> list[tuple[str, float]]:
        if phase == "head":
            share = self.config.face_share
            return [("head_box", share), ("person", 1.0 - share)]
        return [("head_box", 0.5), ("torso", 0.3), ("person", 0.2)]

    def batch_landmarks(self, frames: torch.Tensor) -> torch.Tensor:
        """(F, window, 68, 3): each training frame's window, clamped to the training stretch."""
        return self.landmarks[torch.from_numpy(window_indices(self.val_start, frames.numpy(), self.window))]

    # -- the step ------------------------------------------------------------------------
    def compute_loss(self, net, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        c, m = self.config, self.model
        phase = self.phase(step)
        flat, slot, pixels, rays, cond = self.loss_inputs(batch)
        pose = m.pose(batch["c2w"])
        heads = m.render_head(rays, cond[slot], perturb=True)
        torsos = m.render_torso(pixels, pose[slot], perturb=True)
        target, label = batch["target"], batch["label"]
        plate = m.plate.reshape(-1, 3)[flat].float() / 255.0
        is_head = (label == HEAD).float()
        not_head = 1.0 - is_head
        behind = torch.where(is_head[:, None] > 0, plate, target)
        loss = target.new_zeros(())
        for weight, head, torso in zip((c.w_coarse, 1.0), heads, torsos):
            if phase == "head":
                pred = composite([(head.rgb, head.opacity)], behind)
                alone = composite([(torso.rgb, torso.opacity)], plate)
                loss = loss + weight * (photometric(pred, target) + photometric(alone, target, not_head))
            else:
                pred = composite([(head.rgb, head.opacity), (torso.rgb, torso.opacity)], plate)
                loss = loss + weight * photometric(pred, target)
        head, torso = heads[1], torsos[1]
        eps = 1e-4
        head_bce = F.binary_cross_entropy(head.opacity.clamp(eps, 1 - eps), is_head)
        torso_bce = (F.binary_cross_entropy(torso.opacity.clamp(eps, 1 - eps), (label == TORSO).float(),
                                            reduction="none") * not_head).sum() / not_head.sum().clamp(min=1.0)
        loss = loss + c.w_mask * (head_bce + torso_bce)
        return loss, {"psnr": float(psnr(pred.detach(), target))}

    # -- validation ----------------------------------------------------------------------
    def validation_landmarks(self) -> Callable[[np.ndarray, int], np.ndarray]:
        n, start, window = self.ds.n_frames, self.val_start, self.window
        # The held-out stretch is the motion rendered: its windows stay inside it.
        return lambda landmarks, f: landmarks[window_indices(n, f, window, lo=start)]


# Profiles. `full` is METHOD.md's run (a GPU): 64 + 128 samples, 1600 rays a step, 400k steps,
# lr 5e-4 decayed x 0.1 over 500k steps (NeRF's schedule). `quick` keeps the model (the same
# 8 x 256 MLPs, two of them, and the torso) and cuts what a CPU cannot afford: 32 + 64 head
# samples, 16 + 16 torso samples, 256 rays a step (from 4 frames, so each frame is seen more
# often in fewer steps), 3000 steps, validation every 1000 steps on 2 held-out frames (a whole
# frame costs minutes at 512 px: every sample of every head ray goes through the MLPs).
# Measured on one thread: about 3.4 s a step (~3 hours for the 3000), whatever the frame size.
PROFILES = {
    "quick": {
        "train": {"steps": 3000, "batch_size": 256, "lr": 5e-4, "schedule": "exponential", "decay_rate": 0.1,
                  "decay_steps": 3750, "val_every": 1000, "ckpt_every": 500, "log_every": 25},
        "model": {"head": {"coarse_samples": 32, "fine_samples": 64},
                  "torso": {"coarse_samples": 16, "fine_samples": 16}},
        "task": {"val_frames": 2, "frames_per_batch": 4},
    },
    "full": {
        "train": {"steps": 400_000, "batch_size": 1600, "lr": 5e-4, "schedule": "exponential", "decay_rate": 0.1,
                  "decay_steps": 500_000, "val_every": 10_000, "ckpt_every": 10_000, "log_every": 100},
        "model": {"chunk": 4096},
        "task": {},
    },
}


class VanillaRecipe(PersonRendererRecipe):
    """`geneface train renderer --plugin vanilla_nerf --data DATASET --out DIR [--profile quick|full]`."""

    options = (TrainOption("profile", "quick (a CPU: fewer samples, fewer rays) or full (METHOD.md's GPU run)",
                           default="quick"),)
    loop_defaults = PROFILES["quick"]["train"]
    plugin = "vanilla_nerf"
    profiles = PROFILES
    task_cls = VanillaTask
