"""The contract a renderer trained ray by ray on one person's dataset follows: the model says
how it trains, the generic task (geneface.training.person_renderer_task) does the rest. It
extends the contract every trainable model follows (geneface.core.trainable:
`param_groups`, `losses`, the `Losses` record) with what a renderer also says.

A renderer stage class inherits `TrainableRenderer` beside its stage base and declares what is
its own; both NeRFs do (geneface/plugins/hashgrid_nerf.py, vanilla_nerf.py), and so can a
third party's (docs/writing-a-trainable-renderer.md has the smallest working one):

- `param_groups(config, run_schedule)`: its parameters in named groups (`ParamGroup`: a
  schedule and optimiser options each), one optimiser over them;
- `losses(batch, config)`: the loss terms of a `RayBatch` (geneface.nerf.rays: the rays, their
  frames' landmarks and poses, targets, mask labels, the run's phase) as a `Losses` record;
- `set_head_box(lo, hi, ds)`: where the model keeps the head's box in the canonical frame
  (and anything else it takes from the dataset's manifest);
- optionally `model_from_data(ds)` (config keys the data fixes: frame size, poses, latents),
  `landmark_window` (neighbouring frames' landmarks each frame's condition reads),
  `after_train_step(step, landmarks)` (e.g. refresh an occupancy grid) and
  `validation_metrics()` (extra numbers logged with each validation).

What the renderer is trained with is its task config, an attrs class (the `--config` file's
`task:` section) with the keys the generic task reads: `head_stage` (share of the run the head
learns alone), `frames_per_batch`, `region_margin`, `val_frames`, `val_images`, optionally
`lip_stage` (the last share refines the mouth) and `edge_band`, and a method `ray_shares(phase)`:
per phase ("head", "torso", "lip"), (what, share of the rays), where what is "head" / "torso"
(that frame's mask), "face" / "mouth" / "head_box" (that frame's box of its 68 points, of the
mouth's, of its head mask), "head_region" / "person" (where a head / a person was ever seen)
or "edge" (that frame's band around its masks' boundaries). Its recipe is a
`PersonRendererRecipe` naming the config class and the profiles
(geneface.training.hashgrid_task, geneface.training.vanilla_task).
"""

from __future__ import annotations

from typing import Optional

import torch

from geneface.core.trainable import Losses, TrainableNet

__all__ = ["Losses", "TrainableRenderer", "clips_from_data"]


def clips_from_data(ds) -> dict:
    """The model config keys of a person of several clips (geneface.nerf.person: one plate per
    clip): the clips' names and frame counts; none for one video, whose config stays as it was."""
    if ds.n_clips < 2:
        return {}
    return {"clips": [c.name for c in ds.clips], "clip_frames": [c.n_frames for c in ds.clips]}


class TrainableRenderer(TrainableNet):
    """Mixed into a renderer stage trained by geneface.training.person_renderer_task. The stage's
    `net` is the model the trainer optimises (a geneface.nerf.person.PersonCanvas: plate,
    camera, regions and pose statistics are filled in by the task, and `net.condition` has
    `mean` / `std` buffers for the landmarks' statistics)."""

    landmark_window: int = 0  # 0: a frame's condition reads its own landmarks (68, 3); W: a window (W, 68, 3)

    @classmethod
    def model_from_data(cls, ds) -> dict:
        """Model config keys the dataset fixes (buffer shapes), over every other layer."""
        return {"size": ds.size, "n_poses": ds.n_frames, **clips_from_data(ds)}

    def set_head_box(self, lo: list, hi: list, ds) -> None:
        """Keep the head's box (canonical frame, from the training landmarks) in the model."""
        raise NotImplementedError(f"{type(self).__name__} does not say where its head's box goes")

    def after_train_step(self, step: int, landmarks: torch.Tensor) -> None:
        """After each finished step; `landmarks` are the training frames' (T, 68, 3), on the device."""

    def validation_metrics(self) -> dict:
        """Numbers logged with each validation besides the PSNRs."""
        return {}

    def condition_of(self, landmarks: torch.Tensor) -> Optional[torch.Tensor]:
        return self.net.condition(landmarks)
