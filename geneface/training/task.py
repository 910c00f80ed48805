"""What a model tells the shared trainer: a `TrainTask`, its optimisers and its step.

A task owns its model and data and says:
- how batches are drawn (`sample_batch`, from one numpy Generator so a resumed run replays
  them; `next_batch` gets the step's context too, whose `progress()` says how far the run is),
  how it is validated and exported;
- which optimisers it has (`optimizers`): each named, over its own parameter groups, each
  group with its own learning-rate schedule. The default is one Adam over every trainable
  parameter with the run's schedule;
- how one step goes (`train_step`). The default computes `compute_loss` and steps the one
  optimiser; a GAN steps its discriminator, then its generator, through the same
  `StepContext.step`, which does what the trainer owns for every optimiser: zero-grad,
  mixed-precision scaling, backward, gradient averaging across processes, clipping of that
  optimiser's parameters, the step;
- what happens around steps: `after_step` (e.g. refresh an occupancy grid every 16 steps),
  `on_validation` (switch a loss on, or return a reason to stop the run), and
  `validation_images` (pictures written into the run folder).

The built-in tasks take their parameter groups and losses from the model itself
(geneface.core.trainable), keeping the data, schedule, validation and export.
"""

from __future__ import annotations

import abc
import contextlib
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import attrs
import numpy as np
import torch

from geneface.core.checkpoint import Checkpoint
from geneface.core.trainable import ParamGroup  # noqa: F401  (what a model declares; tasks name it from here too)
from geneface.training.config import LRSchedule


def adam(groups: list[dict]) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups)


@attrs.define(eq=False)
class OptimizerSpec:
    """One named optimiser: its groups, how it is made from torch param groups, its clipping.

    `grad_clip` None uses the run's `grad_clip`; 0 switches clipping off for this optimiser.
    """

    name: str
    groups: list[ParamGroup]
    factory: Callable[[list[dict]], torch.optim.Optimizer] = adam
    grad_clip: Optional[float] = None

    def build(self, run_schedule: LRSchedule) -> torch.optim.Optimizer:
        # The lr set here is replaced before every step by the group's schedule.
        torch_groups = [{"params": [p for p in g.params if p.requires_grad], "name": g.name,
                         "lr": (g.schedule or run_schedule).lr, **g.options} for g in self.groups]
        empty = [g["name"] for g in torch_groups if not g["params"]]
        if empty:
            raise ValueError(f"optimiser '{self.name}': parameter group(s) {', '.join(empty)} have no trainable parameters")
        return self.factory(torch_groups)

    def parameters(self) -> list:
        return [p for g in self.groups for p in g.params if p.requires_grad]


class StepContext:
    """What a task's `train_step` uses to run forward passes and step its optimisers."""

    def __init__(self, net: torch.nn.Module, optimizers: dict, specs: dict, scaler, autocast,
                 grad_clip: float, average_gradients: Callable[[Sequence], None], task_name: str, step: int,
                 progress: Optional[Callable[[], float]] = None):
        self.net = net  # the model, or its DDP wrapper
        self.optimizers = optimizers
        self._specs = specs
        self._scaler = scaler
        self._autocast = autocast
        self._grad_clip = grad_clip
        self._average = average_gradients
        self._task = task_name
        self.step_index = step
        self.stepped: list[str] = []
        self._progress = progress or (lambda: 0.0)

    def progress(self) -> float:
        """How far the run is now, 0..1: its share of the steps, or of the time budget
        (`max_minutes`) when that is further along. Staged tasks switch on it; read after the
        step (in validation) it includes the step."""
        return self._progress()

    def autocast(self):
        """Mixed precision for forward passes (a no-op on CPU or with amp off)."""
        return self._autocast if self._autocast is not None else contextlib.nullcontext()

    def step(self, name: Optional[str], loss: torch.Tensor) -> None:
        """Backward `loss` into optimiser `name`'s parameters and step it (None: the only one)."""
        if name is None:
            if len(self.optimizers) != 1:
                raise ValueError(f"{self._task}: name the optimiser to step (have {', '.join(self.optimizers)})")
            name = next(iter(self.optimizers))
        optimizer, spec = self.optimizers[name], self._specs[name]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self._task}: loss of optimiser '{name}' is {loss.item()} at step {self.step_index}")
        params = spec.parameters()
        optimizer.zero_grad(set_to_none=True)
        if self._scaler is not None:
            self._scaler.scale(loss).backward()
        else:
            loss.backward()
        self._average(params)
        if self._scaler is not None:
            self._scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        clip = self._grad_clip if spec.grad_clip is None else spec.grad_clip
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        if self._scaler is not None:
            self._scaler.step(optimizer)
        else:
            optimizer.step()
        self.stepped.append(name)


class TrainTask(abc.ABC):
    """What a trainer needs from one kind of model. Subclasses own their model and data."""

    name: str = ""  # plugin name of the exported component
    best_metric: str = "loss"  # a key of `validate()`'s result
    best_mode: str = "min"  # "min" or "max"
    # False when `train_step` calls sub-modules of `model` directly (a GAN's generator and
    # discriminator): gradients are then averaged across processes by the trainer instead
    # of by a DistributedDataParallel wrapper.
    ddp_wrap: bool = True
    # True: the model is exported at every validation (OUT/candidates/) and `choose_model`
    # picks the run's model.safetensors from them after the run (e.g. a GAN, whose best
    # checkpoint is judged on the whole run's curves, not one metric at a time).
    keep_candidates: bool = False
    progress_metrics: tuple = ()  # train metrics shown beside the loss on the progress bar ("psnr")
    batch_unit: str = ""  # what `batch_size` counts ("rays"): the bar shows them per second

    model: torch.nn.Module  # everything trained; its state is saved for resume

    @abc.abstractmethod
    def config_dict(self) -> dict:
        """The task's own settings (model, losses, data), for run.json and the resume check."""

    @abc.abstractmethod
    def sample_batch(self, rng: np.random.Generator, batch_size: int) -> Any:
        """A training batch (CPU tensors: a dict, or a record with `to(device)`) drawn with
        `rng` only, so it can be replayed."""

    def next_batch(self, ctx: StepContext, rng: np.random.Generator, batch_size: int) -> Any:
        """The batch of the step `ctx` runs; by default `sample_batch`. A task whose batches
        depend on how far the run is (stages) reads `ctx.progress()` here."""
        return self.sample_batch(rng, batch_size)

    def compute_loss(self, net: torch.nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        """(loss to minimise, {metric: float}) for the default one-optimiser step; `net` may be
        the DDP wrapper of `self.model`."""
        raise NotImplementedError(f"{type(self).__name__} defines neither compute_loss nor train_step")

    def train_step(self, ctx: StepContext, batch: dict, step: int) -> dict:
        """One training step; returns {metric: value}, "loss" among them. Override to own the step."""
        with ctx.autocast():
            loss, metrics = self.compute_loss(ctx.net, batch, step)
        ctx.step(None, loss)
        return {"loss": loss.detach(), **metrics}

    def optimizers(self, run_schedule: LRSchedule) -> list[OptimizerSpec]:
        """The named optimisers; by default one Adam over every trainable parameter."""
        return [OptimizerSpec("main", [ParamGroup("all", self.model.parameters())])]

    @abc.abstractmethod
    def validate(self) -> dict:
        """Validation metrics of `self.model` on held-out data (deterministic)."""

    def validation_images(self) -> dict[str, np.ndarray]:
        """{name: uint8 H x W x 3} written to OUT/validation/step-N/NAME.png after each validation."""
        return {}

    @abc.abstractmethod
    def export(self, meta: dict) -> Checkpoint:
        """The trained component as a stage checkpoint (what `geneface run` loads)."""

    def on_validation(self, metrics: dict, step: int) -> Optional[str]:
        """React to validation (e.g. switch a loss on); runs on every rank with rank 0's metrics.

        Return a reason (one line, e.g. "collapse: generated motion lost 80 % of its variance")
        to stop the run here; it is printed and recorded in run.json.
        """
        return None

    def choose_model(self, validations: list[dict], out) -> Union[int, Path, None]:
        """With `keep_candidates`: the step (one of `validations`' [{"step", "metrics"}]) whose
        export becomes OUT/model.safetensors, or the path of a checkpoint the task wrote itself
        (e.g. candidates averaged); may write its reasons into `out`. None: the best by
        `best_metric`."""
        return None

    def after_step(self, step: int) -> None:
        """Called on every rank after each finished step (`step` counts finished steps)."""

    def to(self, device: torch.device) -> None:
        """Move the model (and anything else the loss uses) to `device`."""
        self.model.to(device)

    def state(self) -> dict:
        """JSON-safe task state that must survive a resume."""
        return {}

    def load_state(self, state: dict) -> None:
        pass
