"""The training loop every trainable stage reuses.

A `TrainTask` (geneface.training.task) says what is trained: model, batches, optimisers and
their parameter groups, the step, validation, export. The `Trainer` does the rest, the same
way for every task:

- seeding, device choice (CUDA when present) and mixed precision on CUDA (bf16 where the
  GPU has it, else fp16 with a gradient scaler);
- each optimiser's learning rates set per parameter group before every step (the group's
  schedule, or the run's);
- a resume state every `ckpt_every` steps (`state/step-XXXXXXXX.safetensors`: model,
  every optimiser, the gradient scaler, RNG states, step, task state); `resume=True` continues
  from the newest and ends with the same weights an uninterrupted run would have;
- validation every `val_every` steps, and keep-best-k exported models by the task's metric
  (`best/`), the best one also written as `model.safetensors`, the last as `last.safetensors`
  (a task with `keep_candidates` exports at every validation into `candidates/` and chooses
  the run's `model.safetensors` itself after the run, `choose_model`);
  validation images in `validation/step-XXXXXXXX/`; a task may stop the run on validation
  with a reason (printed, and recorded in run.json as `stopped`); so does a wall-clock budget
  (`max_minutes`, checked between steps: the run is validated, saved and exported at the
  step where it ran out, and `--resume` continues it with a fresh budget); `snapshot_minutes`
  exports the model as it is when that clock passes each mark (`snapshots/minute-M.safetensors`);
- metrics to `metrics.csv` (and TensorBoard when installed), a progress bar with the loss and
  steps per second;
- Ctrl-C or SIGTERM: the step under way finishes, the state is saved, then KeyboardInterrupt
  is raised (SIGTERM: its previous handler runs, the CLI's exiting 143); a second signal stops
  at once; files are written atomically, so none is left half done;
- DDP under `torchrun` (see geneface.training.distributed): per-process batches, averaged
  gradients, files written by rank 0 only.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from geneface.core.atomic import atomic_output
from geneface.core.checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from geneface.errors import UsageError
from geneface.training import distributed as ddp
from geneface.training.config import TrainConfig, changed_on_resume
from geneface.training.metrics import MetricsLog, StepProgress
from geneface.training.task import StepContext, TrainTask  # noqa: F401  (TrainTask: public here too)
from geneface.training.state import (
    capture_rng,
    flatten_optimizer,
    json_safe,
    prefixed,
    restore_rng,
    unflatten_optimizer,
    unprefixed,
)

STATE_KIND = "training_state"
_STATE_NAME = re.compile(r"^step-(\d{8})\.safetensors$")


class _Interrupt:
    """Ctrl-C (SIGINT) and SIGTERM set a flag the loop checks between steps, so the step under
    way finishes and its state is saved; a second signal stops at once. SIGTERM is then handed
    to the handler it had before (the CLI's: exit 143), so `timeout` or `docker stop` leaves a
    state that --resume continues, as Ctrl-C does."""

    def __init__(self) -> None:
        self.requested = False
        self._signal: Optional[int] = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(signum) is not signal.SIG_IGN:  # an ignored signal stays ignored
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            self._signal = signum
            self.stop()
        self.requested = True
        self._signal = signum

    def stop(self, message: str = "") -> None:
        """End the run as the signal that asked for it would have: KeyboardInterrupt for
        Ctrl-C; for SIGTERM its previous handler (the default one ends the process)."""
        if self._signal == signal.SIGTERM:
            previous = self._previous.get(signal.SIGTERM)
            if callable(previous):
                previous(signal.SIGTERM, None)
            else:
                self.__exit__()
                signal.raise_signal(signal.SIGTERM)
        raise KeyboardInterrupt(message)

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}


class Trainer:
    def __init__(
        self,
        task: TrainTask,
        config: TrainConfig,
        out: Path,
        resume: bool = False,
        progress: bool = True,
        extra_run_info: Optional[dict] = None,
        on_step: Optional[Callable[[int], None]] = None,
    ):
        self.task = task
        self.config = config
        self.out = Path(out)
        self.resume = resume
        self.progress = progress
        self.extra_run_info = extra_run_info or {}
        self.on_step = on_step  # test hook: called after every finished step
        self.dist = ddp.init_distributed(config.device)
        self.device = ddp.choose_device(config.device, self.dist.local_rank)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.step = 0
        self.best: list[dict] = []  # [{"step", "value", "file"}], best first
        self.validations: list[dict] = []  # [{"step", "metrics"}] of every validation, in order
        self._acc: dict[str, list[float]] = {}  # train metrics since the last log line
        self.stopped: Optional[dict] = None  # {"step", "reason"} when the task stopped the run
        self._out_of_time = False
        self._budget_started: Optional[float] = None  # `stopped` is the time budget's (a resumed run goes on)
        self._started_at: Optional[float] = None  # wall clock when fit() began: run.json's `started`

    # -- files ---------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.out / "state"

    @property
    def best_dir(self) -> Path:
        return self.out / "best"

    @property
    def candidates_dir(self) -> Path:
        return self.out / "candidates"

    def run_record(self) -> dict:
        from geneface.core.config import unstructure

        return {
            "task": self.task.name,
            "train": unstructure(self.config),
            "task_config": self.task.config_dict(),
            "world_size": self.dist.world_size,
            **self.extra_run_info,
        }

    def _prepare_out(self) -> Optional[Path]:
        """Check the output folder against --resume; return the state file to resume from."""
        latest = self.latest_state(self.out)
        if not self.resume:
            if latest is not None or (self.out / "run.json").exists():
                raise UsageError(f"{self.out}: already holds a training run; pass --resume to continue it or pick another --out")
            return None
        if latest is None:
            return None  # nothing saved yet: start from scratch
        saved = json.loads((self.out / "run.json").read_text())
        now = json_safe(self.run_record())
        changed = changed_on_resume(saved.get("train", {}), now["train"])
        changed += [f"task_config.{k}" for k in sorted(set(saved.get("task_config", {})) | set(now["task_config"]))
                    if saved.get("task_config", {}).get(k) != now["task_config"].get(k)]
        changed += [k for k in ("world_size", *self.extra_run_info) if saved.get(k) != now.get(k)]
        if changed:
            raise UsageError(f"{self.out}: cannot resume with different settings ({', '.join(changed)}); "
                             "use the original ones or a new --out")
        return latest

    def _agreed_resume_point(self) -> Optional[Path]:
        """`_prepare_out` on every rank, and the same answer on all of them. Under torchrun on
        several machines each node reads --out itself: one that sees another folder (not a
        shared file system) would start from step 0 while rank 0 resumes, or refuse alone,
        and the others would wait for it in a collective until the timeout. Every rank raises
        the same UsageError instead."""
        try:
            latest, problem = self._prepare_out(), None
        except UsageError as exc:
            latest, problem = None, exc
        seen = ddp.gather((str(problem) if problem else None, latest.name if latest else None), self.dist)
        if problem is not None:
            raise problem
        refused = [f"rank {rank}: {message}" for rank, (message, _) in enumerate(seen) if message]
        if refused:
            raise UsageError(refused[0])
        if len({name for _, name in seen}) > 1:
            found = ", ".join(f"rank {rank}: {name or 'none'}" for rank, (_, name) in enumerate(seen))
            raise UsageError(f"{self.out}: the processes see different resume states ({found}); every machine "
                             "must see the same --out (a shared file system)")
        return latest

    @staticmethod
    def latest_state(out: Path) -> Optional[Path]:
        folder = Path(out) / "state"
        if not folder.is_dir():
            return None
        found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _STATE_NAME.match(p.name)))
        return found[-1][1] if found else None

    # -- state ---------------------------------------------------------------------------
    def _save_state(self, optimizers: dict, scaler, data_rng) -> None:
        rng_tensors, rng_meta = capture_rng(data_rng)
        everyone = ddp.gather((rng_tensors, rng_meta), self.dist)
        if not self.dist.is_main:
            return
        tensors = prefixed(self.task.model.state_dict(), "model.")
        opt_metas = {}
        for name, optimizer in optimizers.items():
            opt_tensors, opt_metas[name] = flatten_optimizer(optimizer.state_dict(), f"optim.{name}.")
            tensors.update(opt_tensors)
        rng_metas = []
        for rank, (t, m) in enumerate(everyone):
            tensors.update(prefixed(t, f"rng{rank}."))
            rng_metas.append(m)
        meta = {
            "step": self.step,
            "optimizers": opt_metas,
            "rng": rng_metas,
            "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
            "task": self.task.state(),
            "best": self.best,
            "validations": self.validations,
            "acc": self._acc,
            "stopped": self.stopped,
            "out_of_time": self._out_of_time,
        }
        path = self.state_dir / f"step-{self.step:08d}.safetensors"
        save_checkpoint(path, Checkpoint(STATE_KIND, self.task.name, "1", json_safe(self.run_record()),
                                         tensors, json_safe(meta)))
        kept = sorted(p for p in self.state_dir.iterdir() if _STATE_NAME.match(p.name))
        for old in kept[: -self.config.keep_ckpts]:
            old.unlink()

    def _load_state(self, path: Path, optimizers: dict, scaler, data_rng) -> None:
        ckpt = read_checkpoint(path, expect_kind=STATE_KIND, expect_plugin=self.task.name)
        self.task.model.load_state_dict(unprefixed(ckpt.state, "model."))
        saved = ckpt.meta["optimizers"]
        if set(saved) != set(optimizers):
            raise UsageError(f"{path}: saved optimisers {', '.join(sorted(saved))} but the task has "
                             f"{', '.join(sorted(optimizers))}; resume with the same task")
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(unflatten_optimizer(ckpt.state, saved[name], optimizer.state_dict(),
                                                          f"optim.{name}."))
        if scaler is not None and ckpt.meta.get("scaler"):
            scaler.load_state_dict(ckpt.meta["scaler"])
        rank = self.dist.rank
        restore_rng(unprefixed(ckpt.state, f"rng{rank}."), ckpt.meta["rng"][rank], data_rng)
        self.task.load_state(ckpt.meta.get("task", {}))
        self.step = int(ckpt.meta["step"])
        self.best = list(ckpt.meta.get("best", []))
        self.validations = list(ckpt.meta.get("validations", []))
        self._acc = {k: list(v) for k, v in ckpt.meta.get("acc", {}).items()}
        self.stopped = ckpt.meta.get("stopped")
        if ckpt.meta.get("out_of_time"):
            self.stopped = None  # the budget was that invocation's: this one has its own
        if self.dist.is_main and self.best_dir.is_dir():
            # Best models exported after this state was saved will be exported again.
            listed = {b["file"] for b in self.best}
            for stray in self.best_dir.glob("*.safetensors"):
                if stray.name not in listed:
                    stray.unlink()

    # -- best-k --------------------------------------------------------------------------
    def _keep_best(self, metrics: dict) -> None:
        k = self.config.keep_best
        value = metrics.get(self.task.best_metric)
        if k == 0 or value is None or not np.isfinite(value):
            return
        ranked = self.best + [{"step": self.step, "value": float(value), "file": f"step-{self.step:08d}.safetensors"}]
        # Stable on ties: the earlier step stays ahead.
        ranked.sort(key=lambda b: (b["value"] if self.task.best_mode == "min" else -b["value"], b["step"]))
        new, dropped = ranked[:k], ranked[k:]
        if any(b["step"] == self.step for b in new):
            meta = {"step": self.step, "metrics": json_safe(metrics), "selected_by": self.task.best_metric}
            save_checkpoint(self.best_dir / f"step-{self.step:08d}.safetensors", self.task.export(meta))
        for b in dropped:
            (self.best_dir / b["file"]).unlink(missing_ok=True)
        self.best = new

    def _keep_candidate(self, metrics: dict) -> None:
        """Record every validation; a task that chooses its own model keeps every export."""
        self.validations = [v for v in self.validations if v["step"] < self.step]  # replayed after a resume
        self.validations.append({"step": self.step, "metrics": json_safe(metrics)})
        if self.task.keep_candidates:
            meta = {"step": self.step, "metrics": json_safe(metrics), "selected_by": "candidate"}
            save_checkpoint(self.candidates_dir / f"step-{self.step:08d}.safetensors", self.task.export(meta))

    # -- loop ----------------------------------------------------------------------------
    def _autocast(self):
        if self.device.type != "cuda" or not self.config.amp:
            return contextlib.nullcontext(), None
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        return torch.autocast("cuda", dtype=dtype), scaler

    def _validate(self) -> dict:
        metrics = None
        if self.dist.is_main:
            # Validation must not consume training randomness: the result of a run may not
            # depend on how often it was validated.
            devices = [self.device.index or 0] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices), _numpy_python_rng_kept():
                self.task.model.eval()
                with torch.no_grad():
                    metrics = json_safe(self.task.validate())
                    self._write_images(self.task.validation_images())
                self.task.model.train()
        return ddp.broadcast(metrics, self.dist)

    def _write_images(self, images: dict) -> None:
        if not images:
            return
        import cv2

        folder = self.out / "validation" / f"step-{self.step:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, image in images.items():
            image = np.asarray(image)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"{self.task.name}: validation image '{name}' must be uint8 H x W x 3, "
                                 f"got {image.dtype} {image.shape}")
            with atomic_output(folder / f"{name}.png") as tmp:
                if not cv2.imwrite(str(tmp), np.ascontiguousarray(image[:, :, ::-1])):
                    raise OSError(f"cannot write {folder / name}.png")

    def _log_train(self, log: Optional[MetricsLog]) -> Optional[dict]:
        """Write the train metrics averaged since the last log line; returns the averages."""
        if not self._acc:
            return None
        means = {k: float(np.mean(v)) for k, v in self._acc.items()}
        if log is not None:
            log.write(self.step, "train", means)
        self._acc = {}
        return means

    def _build_optimizers(self) -> tuple[dict, dict]:
        run_schedule = self.config.lr_schedule()
        specs = {spec.name: spec for spec in self.task.optimizers(run_schedule)}
        if not specs:
            raise ValueError(f"{self.task.name}: the task declares no optimiser")
        return {name: spec.build(run_schedule) for name, spec in specs.items()}, specs

    def _set_learning_rates(self, optimizers: dict, specs: dict) -> dict:
        """Every group's lr for this step; returns them for the log ("lr" = the first group's)."""
        rates = {}
        run_schedule = self.config.lr_schedule()
        for name, optimizer in optimizers.items():
            for group, torch_group in zip(specs[name].groups, optimizer.param_groups):
                torch_group["lr"] = (group.schedule or run_schedule).lr_at(self.step, self._total_steps())
                rates[f"lr/{name}/{group.name}"] = torch_group["lr"]
        first = next(iter(rates.values()))
        return {"lr": first} if len(rates) == 1 else {"lr": first, **rates}

    def run_share(self) -> float:
        """How far the run is (0..1): its share of the steps, or of the time budget if further."""
        share = self.step / max(1, self.config.steps)
        if self._budget_started is not None and self.config.max_minutes > 0:
            used = (time.monotonic() - self._budget_started) / (self.config.max_minutes * 60.0)
            share = max(share, min(1.0, used))
        return share

    def _total_steps(self) -> int:
        """The steps the schedules stretch over: `steps`, or under a time budget the steps the
        budget will allow at the pace so far (so a decay still decays when time, not the
        step count, ends the run)."""
        share = self.run_share()
        if self._budget_started is None or share <= self.step / max(1, self.config.steps) or self.step == 0:
            return self.config.steps
        return max(self.step + 1, int(self.step / share))

    def _average_gradients(self, params) -> None:
        """Gradients averaged over processes, for tasks whose model is not DDP-wrapped."""
        import torch.distributed as dist

        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad /= self.dist.world_size

    def fit(self) -> dict:
        """Train to `config.steps` (or until the task or the time budget stops the run); returns
        {"model": path, "last": path, "step": n, "best": [...], "stopped": {...} or None}."""
        cfg = self.config
        started = time.monotonic()
        self._started_at = time.time()
        budget = cfg.max_minutes * 60.0
        self._budget_started = started if budget else None
        pending_snapshots = list(cfg.snapshot_minutes)
        resume_from = self._agreed_resume_point()  # every rank has looked at --out before rank 0 writes to it
        is_main = self.dist.is_main
        if is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._write_run_record()

        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        data_rng = np.random.default_rng([cfg.seed, self.dist.rank])
        self.task.to(self.device)
        model = self.task.model
        model.train()
        optimizers, specs = self._build_optimizers()
        autocast, scaler = self._autocast()
        if resume_from is not None:
            self._load_state(resume_from, optimizers, scaler, data_rng)
        else:
            # DDP gives every rank rank 0's weights when it wraps the model; the noise
            # (dropout, the VAE's sampling) differs per rank, like the data does.
            torch.manual_seed(cfg.seed * 1000 + self.dist.rank)
        wrap = self.task.ddp_wrap and self.dist.enabled
        net = ddp.wrap_model(model, self.dist, self.device) if wrap else model
        if self.dist.enabled and not wrap:
            ddp.broadcast_parameters(model)
        average = self._average_gradients if self.dist.enabled and not wrap else (lambda params: None)

        log = MetricsLog(self.out, self.step if resume_from is not None else None) if is_main else None
        bar = StepProgress(cfg.steps, self.step, self.task.name, enabled=self.progress and is_main,
                           shown=self.task.progress_metrics, unit=self.task.batch_unit, batch_size=cfg.batch_size)
        shown = None
        try:
            with _Interrupt() as interrupt:
                while self.step < cfg.steps and self.stopped is None:
                    rates = self._set_learning_rates(optimizers, specs)
                    # The run's progress reaches the task through the step's context (staged
                    # tasks follow the time budget too).
                    ctx = StepContext(net, optimizers, specs, scaler, autocast, cfg.grad_clip, average,
                                      self.task.name, self.step, self.run_share)
                    batch = _to_device(self.task.next_batch(ctx, data_rng, cfg.batch_size), self.device)
                    metrics = self.task.train_step(ctx, batch, self.step)
                    if not ctx.stepped:
                        raise ValueError(f"{self.task.name}: train_step stepped no optimiser at step {self.step}")
                    if scaler is not None:
                        scaler.update()
                    self.step += 1
                    self.task.after_step(self.step)
                    for k, v in {**metrics, **rates}.items():
                        self._acc.setdefault(k, []).append(float(v))
                    # Out of time: this step ends the run as the last one would (every rank agrees).
                    out_of_time = bool(budget) and ddp.any_rank(time.monotonic() - started >= budget, self.dist)
                    last = self.step == cfg.steps or out_of_time

                    if self.step % cfg.log_every == 0 or last:
                        shown = self._log_train(log)
                    if self.step % cfg.val_every == 0 or last:
                        val = self._validate()
                        if log is not None:
                            log.write(self.step, "val", val)
                        reason = self.task.on_validation(val, self.step)
                        if is_main:
                            self._keep_best(val)
                            self._keep_candidate(val)
                        if reason:
                            self._stop(reason, log)
                    if out_of_time and self.stopped is None and self.step < cfg.steps:
                        self._out_of_time = True
                        self._stop(f"time budget of {cfg.max_minutes:g} min reached", log)
                    if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps or self.stopped:
                        self._save_state(optimizers, scaler, data_rng)
                    while pending_snapshots and time.monotonic() - started >= pending_snapshots[0] * 60.0:
                        self._snapshot(pending_snapshots.pop(0), time.monotonic() - started)
                    bar.update(self.step, shown)
                    if self.on_step is not None:
                        self.on_step(self.step)
                    if ddp.any_rank(interrupt.requested, self.dist):
                        if self.step % cfg.ckpt_every != 0 and self.step != cfg.steps:
                            self._save_state(optimizers, scaler, data_rng)
                        if is_main:
                            print(f"interrupted at step {self.step}; state saved in {self.state_dir}; "
                                  "run the same command with --resume to continue", file=sys.stderr)
                        interrupt.stop(f"interrupted at step {self.step}")
            result = self._finish() if is_main else {"step": self.step}
            ddp.barrier(self.dist)
            return result
        finally:
            bar.close()
            if log is not None:
                log.close()

    @property
    def snapshots_dir(self) -> Path:
        return self.out / "snapshots"

    def _snapshot(self, minutes: float, elapsed: float) -> None:
        """Export the model as it is now, for the `snapshot_minutes` mark `minutes`."""
        if not self.dist.is_main:
            return
        meta = {"step": self.step, "selected_by": "snapshot", "snapshot_minutes": minutes,
                "elapsed_minutes": elapsed / 60.0}
        save_checkpoint(self.snapshots_dir / f"minute-{minutes:g}.safetensors", self.task.export(meta))

    def _write_run_record(self) -> None:
        record = json_safe(self.run_record())
        if self._started_at is not None:
            # When this fit began (seconds since the epoch): run.json is written again when the run
            # stops, so its file time is no start time (benchmarks/bench_train_render.py's curve).
            record["started"] = self._started_at
        if self.stopped is not None:
            record["stopped"] = self.stopped
        with atomic_output(self.out / "run.json") as tmp:
            tmp.write_text(json.dumps(record, indent=2, sort_keys=True))

    def _stop(self, reason: str, log: Optional[MetricsLog]) -> None:
        self.stopped = {"step": self.step, "reason": str(reason)}
        if log is not None:
            self._log_train(log)  # the steps since the last log line are not lost
        if self.dist.is_main:
            self._write_run_record()
            print(f"{self.task.name}: stopped at step {self.step}: {reason}", file=sys.stderr)

    def _finish(self) -> dict:
        meta = {"step": self.step, "selected_by": "last"}
        if self.stopped is not None:
            meta["stopped"] = self.stopped
        last = self.out / "last.safetensors"
        save_checkpoint(last, self.task.export(meta))
        model = self.out / "model.safetensors"
        chosen = self.task.choose_model(self.validations, self.out) if self.task.keep_candidates else None
        if chosen is not None:
            source = Path(chosen) if isinstance(chosen, (str, Path)) else self.candidates_dir / f"step-{chosen:08d}.safetensors"
            with atomic_output(model) as tmp:
                shutil.copyfile(source, tmp)
            # relative to the run folder, so a resumed run reports the same choice as an uninterrupted one
            chosen = source.resolve().relative_to(self.out.resolve()).as_posix()
        elif self.best:
            with atomic_output(model) as tmp:
                shutil.copyfile(self.best_dir / self.best[0]["file"], tmp)
        else:
            with atomic_output(model) as tmp:
                shutil.copyfile(last, tmp)
        snapshots = sorted(self.snapshots_dir.glob("minute-*.safetensors")) if self.snapshots_dir.is_dir() else []
        return {"model": model, "last": last, "step": self.step, "best": list(self.best), "stopped": self.stopped,
                "chosen": chosen, "snapshots": snapshots}


@contextlib.contextmanager
def _numpy_python_rng_kept():
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def _to_device(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if callable(getattr(batch, "to", None)):  # a typed batch record (geneface.nerf.rays.RayBatch)
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch
