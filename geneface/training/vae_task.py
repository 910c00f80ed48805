"""Training the audio-to-motion VAE against a frozen SyncNet.

Loss = MSE(landmarks) + 3 * MSE(frame-to-frame differences) + 0.5 * KL(flow prior)
       + 0.01 * sync loss, the last only once the validation sync loss (SyncNet's BCE on the
       VAE's own sampled motion for held-out speech) has fallen below 0.75 (METHOD.md).
"""

from __future__ import annotations

from typing import Optional, Sequence

import attrs
import numpy as np
import torch

from geneface.core.checkpoint import Checkpoint, stage_checkpoint
from geneface.errors import StageMismatchError, UsageError
from geneface.models.syncnet import V_FRAMES, offset_search, sync_loss, windows_sync_prob
from geneface.training.data import Clip, feature_stats, motion_stats, mouth_opening, mouth_slice
from geneface.training.recipe import BuiltTask, Recipe, TrainInputs, TrainOption
from geneface.training.speaker_data import OPTIONS, load_speaker_data
from geneface.training.task import TrainTask


@attrs.define
class VAETrainConfig:
    segment: int = attrs.field(default=64, validator=attrs.validators.gt(0))  # frames per training sequence
    w_mse: float = 1.0
    w_continuity: float = 3.0
    w_kl: float = 0.5
    w_sync: float = 0.01
    sync_threshold: float = 0.75  # switch the sync loss on below this validation sync loss
    sync_windows: int = 8  # windows per sequence the sync loss looks at
    val_clips: int = 32
    val_temperature: float = 1.0
    val_seed: int = 0


class VAETask(TrainTask):
    name = "vae"
    best_metric = "mse"
    best_mode = "min"

    def __init__(self, stage, syncnet, train: Sequence[Clip], val: Sequence[Clip],
                 config: Optional[VAETrainConfig] = None, encoder: str = "", data_info: Optional[dict] = None):
        """`stage`: a `vae` plugin instance (trained in place); `syncnet`: a trained `syncnet` plugin."""
        self.stage = stage
        self.syncnet = syncnet.net
        self.syncnet.eval()
        for p in self.syncnet.parameters():
            p.requires_grad_(False)
        self.config = config or VAETrainConfig()
        if self.config.segment % stage.net.down:
            raise UsageError(f"task.segment ({self.config.segment}) must be a multiple of {stage.net.down}")
        self.encoder = encoder
        self.data_info = data_info or {}
        self.model = stage.net
        mean, std = feature_stats(train)
        self.model.cond.audio_mean.copy_(torch.from_numpy(mean))
        self.model.cond.audio_std.copy_(torch.from_numpy(std))
        m_mean, m_std = motion_stats(train)
        self.model.motion_mean.copy_(torch.from_numpy(m_mean.reshape(-1)))
        self.model.motion_std.copy_(torch.from_numpy(m_std.reshape(-1)))
        seg = self.config.segment
        self.train = [c for c in train if c.n_frames >= seg]
        if not self.train:
            longest = max(c.n_frames for c in train)
            raise UsageError(f"no training clip is {seg} frames long (longest: {longest}); "
                             "lower task.segment in --config")
        self.p_clip = np.array([c.n_frames - seg + 1 for c in self.train], dtype=np.float64)
        self.p_clip /= self.p_clip.sum()
        self.val = list(val)[: self.config.val_clips]
        self.sync_on = False
        self.mouth = mouth_slice()

    def to(self, device) -> None:
        self.model.to(device)
        self.syncnet.to(device)

    def config_dict(self) -> dict:
        from geneface.core.config import unstructure

        return {"losses": unstructure(self.config), "model": unstructure(self.stage.config), "encoder": self.encoder}

    def state(self) -> dict:
        return {"sync_on": self.sync_on}

    def load_state(self, state: dict) -> None:
        self.sync_on = bool(state.get("sync_on", False))

    def sample_batch(self, rng, batch_size):
        seg = self.config.segment
        motion, audio = [], []
        for _ in range(batch_size):
            c = self.train[int(rng.choice(len(self.train), p=self.p_clip))]
            t = int(rng.integers(c.n_frames - seg + 1))
            motion.append(c.landmarks[t: t + seg])
            audio.append(c.features[2 * t: 2 * (t + seg)])
        starts = rng.integers(0, seg - V_FRAMES + 1, size=(batch_size, self.config.sync_windows))
        return {"motion": torch.from_numpy(np.stack(motion)), "audio": torch.from_numpy(np.stack(audio)),
                "sync_starts": torch.from_numpy(starts)}

    def compute_loss(self, net, batch, step):
        c = self.config
        x, a = batch["motion"], batch["audio"]
        out = net(x, a)
        recon = out["recon"]
        mse = torch.mean((recon - x) ** 2)
        cont = torch.mean(((recon[:, 1:] - recon[:, :-1]) - (x[:, 1:] - x[:, :-1])) ** 2)
        loss = c.w_mse * mse + c.w_continuity * cont + c.w_kl * out["kl"]
        metrics = {"mse": mse.item(), "continuity": cont.item(), "kl": out["kl"].item()}
        if self.sync_on:
            sl = sync_loss(windows_sync_prob(self.syncnet, recon, a, batch["sync_starts"]))
            loss = loss + c.w_sync * sl
            metrics["sync"] = sl.item()
        return loss, metrics

    def validate(self) -> dict:
        c = self.config
        mses, syncs, rs, offs = [], [], [], []
        for clip in self.val:
            pred = self.stage.sample_normalized(clip.features, c.val_temperature, c.val_seed)
            mses.append(float(np.mean((pred - clip.landmarks) ** 2)))
            if clip.n_frames < V_FRAMES:
                continue
            found = offset_search(self.syncnet, torch.from_numpy(pred[:, self.mouth]),
                                  torch.from_numpy(clip.features), 0)
            syncs.append(-np.log(max(found.prob_at_zero, 1e-6)))
            mean, std = _stats(clip)
            r = _corr(mouth_opening(pred.reshape(-1, 68, 3) * std + mean), mouth_opening(clip.denormalized()))
            if r is not None:
                rs.append(r)
        out = {"mse": float(np.mean(mses))}
        if syncs:
            out["sync_loss"] = float(np.mean(syncs))
        if rs:
            out["mouth_r"] = float(np.mean(rs))
        return out

    def on_validation(self, metrics: dict, step: int) -> None:
        if not self.sync_on and metrics.get("sync_loss", np.inf) < self.config.sync_threshold:
            self.sync_on = True
        return None

    def export(self, meta: dict) -> Checkpoint:
        return stage_checkpoint(self.stage, meta={**meta, "encoder": self.encoder, "sync_on": self.sync_on,
                                                  "data": self.data_info})


class VAERecipe(Recipe):
    """`geneface train audio2motion --data ... --syncnet CKPT`: the VAE against a frozen SyncNet."""

    options = (TrainOption("syncnet", "a trained syncnet checkpoint (geneface train syncnet)", kind="path",
                           required=True), *OPTIONS)
    # METHOD.md: warm-up 1k steps, exponential decay, gradient clipping at 1.
    loop_defaults = {"batch_size": 16, "schedule": "exponential", "warmup": 1000, "grad_clip": 1.0}

    def build(self, inputs: TrainInputs) -> BuiltTask:
        from geneface.core.runner import load_trained_stage

        path = inputs.options["syncnet"]
        judge = load_trained_stage(path, "syncnet", "--syncnet")
        data = load_speaker_data(inputs, judge.expected_width, f"syncnet {path}")
        if judge.encoder and judge.encoder != data.encoder:
            raise StageMismatchError(f"syncnet {path} was trained on '{judge.encoder}' features, not '{data.encoder}'")
        stage = inputs.stage_cls(inputs.model_config(audio_width=data.width))
        task = VAETask(stage, judge, data.train, data.val, inputs.task_config(VAETrainConfig), data.encoder,
                       {**data.info, "syncnet": str(path)})
        return BuiltTask(task, {"data": data.info})


def _stats(clip: Clip):
    if clip.mean is None or clip.std is None:
        return np.zeros((68, 3), np.float32), np.ones((68, 3), np.float32)
    return clip.mean, np.maximum(clip.std, 1e-6)


def _corr(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    if len(a) < 3 or np.std(a) < 1e-9 or np.std(b) < 1e-9:
        return None
    return float(np.corrcoef(a, b)[0, 1])
