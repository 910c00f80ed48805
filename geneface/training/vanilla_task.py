"""Training `vanilla_nerf` (GeneFace's original, AD-NeRF-style renderer) on one person's dataset.

Configuration only (its task config, profiles and recipe): the model says how it trains
(geneface/plugins/vanilla_nerf.py: its losses; one parameter group), the generic task
(geneface.training.person_renderer_task) does the rest: the same data in memory, held-out last
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

import attrs

from geneface.training.person_renderer_task import PersonRendererRecipe
from geneface.training.recipe import TrainOption

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

    def ray_shares(self, phase: str) -> list[tuple[str, float]]:
        if phase == "head":
            return [("head_box", self.face_share), ("person", 1.0 - self.face_share)]
        return [("head_box", 0.5), ("torso", 0.3), ("person", 0.2)]


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
    profiles = PROFILES
    config_cls = VanillaTaskConfig
