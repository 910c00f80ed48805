"""Measuring a piece of work: its peak memory and the wall time of each item it yields.

- `rss_bytes`: this process's resident memory now.
- `PeakMemory`: the peak resident memory of a block, in bytes: on Linux the kernel's
  high-water mark `VmHWM`, reset at `start` (exact); elsewhere a thread sampling RSS every
  2 ms. Never tracemalloc, which does not see torch's allocations.
- `PeakUse`: the peak of a block above the process before it, on CPU (`PeakMemory`) or, for
  work on a CUDA device, `torch.cuda.max_memory_allocated` (so weights count, the caching
  allocator's slack does not).
- `timed`: each item of an iterator with the wall time spent getting it.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")


def _status_kb(field: str) -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_bytes() -> int:
    """Resident memory of this process now."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no "now" here: the peak so far
        return peak if sys.platform == "darwin" else peak * 1024


def release_free_memory() -> None:
    """Collect garbage and hand glibc's free heap back to the system, so that memory freed by
    earlier work is not silently reused below a baseline taken now."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak resident memory of a block, in bytes: Linux's high-water mark reset at `start`
    (exact), else a thread sampling RSS every 2 ms."""

    def __init__(self) -> None:
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._peak = 0
        self.method = ""

    def start(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            hwm, rss = _status_kb("VmHWM"), _status_kb("VmRSS")
            if hwm is not None and rss is not None and hwm <= rss + 4096:  # it really was reset
                self.method = "VmHWM"
                return
        except OSError:
            pass
        self.method = "sampled RSS"
        self._peak = rss_bytes()

        def sample():
            while not self._stop.wait(0.002):
                self._peak = max(self._peak, rss_bytes())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop(self) -> int:
        if self.method == "VmHWM":
            return int(_status_kb("VmHWM")) * 1024
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return max(self._peak, rss_bytes())


class PeakUse:
    """The peak memory of a block above the process as it was when this was made.

    Made before the work loads anything (free memory is released first, so the baseline is
    honest); `start(device)` where the peak begins to count (after loading, say), then
    `stop()` -> (bytes, kind), kind "cuda" for a CUDA `device`, else "cpu (VmHWM)" or
    "cpu (sampled RSS)".
    """

    def __init__(self) -> None:
        import torch

        release_free_memory()
        self._cpu_before = rss_bytes()
        self._gpu_before = 0
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            self._gpu_before = torch.cuda.memory_allocated()
        self._device = None
        self._meter = PeakMemory()

    def start(self, device=None) -> None:
        """Count the peak from now on: on `device` when it is a CUDA torch device, else on CPU."""
        import torch

        gc.collect()
        if device is not None and device.type == "cuda":
            self._device = device
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        else:
            self._meter.start()

    def stop(self) -> tuple[int, str]:
        if self._device is not None:
            import torch

            memory, kind = torch.cuda.max_memory_allocated(self._device) - self._gpu_before, "cuda"
        else:
            memory, kind = self._meter.stop() - self._cpu_before, f"cpu ({self._meter.method})"
        return max(0, int(memory)), kind


def timed(items: Iterable[T]) -> Iterator[tuple[float, T]]:
    """(seconds, item) for each item of `items`: the wall time spent getting that item alone
    (`time.perf_counter`), the work of whoever consumes it left out."""
    iterator = iter(items)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            return
        yield time.perf_counter() - t0, item
