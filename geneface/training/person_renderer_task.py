"""Training a renderer on one person's dataset, ray by ray: the generic task every renderer that
follows geneface.training.renderer_contract is trained by (both NeRFs: the model declares its
parameter groups and losses, geneface/plugins/hashgrid_nerf.py and vanilla_nerf.py; their
configuration is geneface.training.hashgrid_task and vanilla_task).

`PersonRendererTask`: the dataset's frames and masks read per batch from disk
(geneface.training.frame_store; a person of many minutes is never in memory), the held-out
last ceil(n / 11) frames (the field's protocol, by whole clips for a person of several clips:
never sampled for training; validation renders them from their own tracked
landmarks, or windows of them clamped to the held-out stretch, and their own poses), what the
model keeps from the data (the person's canvas, geneface.nerf.person: a plate per clip, camera,
regions over every training frame of every clip, pose statistics; the head's box), each
frame's rays over its own clip's plate, rays drawn by phase into a typed `RayBatch`
(geneface.nerf.rays) with the shares the task config gives, validation, the exported model
chosen among the last stage's validations, export. The phase comes from the run's progress,
which the trainer hands over with each step (`StepContext.progress`). Validation scores with
geneface.metrics.image (`psnr`, and `psnr_box` in its `face_box` and `mouth_box`), the same
definitions as `geneface bench` and `geneface eval`.

`PersonRendererRecipe`: `--data` once (the dataset checked once, here), `--profile` picks the
loop, model and task defaults; the config is built in layers by geneface.training.recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, ClassVar, Optional

import numpy as np
import torch

from geneface.core.checkpoint import Checkpoint, stage_checkpoint
from geneface.core.config import unstructure
from geneface.core.dataset import (BACKGROUND, C2W, FRAMES_DIR, HEAD, IMAGE68, MASKS_DIR, TORSO, Dataset, DatasetError,
                                   frame_name)
from geneface.core.person import open_dataset
from geneface.errors import UsageError
from geneface.metrics.image import face_box, mouth_box, psnr_box
from geneface.metrics.image import psnr as image_psnr
from geneface.nerf.fields.vanilla_head import window_indices
from geneface.nerf.rays import RayBatch
from geneface.nerf.stage import to_uint8
from geneface.training.config import LRSchedule
from geneface.training.frame_store import FrameStore, regions
from geneface.training.recipe import BuiltTask, Recipe, TrainInputs, TrainOption
from geneface.training.task import OptimizerSpec, StepContext, TrainTask


HEAD_BOX = "head_box"  # the ray share drawn in each frame's head mask's box


def check_dataset(ds: Dataset, plugin: str = "hashgrid_nerf") -> None:
    """One line naming the first file a renderer needs and the dataset (or one of a person's
    clips) lacks."""
    clip_dataset = getattr(ds, "clip_dataset", None)  # a person of several clips: each clip's own
    for part in [clip_dataset(k) for k in range(ds.n_clips)] if clip_dataset is not None else [ds]:
        for rel in (C2W, IMAGE68, BACKGROUND, f"{MASKS_DIR}/{frame_name(0, '.png')}", f"{FRAMES_DIR}/{frame_name(0)}"):
            if not (part.path / rel).is_file():
                what = "camera" if rel == C2W else "masks" if rel.startswith(MASKS_DIR) else rel
                raise DatasetError(f"{part.path}: no {part.path / rel}: {plugin} needs the dataset's {what} "
                                   "(reprocess the video with `geneface process`)")


def frame_boxes(image68: np.ndarray, size: int, box: Callable = face_box) -> np.ndarray:
    """Per frame, `box` (geneface.metrics.image's `face_box` or `mouth_box`) of its 68 image
    points as (x0, y0, x1, y1), (T, 4) int64: the boxes validation scores in. A frame without
    one (no face tracked, the box outside the image) gets the whole frame."""
    out = np.tile(np.array([0, 0, size, size], np.int64), (len(image68), 1))
    for i, points in enumerate(image68):
        try:
            out[i] = box(points, size)
        except UsageError:
            pass
    return out


def ray_boxes(points: np.ndarray, size: int, grow: float) -> np.ndarray:
    """Per frame, the (x0, y0, x1, y1) box of `points` (T, K, 2+) grown by `grow` of its side,
    in the image: where rays are drawn from. Not a score's box: those are
    geneface.metrics.image's, and drawing rays keeps the regions the renderers were tuned with."""
    lo, hi = points[..., :2].min(1), points[..., :2].max(1)
    pad = (hi - lo) * grow
    box = np.concatenate([lo - pad, hi + pad + 1], axis=1)
    return np.clip(np.round(box), 0, size).astype(np.int64)


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def edge_band(labels: np.ndarray, px: int) -> np.ndarray:
    """Flat indices of the pixels within `px` of a boundary between two labels of a label
    map (H, W): silhouette, hair line, the chin over the collar. Where a frame's error sits
    once the interiors are learnt, and a thin share of any uniform draw."""
    import cv2

    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    labels = np.ascontiguousarray(labels, np.uint8)
    return np.flatnonzero(cv2.dilate(labels, kernel) != cv2.erode(labels, kernel))


def mask_boxes(masks: np.ndarray, label: int, size: int) -> np.ndarray:
    """Per frame, the (x0, y0, x1, y1) box of the pixels with `label` (the whole frame if none)."""
    out = np.tile(np.array([0, 0, size, size], np.int64), (len(masks), 1))
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m == label)
        if len(xs):
            out[i] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    return out


class PersonRendererTask(TrainTask):
    """A renderer trained on one person's dataset, ray by ray: `stage` follows
    geneface.training.renderer_contract (its `net` is the model; it declares its parameter
    groups and losses), `config` is its task config (the keys the contract names and
    `ray_shares(phase)`), `ds` a dataset checked by the recipe."""

    # The exported model is the best validation of the schedule's last stage: an earlier one
    # can score higher on the whole frame with lips that were never refined (an average mouth).
    best_metric = "psnr_final_stage"
    best_mode = "max"
    progress_metrics = ("psnr",)
    batch_unit = "rays"

    def __init__(self, stage, ds: Dataset, config):
        self.name = stage.name
        self.stage, self.model = stage, stage.net
        self.config = c = config
        self.ds = ds
        n, s = ds.n_frames, ds.size
        self.val_start, _ = ds.held_out_range()
        self.train_idx, self.val_idx = ds.training_frames(), ds.held_out_frames()
        if len(self.train_idx) == 0 or len(self.val_idx) == 0:
            raise UsageError(f"{ds.path}: {n} frames are too few to hold out the last 1/11 and train on the rest")
        if c.val_frames and c.val_frames < len(self.val_idx):
            pick = np.round(np.linspace(0, len(self.val_idx) - 1, c.val_frames)).astype(int)
            self.val_idx = self.val_idx[pick]
        self.latent_of = np.full(n, -1)
        self.latent_of[self.train_idx] = np.arange(len(self.train_idx))
        # Frames and masks are read per batch (geneface.training.frame_store): a person of many
        # minutes does not fit in memory. What is small per frame stays in arrays.
        self.store = FrameStore(ds)
        self.clip_of = ds.clip_index()
        # Each frame's clip's [start, end): a window of neighbouring frames stays in its clip.
        self.clip_lo = np.searchsorted(self.clip_of, self.clip_of, "left")
        self.clip_hi = np.searchsorted(self.clip_of, self.clip_of, "right")
        self.landmarks = torch.from_numpy(ds.landmarks_canonical().astype(np.float32))
        self.train_landmarks = self.landmarks[self.train_idx]  # once, not a copy per step
        image68 = ds.landmarks_image()
        # Where rays are drawn from: the 68 points' box, the mouth's grown by a quarter, and the
        # head mask's (`HEAD_BOX`, from each batch's own masks).
        self.boxes = {"face": ray_boxes(image68, s, 0.0), "mouth": ray_boxes(image68[:, 48:68], s, 0.25)}
        self.camera = ds.camera()
        self.window = stage.landmark_window
        self._fill_model(ds)
        self.head_pixels = torch.nonzero(self.model.head_region.reshape(-1)).squeeze(1).numpy()
        self.person_pixels = torch.nonzero(self.model.person_region.reshape(-1)).squeeze(1).numpy()
        self.edge_px = max(1, int(round(getattr(c, "edge_band", 0.02) * s)))
        self.step = 0
        self._progress: Callable[[], float] = lambda: 0.0  # the latest step context's
        self._images: dict[str, np.ndarray] = {}

    def to(self, device: torch.device) -> None:
        # Through the stage: it may choose device-specific kernels (hashgrid_nerf's grid).
        to_device = getattr(self.stage, "to_device", None)
        to_device(device) if to_device is not None else self.model.to(device)

    # -- what the model keeps from the data ----------------------------------------------
    def _fill_model(self, ds: Dataset) -> None:
        m, s = self.model, ds.size
        train = self.train_idx
        mean, std = ds.landmark_stats()
        seen_head, seen_person = regions(ds, train, HEAD)  # every training frame of every clip
        margin = max(1, int(round(self.config.region_margin * s)))
        head = _dilate(seen_head, margin)
        person = _dilate(seen_person, margin) | head
        # One plate per clip (held-out clips too: their frames are scored over their own plate).
        plate = ds.background() if ds.n_clips == 1 else np.stack([ds.background(k) for k in range(ds.n_clips)])
        m.set_canvas(plate, self.camera, head, person, train)
        with torch.no_grad():
            m.condition.mean.copy_(torch.from_numpy(mean))
            m.condition.std.copy_(torch.from_numpy(std))
            lo, hi = self._head_box(ds)
            self.stage.set_head_box(lo, hi, ds)

    def _head_box(self, ds: Dataset) -> tuple[list, list]:
        """The head's box in the canonical frame: the landmarks' extent plus room for hair above,
        the skull behind and the ears beside (in units of the dataset's head radius)."""
        lm = self.landmarks[self.train_idx].numpy()
        lo, hi = lm.min((0, 1)), lm.max((0, 1))
        r = float(ds.manifest["camera"]["head_radius"])
        return ([lo[0] - 0.5 * r, lo[1] - 1.1 * r, lo[2] - 0.3 * r],
                [hi[0] + 0.5 * r, hi[1] + 0.4 * r, lo[2] + 2.2 * r])

    # -- TrainTask ---------------------------------------------------------------------
    def config_dict(self) -> dict:
        return {"task": unstructure(self.config), "model": unstructure(self.stage.config), "data": str(self.ds.path),
                "train_frames": len(self.train_idx), "held_out": [int(self.val_start), self.ds.n_frames]}

    def state(self) -> dict:
        return {"step": self.step}

    def load_state(self, state: dict) -> None:
        self.step = int(state.get("step", 0))

    def optimizers(self, run_schedule: LRSchedule) -> list[OptimizerSpec]:
        return [OptimizerSpec("main", self.stage.param_groups(self.config, run_schedule))]

    def phase(self, progress: float) -> str:
        """The stage of the run at `progress` (0..1: the trainer's share of the steps, or of
        the time budget when further)."""
        if progress < self.config.head_stage:
            return "head"
        lip = getattr(self.config, "lip_stage", 0.0)
        return "lip" if lip > 0 and progress >= 1.0 - lip else "torso"

    def final_phase(self) -> str:
        if getattr(self.config, "lip_stage", 0.0) > 0:
            return "lip"
        return "torso" if self.config.head_stage < 1.0 else "head"

    def _pick(self, rng, pool: np.ndarray, k: int) -> np.ndarray:
        return pool[rng.integers(len(pool), size=k)]

    def _in_box(self, rng, box, k: int) -> np.ndarray:
        x0, y0, x1, y1 = (int(v) for v in box)
        xs, ys = rng.integers(x0, max(x1, x0 + 1), size=k), rng.integers(y0, max(y1, y0 + 1), size=k)
        return np.minimum(ys, self.ds.size - 1) * self.ds.size + np.minimum(xs, self.ds.size - 1)

    def batch_landmarks(self, frames: torch.Tensor) -> torch.Tensor:
        """The landmarks a batch carries for its frames: each frame's own (F, 68, 3), or with a
        `landmark_window` its window (F, W, 68, 3), clamped to the training stretch."""
        if not self.window:
            return self.landmarks[frames]
        f = frames.numpy()
        # Within the frame's clip and the training stretch (one video: [0, val_start)).
        hi, lo = np.minimum(self.clip_hi[f], self.val_start)[:, None], self.clip_lo[f][:, None]
        return self.landmarks[torch.from_numpy(window_indices(hi, f, self.window, lo=lo))]

    def next_batch(self, ctx: StepContext, rng: np.random.Generator, batch_size: int) -> RayBatch:
        self._progress = ctx.progress  # live: validation after this step reads the share with it
        return self.sample_batch(rng, batch_size, ctx.progress())

    def sample_batch(self, rng: np.random.Generator, batch_size: int, progress: float = 0.0) -> RayBatch:
        phase = self.phase(progress)
        nf = min(self.config.frames_per_batch, batch_size)
        frames = self._pick(rng, self.train_idx, nf)
        per = np.full(nf, batch_size // nf)
        per[: batch_size % nf] += 1
        shares = self.config.ray_shares(phase)
        images, masks = self.store.batch(frames)  # the batch's frames, in its order (F, H, W[, 3])
        boxes = {**{k: v[frames] for k, v in self.boxes.items()}, HEAD_BOX: mask_boxes(masks, HEAD, self.ds.size)}
        flat, slot = [], []
        for j, (f, k) in enumerate(zip(frames, per)):
            labels = masks[j].reshape(-1)
            counts = rng.multinomial(k, [p for _, p in shares])
            for (what, _), cnt in zip(shares, counts):
                if cnt == 0:
                    continue
                if what in boxes:
                    picked = self._in_box(rng, boxes[what][j], cnt)
                elif what == "head_region":
                    picked = self._pick(rng, self.head_pixels, cnt)
                elif what == "person":
                    picked = self._pick(rng, self.person_pixels, cnt)
                elif what == "edge":
                    band = edge_band(masks[j], self.edge_px)
                    picked = self._pick(rng, band if len(band) else self.person_pixels, cnt)
                else:
                    pool = np.flatnonzero(labels == (HEAD if what == "head" else TORSO))
                    picked = self._pick(rng, pool if len(pool) else self.person_pixels, cnt)
                flat.append(picked)
                slot.append(np.full(cnt, j))
        flat_t = torch.from_numpy(np.concatenate(flat))
        slot_t = torch.from_numpy(np.concatenate(slot))
        frames_t = torch.from_numpy(frames)
        ray_frame = frames_t[slot_t]
        size = self.ds.size
        lip = torch.zeros(len(flat_t), dtype=torch.bool)
        if phase == "lip":
            xs, ys = flat_t % size, flat_t // size
            box = torch.from_numpy(self.boxes["mouth"][frames])[slot_t]
            lip = (xs >= box[:, 0]) & (xs < box[:, 2]) & (ys >= box[:, 1]) & (ys < box[:, 3])
        return RayBatch(
            phase=phase, size=size, flat=flat_t, slot=slot_t, frame=ray_frame,
            landmarks=self.batch_landmarks(frames_t),
            latent=torch.from_numpy(self.latent_of[frames]),
            c2w=torch.from_numpy(self.camera.c2w[frames]),
            target=torch.from_numpy(images).reshape(len(frames), -1, 3)[slot_t, flat_t].float() / 255.0,
            label=torch.from_numpy(masks).reshape(len(frames), -1)[slot_t, flat_t],
            lip=lip,
            clip=torch.from_numpy(self.clip_of[frames]) if self.ds.n_clips > 1 else None)

    def compute_loss(self, net, batch: RayBatch, step: int) -> tuple[torch.Tensor, dict]:
        losses = self.stage.losses(batch.with_rays(self.camera), self.config)
        return losses.total(), losses.metrics

    def after_step(self, step: int) -> None:
        self.step = step
        self.stage.after_train_step(step, self.train_landmarks)

    # -- validation ----------------------------------------------------------------------
    def validation_landmarks(self) -> Optional[Callable[[np.ndarray, int], np.ndarray]]:
        """How a validation frame's landmarks are taken from the video's (None: its own row)."""
        if not self.window:
            return None
        start, window, lo, hi = self.val_start, self.window, self.clip_lo, self.clip_hi
        # The held-out stretch is the motion rendered: its windows stay inside it, and inside
        # the frame's clip.
        return lambda landmarks, f: landmarks[window_indices(int(hi[f]), f, window, lo=max(start, int(lo[f])))]

    def validate(self) -> dict:
        shown = self.val_idx[np.round(np.linspace(0, len(self.val_idx) - 1, max(1, self.config.val_images))).astype(int)]
        result = evaluate_frames(self.model, self.ds, self.val_idx, shown if self.config.val_images else (),
                                 landmarks_for=self.validation_landmarks())
        self._images = result.pop("images")
        if self.phase(self._progress()) == self.final_phase():
            result["psnr_final_stage"] = result["psnr"]
        return {**result, **self.stage.validation_metrics()}

    def validation_images(self) -> dict[str, np.ndarray]:
        return self._images

    def export(self, meta: dict) -> Checkpoint:
        return stage_checkpoint(self.stage, meta={**meta, "data": str(self.ds.path),
                                                  "held_out": [int(self.val_start), self.ds.n_frames]})


def evaluate_frames(net, ds: Dataset, frames, shown=(),
                    landmarks_for: Optional[Callable[[np.ndarray, int], np.ndarray]] = None) -> dict:
    """Render dataset frames from their own tracked landmarks and poses, each over its own
    clip's plate (a person of several clips), and compare with the video:
    mean PSNR over frames, full frame (`psnr`), in the real frame's face box (`psnr_face`) and
    mouth box (`psnr_mouth`); truth | render | error images of the frames in `shown`.

    The frames scored are the uint8 frames the renderer yields, and the scores are
    geneface.metrics.image's (`psnr`, `psnr_box`, `face_box`, `mouth_box`): the same numbers
    `geneface bench renderers` and `geneface eval` give for them.

    `net.render_frame` gets `landmarks_for(all canonical landmarks, f)` (default: row f; a
    renderer that reads neighbouring frames takes its window there)."""
    landmarks, c2w, clip_of = ds.landmarks_canonical(), ds.camera().c2w, ds.clip_index()
    image68 = ds.landmarks_image()
    faces, mouths = frame_boxes(image68, ds.size, face_box), frame_boxes(image68, ds.size, mouth_box)
    full, face, mouth, images = [], [], [], {}
    for f in frames:
        lm = landmarks[f] if landmarks_for is None else landmarks_for(landmarks, f)
        # Over its own clip's plate (`clip` only for a person of several clips: a one-video
        # model's render_frame need not take it).
        clip = {"clip": int(clip_of[f])} if ds.n_clips > 1 else {}
        pred = to_uint8(net.render_frame(torch.from_numpy(np.ascontiguousarray(lm)), torch.from_numpy(c2w[f]), **clip))
        truth = ds.frame(f)
        full.append(image_psnr(pred, truth))
        face.append(psnr_box(pred, truth, tuple(faces[f])))
        mouth.append(psnr_box(pred, truth, tuple(mouths[f])))
        if f in shown:
            images[f"frame-{f:06d}"] = comparison_image(truth / 255.0, pred / 255.0)
    return {"psnr": float(np.mean(full)), "psnr_face": float(np.mean(face)), "psnr_mouth": float(np.mean(mouth)),
            "images": images}


def comparison_image(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """truth | render | error (mean absolute error x 4, jet colour map), uint8."""
    import cv2

    err = np.clip(np.abs(pred - truth).mean(-1) * 4.0 * 255.0, 0, 255).astype(np.uint8)
    heat = cv2.applyColorMap(err, cv2.COLORMAP_JET)[..., ::-1]
    as8 = lambda a: (np.clip(a, 0, 1) * 255.0).round().astype(np.uint8)  # noqa: E731
    return np.concatenate([as8(truth), as8(pred), heat], axis=1)


def person_dataset(inputs: TrainInputs, plugin: str) -> Dataset:
    """The one person's dataset `--data` names, checked once for what a renderer needs."""
    if len(inputs.data) != 1:
        raise UsageError(f"--data: {plugin} trains on one person's dataset (give --data once)")
    ds = open_dataset(Path(inputs.data[0]).resolve())  # resolved: recorded in run.json, usable from any folder
    check_dataset(ds, plugin)
    return ds


class PersonRendererRecipe(Recipe):
    """`geneface train renderer --plugin NAME --data DATASET --out DIR [--profile ...]` for a
    renderer that follows geneface.training.renderer_contract: a subclass names only the task
    config class (`config_cls`) and the `profiles` (each with `train`, `model` and `task`
    sections; the first is the default). The model's config: its defaults, the profile, the
    file's `model` section, the keys the data fixes (`model_from_data`); the task's: its
    defaults, the profile, the file's `task` section (geneface.training.recipe)."""

    config_cls: ClassVar[type] = type(None)

    def build(self, inputs: TrainInputs) -> BuiltTask:
        stage_cls = inputs.stage_cls
        ds = person_dataset(inputs, stage_cls.name)
        stage = stage_cls(inputs.model_config(**stage_cls.model_from_data(ds)))
        task = PersonRendererTask(stage, ds, inputs.task_config(self.config_cls))
        return BuiltTask(task, {"data": str(ds.path), "profile": inputs.profile_name})
