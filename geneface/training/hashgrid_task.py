"""`hashgrid_nerf`'s training configuration: its task config, profiles and recipe. The model
says how it trains (geneface/plugins/hashgrid_nerf.py: parameter groups and losses); the
generic task is geneface.training.person_renderer_task.

Stages, by share of the run (steps, or the time budget when further along):
- head (`head_stage`): the head is rendered over the real frame with the head's pixels
  replaced by the plate, so it learns the head alone, whatever the torso looks like; the
  torso layer learns alone on the pixels outside the head mask;
- torso: head over torso over the plate, everything trained on the final composite;
- lip (`lip_stage`, the end of the run): as torso, with rays drawn mostly from the mouth's
  box and the mouth's pixels weighted up in the loss.

Loss = photometric + entropy of the head's opacity + the ambient coordinate's size + the
layers' opacity against the dataset's masks (the masks come free with every dataset and
settle the silhouette long before colour alone would on a CPU budget).
Grid tables learn `grid_lr_scale` times faster than the MLPs (RAD-NeRF: 10x).
"""

from __future__ import annotations

import attrs

from geneface.training.person_renderer_task import PersonRendererRecipe
from geneface.training.recipe import TrainOption

_unit = [attrs.validators.ge(0), attrs.validators.le(1)]


@attrs.define
class HashGridTaskConfig:
    head_stage: float = attrs.field(default=0.6, validator=_unit)  # share of steps
    lip_stage: float = attrs.field(default=0.15, validator=_unit)  # share of steps, at the end
    frames_per_batch: int = attrs.field(default=8, validator=attrs.validators.gt(0))
    w_entropy: float = 1e-4
    w_ambient: float = 1e-3
    w_mask: float = 1e-2
    w_latent: float = 1e-3  # L2 on per-frame latents: appearance drift only, not expression
    lip_weight: float = 4.0  # loss weight of mouth-box rays in the lip stage
    # Share of the rays drawn from the mouth's box in the head and torso stages too: the mouth
    # is ~1 % of the frame, and a field that sees it only in the lip stage renders an average mouth.
    mouth_share: float = attrs.field(default=0.1, validator=[attrs.validators.ge(0), attrs.validators.le(0.3)])
    grid_lr_scale: float = 10.0
    region_margin: float = 0.03  # head / person regions grown by this share of the frame side
    # Share of every phase's rays drawn from the band around the masks' boundaries, and the
    # band's half width (share of the frame side): hair, silhouette and collar are where the
    # held-out error sits. Off: 0.15 moved four persons' held-out PSNR by -0.28..+0.31 dB,
    # -0.04 on average, within run-to-run noise (docs/training.md, "Across persons").
    edge_share: float = attrs.field(default=0.0, validator=[attrs.validators.ge(0), attrs.validators.le(0.5)])
    edge_band: float = attrs.field(default=0.02, validator=attrs.validators.gt(0))
    val_frames: int = attrs.field(default=0, validator=attrs.validators.ge(0))  # 0: every held-out frame
    val_images: int = 2  # held-out frames written as truth | render | error

    def ray_shares(self, phase: str) -> list[tuple[str, float]]:
        m, e = self.mouth_share, self.edge_share
        if phase == "head":
            shares = [("head", 0.5 - m), ("face", 0.2), ("mouth", m), ("head_region", 0.15), ("person", 0.15)]
        elif phase == "torso":
            shares = [("head", 0.3 - m), ("face", 0.1), ("mouth", m), ("torso", 0.3), ("person", 0.3)]
        else:
            # torso rays keep the layer under the head from drifting while the mouth is refined
            shares = [("mouth", 0.4), ("head", 0.2), ("torso", 0.2), ("person", 0.2)]
        return [(what, p * (1.0 - e)) for what, p in shares] + ([("edge", e)] if e > 0 else [])


# Profiles: `quick` fits minutes on a CPU, `full` is METHOD.md's GPU run.
PROFILES = {
    "quick": {
        "train": {"steps": 4000, "batch_size": 2048, "lr": 2e-3, "schedule": "cosine", "min_lr_ratio": 0.1,
                  "val_every": 500, "ckpt_every": 500, "log_every": 25},
        "model": {},
        "task": {"val_frames": 8},
    },
    "full": {
        "train": {"steps": 40000, "batch_size": 16384, "lr": 2e-3, "schedule": "cosine", "min_lr_ratio": 0.1,
                  "val_every": 2000, "ckpt_every": 2000, "log_every": 100},
        "model": {"occupancy": {"resolution": 128, "max_samples": 16}, "chunk": 65536},
        "task": {},
    },
}


class HashGridRecipe(PersonRendererRecipe):
    """`geneface train renderer --plugin hashgrid_nerf --data DATASET --out DIR [--profile quick|full]`."""

    options = (TrainOption("profile", "quick (minutes on a CPU) or full (a GPU run)", default="quick"),)
    profiles = PROFILES
    config_cls = HashGridTaskConfig
