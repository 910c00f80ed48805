"""Fitting `nearest_frame`: index one person's training frames; no optimiser, no steps.

`geneface train renderer --plugin nearest_frame --data DATASET --out DIR` reads a
`geneface process` dataset and keeps, for every training frame,

- its canonical landmarks (landmarks/canonical68.npy) and the dataset's statistics
  (landmarks/stats.npz), which the renderer matches motion against;
- the frame and its mask, as the dataset's own JPEG and PNG bytes (frames/, masks/): no
  decoding and re-encoding, so nothing is lost and the checkpoint is about the size of
  those files;

plus the background plate. Training frames are those before `Dataset.held_out_range()` (the last
1/11 of the video is never indexed: it is what held-out evaluation renders) whose face the
tracker found: frames flagged FAILED or INTERPOLATED in tracking.npz have landmarks that were
filled in, not measured, so they would be wrong keys. Frames whose mask holds no person are
left out too (they would render as bare plate). `geneface train` writes the result as
OUT/model.safetensors and OUT/run.json: everything `geneface run` needs, the dataset
included, so the checkpoint renders anywhere and the dataset may move or go.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from geneface.core.checkpoint import stage_checkpoint
from geneface.core.dataset import (FLAG_FAILED, FLAG_INTERPOLATED, FRAMES_DIR, HEAD, MASK_EXT, MASKS_DIR, TORSO,
                                   Dataset, DatasetError, frame_name)
from geneface.core.person import open_dataset
from geneface.errors import UsageError
from geneface.training.recipe import BuiltTask, Recipe, TrainInputs

REPROCESS = "reprocess the video with `geneface process`"


def _read_bytes(file: Path) -> np.ndarray:
    try:
        return np.frombuffer(file.read_bytes(), np.uint8)
    except OSError as exc:
        raise DatasetError(f"{file}: missing or unreadable ({exc.strerror or exc}); nearest_frame needs the "
                           f"dataset's frames and masks ({REPROCESS})") from None


def _decoded_shape(cv2, data: np.ndarray, flags: int, file: Path, expect: tuple) -> np.ndarray:
    image = cv2.imdecode(data, flags)
    if image is None or image.shape != expect:
        got = "not an image" if image is None else f"{' x '.join(map(str, image.shape))}"
        raise DatasetError(f"{file}: expected a {' x '.join(map(str, expect))} image, got {got} ({REPROCESS})")
    return image


def index_dataset(ds: Dataset) -> tuple[dict, dict]:
    """(state for NearestFrame.load_state_dict, what was indexed) from one dataset.

    Every indexed file is decoded once here, so a damaged dataset fails now, naming the
    file, and never later while rendering.
    """
    import cv2

    n, size = ds.n_frames, ds.size
    held = ds.held_out_range()[0]  # the one held-out rule every person-specific trainer follows (core.dataset)
    flags = np.asarray(ds.tracking()["flags"])
    landmarks = ds.landmarks_canonical()
    mean, std = ds.landmark_stats()
    if flags.shape != (n,) or landmarks.shape != (n, 68, 3):
        raise DatasetError(f"{ds.path}: tracking.npz flags {flags.shape} or landmarks/canonical68.npy "
                           f"{landmarks.shape} do not match its {n} frames ({REPROCESS})")
    tracked = (flags[:held] & (FLAG_FAILED | FLAG_INTERPOLATED)) == 0
    candidates = np.flatnonzero(tracked)
    plate = ds.background()
    if plate.shape != (size, size, 3):
        raise DatasetError(f"{ds.path}: background.png is {plate.shape[1]} x {plate.shape[0]}, the frames {size} x {size}")

    keep, jpegs, pngs, no_person = [], [], [], []
    for i in candidates:
        frame_file = ds.path / FRAMES_DIR / frame_name(int(i))
        mask_file = ds.path / MASKS_DIR / frame_name(int(i), MASK_EXT)
        jpeg, png = _read_bytes(frame_file), _read_bytes(mask_file)
        _decoded_shape(cv2, jpeg, cv2.IMREAD_COLOR, frame_file, (size, size, 3))
        labels = _decoded_shape(cv2, png, cv2.IMREAD_UNCHANGED, mask_file, (size, size))
        if not ((labels == HEAD) | (labels == TORSO)).any():
            no_person.append(int(i))
            continue
        keep.append(int(i))
        jpegs.append(jpeg)
        pngs.append(png)
    if not keep:
        raise UsageError(f"{ds.path}: no frame to index: of its first {held} frames (the rest is held out), "
                         f"{held - len(candidates)} have no tracked face and {len(no_person)} an empty person mask")

    def concat(blobs):
        offsets = np.zeros(len(blobs) + 1, np.int64)
        offsets[1:] = np.cumsum([len(b) for b in blobs])
        return np.concatenate(blobs), offsets

    jpeg, jpeg_offsets = concat(jpegs)
    mask_png, mask_offsets = concat(pngs)
    keep_idx = np.asarray(keep, np.int64)
    state = {"landmarks": landmarks[keep_idx].astype(np.float32), "mean": np.asarray(mean, np.float32),
             "std": np.asarray(std, np.float32), "frame_index": keep_idx, "plate": plate,
             "jpeg": jpeg, "jpeg_offsets": jpeg_offsets, "mask_png": mask_png, "mask_offsets": mask_offsets}
    info = {
        "data": str(ds.path),
        "n_frames": n,
        "size": size,
        "held_out": [held, n],
        "indexed": len(keep),
        "skipped_untracked": int(held - len(candidates)),
        "skipped_no_person": no_person,
        "frame_bytes": int(len(jpeg) + len(mask_png)),
    }
    return state, info


class NearestFrameRecipe(Recipe):
    """`geneface train renderer --plugin nearest_frame --data DATASET --out DIR`: a fitted checkpoint.

    The loop flags (--steps, --lr, ...) do not apply; the file's `model` section (or a spec's
    `config:` later) sets the matching and blending options.
    """

    def build(self, inputs: TrainInputs) -> BuiltTask:
        if len(inputs.data) != 1:
            raise UsageError(f"--data: nearest_frame indexes one person's dataset (give --data once, got "
                             f"{len(inputs.data)})")
        path = Path(inputs.data[0]).resolve()  # recorded in run.json: usable from any folder
        started = time.perf_counter()
        ds = open_dataset(path)
        stage = inputs.stage_cls(inputs.model_config())
        state, info = index_dataset(ds)
        stage.load_state_dict(state)
        info["seconds"] = round(time.perf_counter() - started, 3)
        return BuiltTask(None, info, fitted=stage_checkpoint(stage, meta=info))
