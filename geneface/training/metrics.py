"""Where training metrics go: a CSV always, TensorBoard when it is installed, a progress bar.

The CSV is long-form (`step,phase,name,value`), so metrics that appear mid-run (the VAE's
sync loss once it is switched on) need no new column. On resume, rows past the resumed step
(written after the last saved state, before a crash) are dropped, so the file ends up the
same as an uninterrupted run's.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Optional

from geneface.core.atomic import atomic_output

CSV_FIELDS = ("step", "phase", "name", "value")


def tensorboard_writer(folder: Path, purge_step: Optional[int]):
    """A SummaryWriter, or None when tensorboard is not installed (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises this when the tensorboard package is missing
        return None
    return SummaryWriter(str(folder), purge_step=purge_step)


class MetricsLog:
    def __init__(self, folder: Path, resume_step: Optional[int] = None, tensorboard: bool = True):
        self.path = Path(folder) / "metrics.csv"
        if resume_step is not None and self.path.exists():
            self._truncate(resume_step)
        new = not self.path.exists()
        self._file = open(self.path, "a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(CSV_FIELDS)
        self._tb = tensorboard_writer(Path(folder) / "tensorboard", resume_step) if tensorboard else None

    def _truncate(self, step: int) -> None:
        with open(self.path, newline="") as handle:
            rows = [r for r in csv.reader(handle)]
        keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
        with atomic_output(self.path) as tmp, open(tmp, "w", newline="") as handle:
            csv.writer(handle).writerows(keep)

    def write(self, step: int, phase: str, metrics: dict) -> None:
        for name in sorted(metrics):
            value = float(metrics[name])
            self._csv.writerow((step, phase, name, f"{value:.8g}"))
            if self._tb is not None:
                self._tb.add_scalar(f"{phase}/{name}", value, step)
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: Path) -> list[tuple[int, str, str, float]]:
    """All rows of a metrics.csv as (step, phase, name, value)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [(int(r["step"]), r["phase"], r["name"], float(r["value"])) for r in rows]


class StepProgress:
    """A rich progress bar: step / total, recent loss (and the task's `shown` metrics), steps
    per second, or `unit` per second (`batch_size` of them per step) when the task names one (stderr)."""

    def __init__(self, total: int, start: int, description: str, enabled: bool = True,
                 shown: tuple = (), unit: str = "", batch_size: int = 0):
        self.enabled = enabled
        self._bar = None
        self._t0 = time.perf_counter()
        self._start = start
        self._shown, self._unit, self._batch = tuple(shown), unit, batch_size
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[extra]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._bar.start()
        self._task = self._bar.add_task(description, total=total, completed=start, loss="-", extra="", rate="")

    def update(self, step: int, means: Optional[dict]) -> None:
        """`means`: the train metrics last logged (None before the first log line)."""
        if self._bar is None:
            return
        elapsed = time.perf_counter() - self._t0
        rate = (step - self._start) / elapsed if elapsed > 0 else 0.0
        means = means or {}
        loss = means.get("loss")
        extra = " ".join(f"{k} {means[k]:.2f}" for k in self._shown if k in means)
        rate_text = f"{rate * self._batch:,.0f} {self._unit}/s" if self._unit else f"{rate:.1f} steps/s"
        self._bar.update(self._task, completed=step, loss="-" if loss is None else f"{loss:.4f}", extra=extra,
                         rate=rate_text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
