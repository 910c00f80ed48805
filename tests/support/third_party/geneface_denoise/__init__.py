"""A third-party trainable plugin, installed separately in tests (a dist-info made on the fly).

DomainAdapter `temporal_denoise`: a per-coordinate temporal filter (depthwise 1-D conv over
the landmark sequence, started as the identity) trained to remove jitter: it sees a
person's tracked landmarks with noise added and learns to give back the clean ones. It knows
nothing of geneface's internals beyond the public contracts: a stage, a recipe, a task.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch

from geneface import hookimpl
from geneface.core.checkpoint import stage_checkpoint
from geneface.core.net_stage import TorchStage
from geneface.core.stages import DomainAdapter
from geneface.errors import UsageError
from geneface.training.recipe import BuiltTask, Recipe, TrainInputs, TrainOption
from geneface.training.task import TrainTask


@attrs.define
class DenoiseConfig:
    kernel: int = 5


class DenoiseNet(torch.nn.Module):
    def __init__(self, kernel: int):
        super().__init__()
        self.conv = torch.nn.Conv1d(204, 204, kernel, padding=kernel // 2, groups=204, padding_mode="replicate")
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, 0, kernel // 2] = 1.0
            self.conv.bias.zero_()
        self.register_buffer("mean", torch.zeros(204))
        self.register_buffer("std", torch.ones(204))

    def forward(self, x):  # B x T x 204, raw landmarks
        z = (x - self.mean) / self.std
        return self.conv(z.transpose(1, 2)).transpose(1, 2) * self.std + self.mean


class TemporalDenoise(TorchStage, DomainAdapter):
    name = "temporal_denoise"
    description = "Learned temporal filter that removes landmark jitter (test plugin)"
    Config = DenoiseConfig
    training = "geneface_denoise:DenoiseRecipe"

    def build_net(self):
        return DenoiseNet(self.config.kernel)

    def adapt(self, motion):
        with torch.no_grad():
            out = self.net(torch.from_numpy(motion.landmarks.reshape(1, motion.n_frames, 204)))
        return motion.with_landmarks(out[0].numpy().reshape(-1, 68, 3))


class DenoiseTask(TrainTask):
    name = "temporal_denoise"

    def __init__(self, stage, landmarks: np.ndarray, noise: float, segment: int = 32):
        self.stage, self.model = stage, stage.net
        flat = landmarks.reshape(len(landmarks), 204).astype(np.float32)
        n_val = max(segment, len(flat) // 11)  # the field's protocol: the last 1/11 is held out
        self.train, self.val = flat[:-n_val], flat[-n_val:]
        self.model.mean.copy_(torch.from_numpy(self.train.mean(0)))
        self.model.std.copy_(torch.from_numpy(self.train.std(0) + 1e-6))
        self.noise = noise * self.train.std(0)
        self.segment = segment
        rng = np.random.default_rng(7)
        self.val_noisy = torch.from_numpy((self.val + rng.standard_normal(self.val.shape) * self.noise).astype(np.float32))

    def config_dict(self):
        return {"noise": float(self.noise.mean()), "segment": self.segment}

    def sample_batch(self, rng, batch_size):
        starts = rng.integers(0, len(self.train) - self.segment + 1, size=batch_size)
        clean = np.stack([self.train[s: s + self.segment] for s in starts])
        noisy = clean + rng.standard_normal(clean.shape) * self.noise
        return {"clean": torch.from_numpy(clean), "noisy": torch.from_numpy(noisy.astype(np.float32))}

    def compute_loss(self, net, batch, step):
        return torch.mean(((net(batch["noisy"]) - batch["clean"]) / self.model.std) ** 2), {}

    def validate(self):
        clean = torch.from_numpy(self.val)
        out = self.model(self.val_noisy[None])[0]
        return {"loss": float(torch.mean(((out - clean) / self.model.std) ** 2)),
                "noisy_loss": float(torch.mean(((self.val_noisy - clean) / self.model.std) ** 2))}

    def export(self, meta):
        return stage_checkpoint(self.stage, meta=meta)


class DenoiseRecipe(Recipe):
    options = (TrainOption("noise", "jitter to remove, as a share of each coordinate's std", kind="float",
                           default=0.5),)
    loop_defaults = {"batch_size": 8, "lr": 1e-2, "schedule": "constant"}

    def build(self, inputs: TrainInputs) -> BuiltTask:
        from geneface.core.dataset import Dataset

        if len(inputs.data) != 1:
            raise UsageError("--data: temporal_denoise trains on one person's dataset")
        stage = inputs.stage_cls(inputs.model_config())
        landmarks = Dataset(inputs.data[0]).motion().landmarks
        return BuiltTask(DenoiseTask(stage, landmarks, inputs.options["noise"]), {"data": str(inputs.data[0])})


@hookimpl
def register_domain_adapters(register):
    register(TemporalDenoise)
