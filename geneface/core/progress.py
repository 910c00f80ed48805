"""Progress bars for long work (rich): items per second and time left, on stderr."""

from __future__ import annotations

from typing import Iterable, Iterator, Optional, TypeVar

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


def track(iterable: Iterable[T], total: Optional[int], description: str, unit: str = "frame") -> Iterator[T]:
    """Iterate with a progress bar showing `unit`s per second and the time left."""
    with make_progress(unit) as progress:
        task = progress.add_task(description, total=total, rate="")
        for item in iterable:
            yield item
            progress.advance(task)
            speed = progress.tasks[task].speed
            if speed:
                progress.update(task, rate=f"{speed:.1f} {unit}/s")
