"""A person's frames and masks read from disk as a renderer's training batches ask for them.

A 40-minute person at 128 px is about 4 GB of frames and masks: `PersonRendererTask` keeps
none of it in memory. Each batch reads its few frames (`FrameStore.batch`), the most recent
ones kept in a small least-recently-used cache (a validation or a short person re-reads the
same frames); what is per frame and small (boxes, landmarks, poses) stays in arrays. What
needed every frame at once (where a head or a person was seen) is one streaming pass
(`regions`), masks decoded a few ahead on a thread (geneface.core.prefetch).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

import numpy as np

from geneface.core.prefetch import prefetch

# The cache's share of memory: frames and masks of at most this many bytes (a few hundred
# 128 px frames, a few dozen at 512 px).
CACHE_BYTES = 64 * 1024 * 1024


class FrameStore:
    """Frame i of `ds` and its mask, read on demand (`ds.frame(i)`, `ds.mask(i)`: the same
    arrays an all-in-memory copy holds), the last `capacity` kept."""

    def __init__(self, ds, capacity: int = 0, min_capacity: int = 16):
        self.ds = ds
        per_frame = ds.size * ds.size * 4  # rgb + mask, uint8
        self.capacity = capacity or max(min_capacity, CACHE_BYTES // per_frame)
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.reads = 0  # frames read from disk (cache misses)

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(frame (H, W, 3) uint8, mask (H, W) uint8) of frame `index`."""
        index = int(index)
        hit = self._cache.get(index)
        if hit is not None:
            self._cache.move_to_end(index)
            return hit
        item = (self.ds.frame(index), self.ds.mask(index))
        self.reads += 1
        self._cache[index] = item
        if len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return item

    def batch(self, frames: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """Frames (F, H, W, 3) and masks (F, H, W) of `frames`, in order."""
        items = [self.get(f) for f in frames]
        return np.stack([f for f, _ in items]), np.stack([m for _, m in items])


def regions(ds, frames: Iterable[int], head_label: int) -> tuple[np.ndarray, np.ndarray]:
    """(head, person): (H, W) bool, where any of `frames`' masks has `head_label` / any label
    (> 0), one mask in memory at a time."""
    s = ds.size
    head, person = np.zeros((s, s), bool), np.zeros((s, s), bool)
    for mask in prefetch((ds.mask(int(f)) for f in frames), depth=16):
        head |= mask == head_label
        person |= mask > 0
    return head, person
