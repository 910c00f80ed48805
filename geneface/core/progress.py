"""Progress bars for long work (rich): items per second and time left, on stderr."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")


def make_progress(unit: str = "frame"):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
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


def track(iterable: Iterable[T], total: Optional[int], description: str, unit: str = "frame") -> Iterator[T]:
    """Iterate with a progress bar showing `unit`s per second and the time left."""
    with ProgressBars() as bars:
        advance = bars.task(description, total, unit)
        for item in iterable:
            yield item
            advance(1)
