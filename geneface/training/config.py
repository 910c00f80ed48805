"""The run record every trainer shares, and the learning-rate schedules.

A run is described by one `TrainConfig` (loop settings) plus the task's own config (model and
loss settings); both are written to `run.json` in the output folder and checked again on
`--resume`, so a resumed run cannot silently continue with different settings. `TrainConfig`
gives the run's learning-rate schedule; a task may give any parameter group its own
`LRSchedule` (a NeRF's grid tables learn ten times faster than its MLPs).
"""

from __future__ import annotations

import math
from typing import Literal

import attrs

Schedule = Literal["constant", "cosine", "exponential"]


def _positive(_inst, attribute, value):
    if value <= 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value}")


def _non_negative(_inst, attribute, value):
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


@attrs.define
class LRSchedule:
    """Learning rate against the step: linear warm-up, then constant, cosine or exponential decay."""

    lr: float = attrs.field(validator=_positive)
    kind: Schedule = "cosine"
    warmup: int = attrs.field(default=0, validator=_non_negative)
    decay_rate: float = attrs.field(default=0.5, validator=_positive)  # exponential: per decay_steps
    decay_steps: int = attrs.field(default=10_000, validator=_positive)
    min_lr_ratio: float = attrs.field(default=0.0, validator=_non_negative)  # cosine floor

    def lr_at(self, step: int, total_steps: int) -> float:
        """Learning rate for optimiser step `step` (0-based) of a run of `total_steps`."""
        if self.warmup and step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        after = step - self.warmup
        if self.kind == "constant":
            return self.lr
        if self.kind == "exponential":
            return self.lr * self.decay_rate ** (after / self.decay_steps)
        span = max(1, total_steps - self.warmup)
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, after / span)))
        return self.lr * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)


@attrs.define
class TrainConfig:
    """Loop settings of one training run (defaults: METHOD.md's full-size runs)."""

    steps: int = attrs.field(default=40_000, validator=_positive)
    batch_size: int = attrs.field(default=64, validator=_positive)  # per process under DDP
    lr: float = attrs.field(default=5e-4, validator=_positive)
    schedule: Schedule = "cosine"
    warmup: int = attrs.field(default=0, validator=_non_negative)
    # exponential: lr * decay_rate ** (step / decay_steps)
    decay_rate: float = attrs.field(default=0.5, validator=_positive)
    decay_steps: int = attrs.field(default=10_000, validator=_positive)
    min_lr_ratio: float = attrs.field(default=0.0, validator=_non_negative)  # cosine floor
    grad_clip: float = attrs.field(default=0.0, validator=_non_negative)  # 0: off
    seed: int = 0
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:N
    amp: bool = True  # mixed precision; only ever used on CUDA
    ckpt_every: int = attrs.field(default=1000, validator=_positive)  # resume state
    keep_ckpts: int = attrs.field(default=2, validator=_positive)  # resume states kept
    val_every: int = attrs.field(default=1000, validator=_positive)
    keep_best: int = attrs.field(default=3, validator=_non_negative)  # best exported models kept
    log_every: int = attrs.field(default=50, validator=_positive)
    threads: int = attrs.field(default=0, validator=_non_negative)  # torch CPU threads; 0: torch's choice
    # Wall-clock budget of one invocation of the loop, in minutes (0: off). Checked between
    # steps; when spent, the run ends like a task's own stop (validated, saved, exported, the
    # reason in run.json). `--resume` continues a run stopped this way, with a fresh budget.
    max_minutes: float = attrs.field(default=0.0, validator=_non_negative)
    # Export the model as it is when the loop's wall clock first passes each of these minutes
    # (`snapshots/minute-M.safetensors`): how a model trained for a long budget looked earlier,
    # without a second run (`geneface bench renderers --snapshot`). Timed like `max_minutes`.
    snapshot_minutes: tuple = attrs.field(default=(), converter=lambda v: tuple(sorted(float(m) for m in v or ())),
                                          validator=attrs.validators.deep_iterable(_positive))

    def lr_schedule(self, lr: float = 0.0) -> LRSchedule:
        """The run's schedule (peak `lr`, default the run's `lr`); tasks derive group schedules from it."""
        return LRSchedule(lr or self.lr, self.schedule, self.warmup, self.decay_rate, self.decay_steps,
                          self.min_lr_ratio)

    def lr_at(self, step: int) -> float:
        """Learning rate of the run's schedule for optimiser step `step` (0-based)."""
        return self.lr_schedule().lr_at(step, self.steps)


# Fields that may change between a run and its resumption without changing its result
# (`steps` too, unless the cosine schedule is stretched by it).
RESUMABLE_CHANGES = {"device", "log_every", "keep_ckpts", "keep_best", "ckpt_every", "threads", "max_minutes",
                     "snapshot_minutes"}


def changed_on_resume(saved: dict, now: dict) -> list[str]:
    """Keys of the saved run config that `now` changes in a way that alters the result."""
    allowed = set(RESUMABLE_CHANGES)
    if now.get("schedule") != "cosine":
        allowed.add("steps")
    return sorted(k for k in set(saved) | set(now) if k not in allowed and saved.get(k) != now.get(k))
