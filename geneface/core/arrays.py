"""Small array helpers shared by the stages and the dataset writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geneface.core.atomic import atomic_output


def fit_rows(values: np.ndarray, n: int, pad: str = "edge") -> np.ndarray:
    """Trim or pad along the first axis to exactly `n` rows.

    `pad="edge"` repeats the last row (features: a held last frame reads as the sound going
    on, not as a sudden silence); `pad="zeros"` appends zeros (samples: silence). An empty
    input pads with zeros either way.
    """
    values = np.asarray(values)
    if len(values) >= n:
        return values[:n]
    if pad not in ("edge", "zeros"):
        raise ValueError(f"pad must be 'edge' or 'zeros', got {pad!r}")
    if pad == "zeros" or len(values) == 0:
        fill = np.zeros((n - len(values),) + values.shape[1:], values.dtype)
    else:
        fill = np.repeat(values[-1:], n - len(values), axis=0)
    return np.concatenate([values, fill], axis=0)


def save_npy(path: Path, array: np.ndarray) -> None:
    """One array as `.npy` (no pickles), written under a temporary name and renamed."""
    with atomic_output(Path(path)) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)


def save_npz(path: Path, **arrays) -> None:
    """Named arrays as one `.npz` (no pickles), written under a temporary name and renamed."""
    # A file handle keeps numpy from appending a second ".npz" to the temporary name.
    with atomic_output(Path(path)) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True, as Python ints (they go into JSON and messages)."""
    edges = np.diff(np.r_[0, np.asarray(mask, bool).astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))
