"""Run an iterator on a background thread a few items ahead, so producing (decoding) overlaps
consuming (tracking, writing)."""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def prefetch(iterable: Iterable[T], depth: int = 8) -> Iterator[T]:
    """The items of `iterable`, produced on a thread up to `depth` ahead; its errors are raised
    here, in the consumer, and a consumer that stops early stops the producer."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterable:
                if stop.is_set():
                    return
                items.put(item)
            items.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            items.put(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                items.get_nowait()
            except queue.Empty:
                thread.join(0.05)
