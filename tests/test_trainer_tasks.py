"""What the shared trainer gives every model: named optimisers with per-group schedules, a step
the task may own (a GAN), per-step hooks, validation images, early stopping with a reason."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geneface.core.checkpoint import Checkpoint, read_checkpoint
from geneface.training.config import LRSchedule, TrainConfig
from geneface.training.metrics import read_metrics
from geneface.training.task import OptimizerSpec, ParamGroup, TrainTask
from geneface.training.trainer import Trainer

from support.training import crash_then_resume


def _rmsprop(groups):
    return torch.optim.RMSprop(groups)


class TinyGAN(TrainTask):
    """A least-squares GAN learning N(2, 0.5) in 1-D: two networks, two optimisers, dropout in D."""

    name = "tiny_gan"
    best_metric = "gap"
    ddp_wrap = False

    def __init__(self):
        torch.manual_seed(0)
        g = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        d = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.LeakyReLU(0.2), torch.nn.Dropout(0.25),
                                torch.nn.Linear(16, 1))
        self.model = torch.nn.ModuleDict({"g": g, "d": d})

    def config_dict(self):
        return {"target": [2.0, 0.5]}

    def optimizers(self, run_schedule):
        return [OptimizerSpec("disc", [ParamGroup("d", self.model["d"].parameters())], _rmsprop),
                OptimizerSpec("gen", [ParamGroup("g", self.model["g"].parameters())], _rmsprop)]

    def sample_batch(self, rng, batch_size):
        real = rng.normal(2.0, 0.5, size=(batch_size, 1)).astype(np.float32)
        z = rng.standard_normal((batch_size, 4)).astype(np.float32)
        return {"real": torch.from_numpy(real), "z": torch.from_numpy(z)}

    def train_step(self, ctx, batch, step):
        g, d = self.model["g"], self.model["d"]
        fake = g(batch["z"])
        d_loss = ((d(batch["real"]) - 1) ** 2).mean() + (d(fake.detach()) ** 2).mean()
        ctx.step("disc", d_loss)
        g_loss = ((d(fake) - 1) ** 2).mean()
        ctx.step("gen", g_loss)
        return {"loss": g_loss.detach(), "d_loss": d_loss.detach()}

    @torch.no_grad()
    def validate(self):
        z = torch.from_numpy(np.random.default_rng(1).standard_normal((512, 4)).astype(np.float32))
        x = self.model["g"](z)
        return {"gap": float(abs(x.mean() - 2.0) + abs(x.std() - 0.5)), "mean": float(x.mean())}

    def export(self, meta):
        return Checkpoint("domain_adapter", "tiny_gan", "1", {}, dict(self.model["g"].state_dict()), meta)


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=30, batch_size=16, lr=5e-3, schedule="constant", ckpt_every=4, val_every=5, log_every=3,
                keep_best=2)
    base.update(kw)
    return TrainConfig(**base)


def _state_tensors(out) -> dict:
    return read_checkpoint(Trainer.latest_state(out)).state


def test_two_optimizer_gan_resume_after_crash_is_bit_identical(tmp_path):
    full = Trainer(TinyGAN(), _cfg(), tmp_path / "full", progress=False).fit()
    resumed, resumed_from = crash_then_resume(TinyGAN, _cfg(), tmp_path / "crashed", crash_after=13)
    assert resumed_from == "step-00000012.safetensors"

    assert full["step"] == resumed["step"] == 30
    a, b = _state_tensors(tmp_path / "full"), _state_tensors(tmp_path / "crashed")
    assert a.keys() == b.keys()
    # Both optimisers' moments are in the state, and everything matches bit for bit.
    assert any(k.startswith("optim.disc.") for k in a) and any(k.startswith("optim.gen.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_metrics(tmp_path / "full" / "metrics.csv") == read_metrics(tmp_path / "crashed" / "metrics.csv")
    assert [x["step"] for x in full["best"]] == [x["step"] for x in resumed["best"]]


def test_gan_learns_the_target(tmp_path):
    task = TinyGAN()
    before = task.validate()["gap"]
    Trainer(task, _cfg(steps=300, val_every=100, ckpt_every=300), tmp_path / "run", progress=False).fit()
    after = task.validate()["gap"]
    assert after < 0.5 * before, (before, after)


class TwoGroups(TrainTask):
    """Regression with two parameter groups: a table with its own schedule, a head on the run's."""

    name = "two_groups"

    def __init__(self):
        torch.manual_seed(0)
        self.model = torch.nn.ModuleDict({"table": torch.nn.Embedding(8, 4), "head": torch.nn.Linear(4, 1)})
        self.seen: list[dict] = []
        self.optimizer = None

    def config_dict(self):
        return {}

    def optimizers(self, run_schedule):
        table = LRSchedule(1e-2, "exponential", decay_rate=0.5, decay_steps=10)
        return [OptimizerSpec("main", [ParamGroup("table", self.model["table"].parameters(), table),
                                       ParamGroup("head", self.model["head"].parameters())])]

    def sample_batch(self, rng, batch_size):
        idx = rng.integers(0, 8, size=batch_size)
        return {"idx": torch.from_numpy(idx), "y": torch.from_numpy((idx / 8.0).astype(np.float32))}

    def train_step(self, ctx, batch, step):
        self.seen.append({g["name"]: g["lr"] for g in ctx.optimizers["main"].param_groups})
        return super().train_step(ctx, batch, step)

    def compute_loss(self, net, batch, step):
        pred = net["head"](net["table"](batch["idx"]))[:, 0]
        return ((pred - batch["y"]) ** 2).mean(), {}

    def validate(self):
        return {"loss": 0.0}

    def export(self, meta):
        return Checkpoint("renderer", "two_groups", "1", {}, dict(self.model.state_dict()), meta)


def test_per_group_learning_rate_schedules(tmp_path):
    task = TwoGroups()
    cfg = _cfg(steps=20, lr=1e-3, schedule="cosine", warmup=4)
    Trainer(task, cfg, tmp_path / "run", progress=False).fit()
    table = LRSchedule(1e-2, "exponential", decay_rate=0.5, decay_steps=10)
    for step, rates in enumerate(task.seen):
        assert rates["table"] == pytest.approx(table.lr_at(step, 20))
        assert rates["head"] == pytest.approx(cfg.lr_at(step))
    assert task.seen[10]["table"] == pytest.approx(5e-3)
    names = {name for _, phase, name, _ in read_metrics(tmp_path / "run" / "metrics.csv") if phase == "train"}
    assert {"lr/main/table", "lr/main/head"} <= names


class Collapsing(TrainTask):
    """Validation reports a collapse from step 10 on; the task stops the run with a reason."""

    name = "collapsing"

    def __init__(self):
        torch.manual_seed(0)
        self.model = torch.nn.Linear(2, 1)
        self.after: list[int] = []

    def config_dict(self):
        return {}

    def sample_batch(self, rng, batch_size):
        return {"x": torch.from_numpy(rng.standard_normal((batch_size, 2)).astype(np.float32))}

    def compute_loss(self, net, batch, step):
        return (net(batch["x"]) ** 2).mean(), {}

    def after_step(self, step):
        self.after.append(step)

    def validate(self):
        return {"loss": 1.0, "variance_kept": 1.0 if len(self.after) < 10 else 0.2}

    def validation_images(self):
        image = np.zeros((8, 12, 3), np.uint8)
        image[:, :, 0] = 255
        return {"truth_render_error": image}

    def on_validation(self, metrics, step):
        if metrics["variance_kept"] < 0.5:
            return f"collapse: generated motion lost {100 * (1 - metrics['variance_kept']):.0f} % of its variance"
        return None

    def export(self, meta):
        return Checkpoint("domain_adapter", "collapsing", "1", {}, dict(self.model.state_dict()), meta)


def test_validation_may_stop_the_run_with_a_reason(tmp_path, capsys):
    task = Collapsing()
    out = tmp_path / "run"
    result = Trainer(task, _cfg(steps=40, val_every=5), out, progress=False).fit()
    reason = "collapse: generated motion lost 80 % of its variance"
    assert result["step"] == 10 and result["stopped"] == {"step": 10, "reason": reason}
    assert task.after == list(range(1, 11))  # the per-step hook saw every finished step
    assert json.loads((out / "run.json").read_text())["stopped"] == {"step": 10, "reason": reason}
    assert reason in capsys.readouterr().err
    assert (out / "model.safetensors").is_file() and (out / "last.safetensors").is_file()
    assert read_checkpoint(out / "last.safetensors").meta["stopped"]["reason"] == reason
    # Validation images land in the run folder, one folder per validation.
    assert sorted(p.name for p in (out / "validation").iterdir()) == ["step-00000005", "step-00000010"]
    import cv2

    image = cv2.imread(str(out / "validation" / "step-00000010" / "truth_render_error.png"))
    assert image.shape == (8, 12, 3) and image[0, 0, 2] == 255  # red, written as RGB
    # Resuming a stopped run does not train on.
    again = Trainer(Collapsing(), _cfg(steps=40, val_every=5), out, resume=True, progress=False).fit()
    assert again["step"] == 10 and again["stopped"]["reason"] == reason
