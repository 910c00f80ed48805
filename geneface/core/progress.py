"""Progress bars for long work (rich): items per second and time left, on stderr.

`track` (one bar over an iterable), `ProgressBars` (several), `PhaseProgress` (items done,
and the current item's phase: training, then rendering, then scoring, say).
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")


def make_progress(unit: str = "frame"):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    # Descriptions and rates carry names (a clip's folder, a renderer run): plain text, not rich
    # markup, which would drop a name's `[...]`.
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}", markup=False),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )


class ProgressBars:
    """Several bars in one display, each advanced through the callable `task()` returns;
    silent (and rich never imported) when `quiet`."""

    def __init__(self, quiet: bool = False) -> None:
        self._progress = None if quiet else make_progress()

    def __enter__(self) -> "ProgressBars":
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def task(self, description: str, total: Optional[int], unit: str = "frame") -> Callable[[int], None]:
        if self._progress is None:
            return lambda n=1: None
        progress = self._progress
        task = progress.add_task(description, total=total, rate="")

        def advance(n: int = 1) -> None:
            progress.advance(task, n)
            speed = progress.tasks[task].speed
            if speed:
                progress.update(task, rate=f"{speed:.2f} {unit}/s")

        return advance


def track(iterable: Iterable[T], total: Optional[int], description: str, unit: str = "frame",
          quiet: bool = False) -> Iterator[T]:
    """Iterate with a progress bar showing `unit`s per second and the time left (no bar, and
    rich never imported, when `quiet`)."""
    with ProgressBars(quiet) as bars:
        advance = bars.task(description, total, unit)
        for item in iterable:
            yield item
            advance(1)


class PhaseProgress:
    """Two lines: the items done (of `total`), and the current item's phase, each phase a bar
    of its own (`phase`, then `set` or `advance`); silent (and rich never imported) unless
    `enabled`."""

    def __init__(self, enabled: bool, total: int, description: str = "items") -> None:
        self.progress = None
        if enabled:
            self.progress = make_progress()
            self.progress.start()
            self.overall = self.progress.add_task(description, total=total, rate="")
            self.current = None
        self._last = 0.0

    def phase(self, description: str, total: Optional[float]) -> None:
        """A new bar for the current item's next phase (the last phase's bar goes)."""
        if self.progress is None:
            return
        if self.current is not None:
            self.progress.remove_task(self.current)
        self.current = self.progress.add_task(description, total=total, rate="")

    def set(self, completed: float, rate: str = "", force: bool = False) -> None:
        """The phase's bar at `completed` (at most five updates a second unless `force`)."""
        if self.progress is None or self.current is None:
            return
        now = time.monotonic()
        if force or now - self._last > 0.2:
            self._last = now
            self.progress.update(self.current, completed=completed, rate=rate)

    def advance(self, n: int = 1) -> None:
        if self.progress is not None and self.current is not None:
            self.progress.advance(self.current, n)

    def done(self, name: str) -> None:
        """One more item done (`name`: the last one)."""
        if self.progress is not None:
            self.progress.update(self.overall, advance=1, rate=f"last: {name}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
