"""Training a person NeRF renderer on one person's dataset: the task both `hashgrid_nerf` and
`vanilla_nerf` are built on, and `hashgrid_nerf`'s own task and recipe.

The shared part, `PersonRendererTask` and `PersonRendererRecipe`: the dataset in memory, the
held-out last ceil(n / 11) frames (the field's protocol: never sampled for training;
validation renders them from their own tracked landmarks and poses), what the model keeps
from the data (the person's canvas, geneface.nerf.person: plate, camera, regions, pose
statistics; the head's box), ray sampling by phase, validation, the exported model chosen
among the last stage's validations, export, `--profile`. Validation scores with
geneface.metrics.image (`psnr`, and `psnr_box` in its `face_box` and `mouth_box`), the same
definitions as `geneface bench` and `geneface eval`. `vanilla_nerf`'s task is
geneface.training.vanilla_task.

`hashgrid_nerf` (`HashGridTask`, `HashGridRecipe`), stages by share of the run's steps:
- head (`head_stage`): the head is rendered over the real frame with the head's pixels
  replaced by the plate, so it learns the head alone, whatever the torso looks like; the
  torso layer learns alone on the pixels outside the head mask;
- torso: head over torso over the plate, everything trained on the final composite;
- lip (`lip_stage`, the end of the run): as torso, with rays drawn mostly from the mouth's
  box and the mouth's pixels weighted up in the loss.

Loss = photometric + entropy of the head's opacity + the ambient coordinate's size + the
layers' opacity against the dataset's masks (the masks come free with every dataset and
settle the silhouette long before colour alone would on a CPU budget).
Grid tables learn `grid_lr_scale` times faster than the MLPs (RAD-NeRF: 10x).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, ClassVar, Optional

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from geneface.core.checkpoint import Checkpoint, stage_checkpoint
from geneface.core.config import structure, unstructure
from geneface.core.dataset import (BACKGROUND, C2W, FRAMES_DIR, HEAD, IMAGE68, MASKS_DIR, TORSO, Dataset, DatasetError,
                                   frame_name)
from geneface.errors import UsageError
from geneface.metrics.image import face_box, mouth_box, psnr_box
from geneface.metrics.image import psnr as image_psnr
from geneface.nerf.losses import ambient_regulariser, opacity_entropy, photometric, psnr
from geneface.nerf.rays import camera_rays
from geneface.nerf.stage import to_uint8
from geneface.nerf.volume import composite
from geneface.training.config import LRSchedule
from geneface.training.recipe import BuiltTask, Recipe, TrainInputs, TrainOption
from geneface.training.task import OptimizerSpec, ParamGroup, TrainTask

_unit = [attrs.validators.ge(0), attrs.validators.le(1)]


@attrs.define
class HashGridTaskConfig:
    head_stage: float = attrs.field(default=0.6, validator=_unit)  # share of steps
    lip_stage: float = attrs.field(default=0.15, validator=_unit)  # share of steps, at the end
    frames_per_batch: int = attrs.field(default=8, validator=attrs.validators.gt(0))
    w_entropy: float = 1e-4
    w_ambient: float = 1e-3
    w_mask: float = 1e-2
    w_latent: float = 1e-3  # L2 on per-frame latents: appearance drift only, not expression
    lip_weight: float = 4.0  # loss weight of mouth-box rays in the lip stage
    # Share of the rays drawn from the mouth's box in the head and torso stages too: the mouth
    # is ~1 % of the frame, and a field that sees it only in the lip stage renders an average mouth.
    mouth_share: float = attrs.field(default=0.1, validator=[attrs.validators.ge(0), attrs.validators.le(0.3)])
    grid_lr_scale: float = 10.0
    region_margin: float = 0.03  # head / person regions grown by this share of the frame side
    # Share of every phase's rays drawn from the band around the masks' boundaries, and the
    # band's half width (share of the frame side): hair, silhouette and collar are where the
    # held-out error sits. Off: 0.15 moved four persons' held-out PSNR by -0.28..+0.31 dB,
    # -0.04 on average, within run-to-run noise (docs/training.md, "Across persons").
    edge_share: float = attrs.field(default=0.0, validator=[attrs.validators.ge(0), attrs.validators.le(0.5)])
    edge_band: float = attrs.field(default=0.02, validator=attrs.validators.gt(0))
    val_frames: int = attrs.field(default=0, validator=attrs.validators.ge(0))  # 0: every held-out frame
    val_images: int = 2  # held-out frames written as truth | render | error


def check_dataset(ds: Dataset, plugin: str = "hashgrid_nerf") -> None:
    """One line naming the first file a renderer needs and the dataset lacks."""
    for rel in (C2W, IMAGE68, BACKGROUND, f"{MASKS_DIR}/{frame_name(0, '.png')}", f"{FRAMES_DIR}/{frame_name(0)}"):
        if not (ds.path / rel).is_file():
            what = "camera" if rel == C2W else "masks" if rel.startswith(MASKS_DIR) else rel
            raise DatasetError(f"{ds.path}: no {ds.path / rel}: {plugin} needs the dataset's {what} "
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


class PersonRendererTask(TrainTask):
    """A renderer trained on one person's dataset, ray by ray (the shared part).

    The model is a geneface.nerf.person.PersonCanvas (plate, camera, regions, pose
    statistics: `set_canvas`) with `condition.mean` / `condition.std`; a subclass sets where
    the head's box goes (`set_head_box`), which rays each phase draws (`ray_shares`), what
    landmarks a batch carries (`batch_landmarks`), the loss and the optimisers. The config
    needs `head_stage`, `frames_per_batch`, `region_margin`, `val_frames`, `val_images` (and
    `lip_stage` for a lip phase at the end).
    """

    name = ""
    config_cls: ClassVar[type] = type(None)
    # The exported model is the best validation of the schedule's last stage: an earlier one
    # can score higher on the whole frame with lips that were never refined (an average mouth).
    best_metric = "psnr_final_stage"
    best_mode = "max"
    progress_metrics = ("psnr",)
    batch_unit = "rays"

    def __init__(self, stage, ds: Dataset, config=None, steps: int = 1):
        check_dataset(ds, self.name)
        self.stage, self.model = stage, stage.net
        self.config = c = config or self.config_cls()
        self.ds, self.steps = ds, steps
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
        # Everything sampled lives in memory: a few hundred MB at 512 px, and no decoding per step.
        self.frames = torch.from_numpy(np.stack([ds.frame(i) for i in range(n)]))
        self.masks = torch.from_numpy(np.stack([ds.mask(i) for i in range(n)]))
        self.landmarks = torch.from_numpy(ds.landmarks_canonical().astype(np.float32))
        image68 = ds.landmarks_image()
        # Where rays are drawn from: the 68 points' box, and the mouth's grown by a quarter.
        self.face_box = ray_boxes(image68, s, 0.0)
        self.mouth_box = ray_boxes(image68[:, 48:68], s, 0.25)
        self.camera = ds.camera()
        self._fill_model(ds)
        self.head_pixels = torch.nonzero(self.model.head_region.reshape(-1)).squeeze(1).numpy()
        self.person_pixels = torch.nonzero(self.model.person_region.reshape(-1)).squeeze(1).numpy()
        self.edge_px = max(1, int(round(getattr(c, "edge_band", 0.02) * s)))
        self.step = 0
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
        masks = self.masks[train].numpy()
        margin = max(1, int(round(self.config.region_margin * s)))
        head = _dilate((masks == HEAD).any(0), margin)
        person = _dilate((masks > 0).any(0), margin) | head
        m.set_canvas(ds.background(), self.camera, head, person, train)
        with torch.no_grad():
            m.condition.mean.copy_(torch.from_numpy(mean))
            m.condition.std.copy_(torch.from_numpy(std))
            lo, hi = self._head_box(ds)
            self.set_head_box(lo, hi)

    def set_head_box(self, lo: list, hi: list) -> None:
        """Put the head's box (canonical frame) where the model keeps it."""
        raise NotImplementedError

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

    def batch_rays(self, batch: dict):
        """The batch's pixels (N x 2, x then y) and their camera rays."""
        flat, size = batch["flat"], self.ds.size
        pixels = torch.stack([flat % size, flat // size], dim=-1)
        return pixels, camera_rays(self.camera, batch["ray_frame"], pixels)

    def loss_inputs(self, batch: dict) -> tuple:
        """What each person NeRF's loss starts from: (flat pixel index, frame slot of each ray,
        pixels, rays, the landmark condition of each frame)."""
        pixels, rays = self.batch_rays(batch)
        return batch["flat"], batch["slot"], pixels, rays, self.model.condition(batch["landmarks"])

    def phase(self, step: int) -> str:
        # The trainer's share covers a time budget (bench renderers) as well as the steps.
        share = max(step / max(1, self.steps), self.run_share())
        if share < self.config.head_stage:
            return "head"
        lip = getattr(self.config, "lip_stage", 0.0)
        return "lip" if lip > 0 and share >= 1.0 - lip else "torso"

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

    # Per phase, (what, share of the rays): "head" / "torso" (that frame's mask), "face" /
    # "mouth" (that frame's box of the 68 / mouth points), "head_region" / "person" (where a
    # head / a person was ever seen), "edge" (that frame's band around its masks' boundaries,
    # `edge_band`), or any name in `boxes()` (a per-frame box).
    def ray_shares(self, phase: str) -> list[tuple[str, float]]:
        raise NotImplementedError

    def boxes(self) -> dict[str, np.ndarray]:
        """Per-frame (x0, y0, x1, y1) boxes rays can be drawn from, by name."""
        return {"face": self.face_box, "mouth": self.mouth_box}

    def batch_landmarks(self, frames: torch.Tensor) -> torch.Tensor:
        """The landmarks a batch carries for its frames (here: each frame's own, (F, 68, 3))."""
        return self.landmarks[frames]

    def sample_batch(self, rng: np.random.Generator, batch_size: int) -> dict:
        phase = self.phase(self.step)
        nf = min(self.config.frames_per_batch, batch_size)
        frames = self._pick(rng, self.train_idx, nf)
        per = np.full(nf, batch_size // nf)
        per[: batch_size % nf] += 1
        shares = self.ray_shares(phase)
        boxes = self.boxes()
        flat, slot = [], []
        for j, (f, k) in enumerate(zip(frames, per)):
            labels = self.masks[f].reshape(-1).numpy()
            counts = rng.multinomial(k, [p for _, p in shares])
            for (what, _), cnt in zip(shares, counts):
                if cnt == 0:
                    continue
                if what in boxes:
                    picked = self._in_box(rng, boxes[what][f], cnt)
                elif what == "head_region":
                    picked = self._pick(rng, self.head_pixels, cnt)
                elif what == "person":
                    picked = self._pick(rng, self.person_pixels, cnt)
                elif what == "edge":
                    band = edge_band(self.masks[f].numpy(), self.edge_px)
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
            box = torch.from_numpy(self.mouth_box[frames])[slot_t]
            lip = (xs >= box[:, 0]) & (xs < box[:, 2]) & (ys >= box[:, 1]) & (ys < box[:, 3])
        return {
            "flat": flat_t,
            "slot": slot_t,
            "ray_frame": ray_frame,
            "landmarks": self.batch_landmarks(frames_t),
            "latent": torch.from_numpy(self.latent_of[frames]),
            "c2w": torch.from_numpy(self.camera.c2w[frames]),
            "target": self.frames.reshape(len(self.frames), -1, 3)[ray_frame, flat_t].float() / 255.0,
            "label": self.masks.reshape(len(self.masks), -1)[ray_frame, flat_t],
            "lip": lip,
        }

    def after_step(self, step: int) -> None:
        self.step = step

    # -- validation ----------------------------------------------------------------------
    def validation_landmarks(self) -> Optional[Callable[[np.ndarray, int], np.ndarray]]:
        """How a validation frame's landmarks are taken from the video's (None: its own row)."""
        return None

    def validate(self) -> dict:
        shown = self.val_idx[np.round(np.linspace(0, len(self.val_idx) - 1, max(1, self.config.val_images))).astype(int)]
        result = evaluate_frames(self.model, self.ds, self.val_idx, shown if self.config.val_images else (),
                                 landmarks_for=self.validation_landmarks())
        self._images = result.pop("images")
        if self.phase(self.step) == self.final_phase():
            result["psnr_final_stage"] = result["psnr"]
        return result

    def validation_images(self) -> dict[str, np.ndarray]:
        return self._images

    def export(self, meta: dict) -> Checkpoint:
        return stage_checkpoint(self.stage, meta={**meta, "data": str(self.ds.path),
                                                  "held_out": [int(self.val_start), self.ds.n_frames]})


class HashGridTask(PersonRendererTask):
    """`hashgrid_nerf`'s task."""

    name = "hashgrid_nerf"
    config_cls = HashGridTaskConfig

    def __init__(self, stage, ds: Dataset, config: Optional[HashGridTaskConfig] = None, steps: int = 1):
        super().__init__(stage, ds, config, steps)

    def set_head_box(self, lo: list, hi: list) -> None:
        self.model.occupancy.lo.copy_(torch.tensor(lo))
        self.model.occupancy.hi.copy_(torch.tensor(hi))

    def ray_shares(self, phase: str) -> list[tuple[str, float]]:
        m, e = self.config.mouth_share, self.config.edge_share
        if phase == "head":
            shares = [("head", 0.5 - m), ("face", 0.2), ("mouth", m), ("head_region", 0.15), ("person", 0.15)]
        elif phase == "torso":
            shares = [("head", 0.3 - m), ("face", 0.1), ("mouth", m), ("torso", 0.3), ("person", 0.3)]
        else:
            # torso rays keep the layer under the head from drifting while the mouth is refined
            shares = [("mouth", 0.4), ("head", 0.2), ("torso", 0.2), ("person", 0.2)]
        return [(what, p * (1.0 - e)) for what, p in shares] + ([("edge", e)] if e > 0 else [])

    def optimizers(self, run_schedule: LRSchedule) -> list[OptimizerSpec]:
        m = self.model
        grids = [*m.head.space.parameters(), *m.head.ambient_grid.parameters(), *m.torso.grid.parameters()]
        ids = {id(p) for p in grids} | {id(m.latents.weight)}
        mlps = [p for p in m.parameters() if id(p) not in ids]
        grid_schedule = attrs.evolve(run_schedule, lr=run_schedule.lr * self.config.grid_lr_scale)
        # eps 1e-15 as instant-ngp: grid entries see rare, tiny gradients that a larger eps swallows.
        return [OptimizerSpec("main", [ParamGroup("grids", grids, grid_schedule, {"eps": 1e-15}),
                                       ParamGroup("mlps", mlps, None, {"eps": 1e-15}),
                                       ParamGroup("latents", [m.latents.weight], None)])]

    def compute_loss(self, net, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        c, m = self.config, self.model
        phase = self.phase(step)
        flat, slot, pixels, rays, cond = self.loss_inputs(batch)
        latent = m.latents(batch["latent"])
        head, ambient = m.render_head(rays, cond[slot], latent[slot], perturb=True)
        target, label = batch["target"], batch["label"]
        plate = m.plate.reshape(-1, 3)[flat].float() / 255.0
        is_head = (label == HEAD).float()
        t_rgb, t_alpha = m.torso(m.pixel_coords(pixels), m.pose(batch["c2w"])[slot])
        not_head = 1.0 - is_head
        if phase == "head":
            behind = torch.where(is_head[:, None] > 0, plate, target)
            pred = composite([(head.rgb, head.opacity)], behind)
            torso_pred = composite([(t_rgb * t_alpha[:, None], t_alpha)], plate)
            loss = photometric(pred, target) + photometric(torso_pred, target, not_head)
        else:
            pred = composite([(head.rgb, head.opacity), (t_rgb * t_alpha[:, None], t_alpha)], plate)
            weights = 1.0 + (c.lip_weight - 1.0) * batch["lip"].float() if phase == "lip" else None
            loss = photometric(pred, target, weights)
        eps = 1e-4
        head_bce = F.binary_cross_entropy(head.opacity.clamp(eps, 1 - eps), is_head)
        torso_bce = (F.binary_cross_entropy(t_alpha.clamp(eps, 1 - eps), (label == TORSO).float(), reduction="none")
                     * not_head).sum() / not_head.sum().clamp(min=1.0)
        loss = loss + c.w_mask * (head_bce + torso_bce) + c.w_entropy * opacity_entropy(head.opacity)
        if len(ambient):
            loss = loss + c.w_ambient * ambient_regulariser(ambient)
        if latent.numel():  # latent_dim 0: no codes (the mean of nothing is nan)
            loss = loss + c.w_latent * latent.square().mean()
        return loss, {"psnr": float(psnr(pred.detach(), target)), "samples_per_ray": len(ambient) / max(1, len(flat))}

    def after_step(self, step: int) -> None:
        super().after_step(step)
        m = self.model
        with torch.no_grad():
            conds = m.condition(self.landmarks[self.train_idx].to(m.plate.device))

        def density(x: torch.Tensor) -> torch.Tensor:
            # Occupancy must cover every expression: each point sees a random training frame's.
            pick = torch.randint(len(conds), (len(x),), device=x.device)
            return m.density(x, conds[pick])

        m.occupancy.step(step, density)

    def validate(self) -> dict:
        return {**super().validate(), "occupied": self.model.occupancy.occupied_fraction}


def evaluate_frames(net, ds: Dataset, frames, shown=(),
                    landmarks_for: Optional[Callable[[np.ndarray, int], np.ndarray]] = None) -> dict:
    """Render dataset frames from their own tracked landmarks and poses and compare with the video:
    mean PSNR over frames, full frame (`psnr`), in the real frame's face box (`psnr_face`) and
    mouth box (`psnr_mouth`); truth | render | error images of the frames in `shown`.

    The frames scored are the uint8 frames the renderer yields, and the scores are
    geneface.metrics.image's (`psnr`, `psnr_box`, `face_box`, `mouth_box`): the same numbers
    `geneface bench renderers` and `geneface eval` give for them.

    `net.render_frame` gets `landmarks_for(all canonical landmarks, f)` (default: row f; a
    renderer that reads neighbouring frames takes its window there)."""
    landmarks, c2w = ds.landmarks_canonical(), ds.camera().c2w
    image68 = ds.landmarks_image()
    faces, mouths = frame_boxes(image68, ds.size, face_box), frame_boxes(image68, ds.size, mouth_box)
    full, face, mouth, images = [], [], [], {}
    for f in frames:
        lm = landmarks[f] if landmarks_for is None else landmarks_for(landmarks, f)
        pred = to_uint8(net.render_frame(torch.from_numpy(np.ascontiguousarray(lm)), torch.from_numpy(c2w[f])))
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


# Profiles: `quick` fits minutes on a CPU, `full` is METHOD.md's GPU run.
PROFILES = {
    "quick": {
        "train": {"steps": 4000, "batch_size": 2048, "lr": 2e-3, "schedule": "cosine", "min_lr_ratio": 0.1,
                  "val_every": 500, "ckpt_every": 500, "log_every": 25},
        "model": {},
        "task": {"val_frames": 8},
    },
    "full": {
        "train": {"steps": 40000, "batch_size": 16384, "lr": 2e-3, "schedule": "cosine", "min_lr_ratio": 0.1,
                  "val_every": 2000, "ckpt_every": 2000, "log_every": 100},
        "model": {"occupancy": {"resolution": 128, "max_samples": 16}, "chunk": 65536},
        "task": {},
    },
}


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _profile(options: dict, profiles: Optional[dict] = None) -> dict:
    profiles = PROFILES if profiles is None else profiles
    name = options.get("profile") or "quick"
    if name not in profiles:
        raise UsageError(f"--profile: unknown profile '{name}' (known: {', '.join(profiles)})")
    return profiles[name]


class PersonRendererRecipe(Recipe):
    """A renderer trained on one person's dataset: `--data` once, `--profile` picks the loop,
    model and task defaults (the file's `model` and `task` sections go over them; the keys
    the data fixes, `fixed_model`, over everything)."""

    plugin: ClassVar[str] = ""
    profiles: ClassVar[dict] = {}
    task_cls: ClassVar[type] = PersonRendererTask

    def loop_defaults_for(self, options: dict) -> dict:
        return _profile(options, self.profiles)["train"]

    def fixed_model(self, ds: Dataset) -> dict:
        """Model keys set by the data (buffer shapes)."""
        return {"size": ds.size, "n_poses": ds.n_frames}

    def build(self, inputs: TrainInputs) -> BuiltTask:
        if len(inputs.data) != 1:
            raise UsageError(f"--data: {self.plugin} trains on one person's dataset (give --data once)")
        path = Path(inputs.data[0]).resolve()  # recorded in run.json: usable from any folder
        ds = Dataset(path)
        check_dataset(ds, self.plugin)
        profile = _profile(inputs.options, self.profiles)
        fixed = self.fixed_model(ds)
        where = f"{inputs.config_path or '--config'}"
        model = structure(inputs.stage_cls.Config, _merged(profile["model"], {**(inputs.file.get("model") or {}), **fixed}),
                          f"{where}:model")
        task_config = structure(self.task_cls.config_cls, _merged(profile["task"], inputs.file.get("task") or {}),
                                f"{where}:task")
        task = self.task_cls(inputs.stage_cls(model), ds, task_config, steps=inputs.loop.steps)
        return BuiltTask(task, {"data": str(path), "profile": inputs.options.get("profile") or "quick"})


class HashGridRecipe(PersonRendererRecipe):
    """`geneface train renderer --plugin hashgrid_nerf --data DATASET --out DIR [--profile quick|full]`."""

    options = (TrainOption("profile", "quick (minutes on a CPU) or full (a GPU run)", default="quick"),)
    loop_defaults = PROFILES["quick"]["train"]
    plugin = "hashgrid_nerf"
    profiles = PROFILES
    task_cls = HashGridTask

    def fixed_model(self, ds: Dataset) -> dict:
        n = ds.n_frames
        return {"size": ds.size, "n_poses": n, "n_latents": max(1, ds.held_out_range()[0])}
