"""The smallest renderer that follows geneface.training.renderer_contract (shown verbatim in
docs/writing-a-trainable-renderer.md, trained by tests/test_renderer_contract.py): no 3-D at
all, a tiny MLP paints the person's pixels from the landmark condition over the plate."""

import attrs
import torch
from torch import nn

from geneface.nerf.condition import ConditionConfig, LandmarkCondition
from geneface.nerf.losses import photometric, psnr
from geneface.nerf.person import PersonCanvas
from geneface.nerf.rays import all_pixels
from geneface.nerf.stage import PersonNeRF
from geneface.training.person_renderer_task import PersonRendererRecipe
from geneface.training.renderer_contract import Losses, TrainableRenderer


@attrs.define
class FlatConfig:  # the model: `--config`'s `model:` section
    size: int = 64  # set from the dataset (model_from_data)
    n_poses: int = 1
    hidden: int = 32


class FlatNet(PersonCanvas):
    def __init__(self, c: FlatConfig):
        super().__init__(c.size, c.n_poses)
        self.condition = LandmarkCondition(ConditionConfig(dim=8))
        self.mlp = nn.Sequential(nn.Linear(2 + 8, c.hidden), nn.ReLU(), nn.Linear(c.hidden, 4))

    def paint(self, pixels, cond):  # colour over the plate at integer pixels (N, 2), condition (N, C)
        rgba = torch.sigmoid(self.mlp(torch.cat([self.pixel_coords(pixels), cond], -1)))
        plate = self.plate.reshape(-1, 3)[pixels[:, 1] * self.side + pixels[:, 0]].float() / 255.0
        return plate + rgba[:, 3:] * (rgba[:, :3] - plate)

    @torch.no_grad()
    def render_frame(self, landmarks, c2w, intrinsics=None):  # what validation and `geneface run` draw
        pixels = all_pixels(self.side, self.side, self.plate.device)
        cond = self.condition(landmarks[None]).expand(len(pixels), -1)
        return self.paint(pixels, cond).reshape(self.side, self.side, 3)


class FlatRenderer(PersonNeRF, TrainableRenderer):
    name = "flat_renderer"
    description = "a tiny MLP paints the person from the landmarks (the contract's smallest example)"
    Config = FlatConfig
    training = "support.flat_renderer:FlatRecipe"

    def build_net(self):
        return FlatNet(self.config)

    def render(self, motion, camera=None):
        camera = self.prepare(motion, camera)
        return self.frames(iter(motion.landmarks), camera)

    # -- how it trains ------------------------------------------------------------------
    def set_head_box(self, lo, hi, ds):
        pass  # no 3-D head

    def losses(self, batch, config) -> Losses:
        m = self.net
        pred = m.paint(batch.pixels, m.condition(batch.landmarks)[batch.slot])
        return Losses({"photometric": photometric(pred, batch.target)}, {"psnr": float(psnr(pred.detach(), batch.target))})


@attrs.define
class FlatTaskConfig:  # the task: `--config`'s `task:` section
    head_stage: float = 0.0  # no stage of its own for the head
    frames_per_batch: int = 4
    region_margin: float = 0.03
    val_frames: int = 2
    val_images: int = 1

    def ray_shares(self, phase):
        return [("person", 0.8), ("mouth", 0.2)]


class FlatRecipe(PersonRendererRecipe):
    config_cls = FlatTaskConfig
    profiles = {"quick": {"train": {"steps": 300, "batch_size": 1024, "lr": 5e-3, "val_every": 100}}}
