"""Training the audio-to-motion VAE against a frozen SyncNet.

The model says how it trains (geneface/plugins/vae.py: one parameter group, its losses over
the `MotionWindows` drawn here); the weights are this task config's:
Loss = MSE(landmarks) + 3 * MSE(frame-to-frame differences) + 0.5 * KL(flow prior)
       + 0.01 * sync loss, the last only once the validation sync loss (SyncNet's BCE on the
       VAE's own sampled motion for held-out speech) has fallen below 0.75 (METHOD.md: this
       task's schedule, `sync_on`)
       [+ w_amplitude * amplitude loss: the spread over time of each mouth coordinate in a
       draw from the prior against the truth's; the posterior's reconstruction sees the truth,
       the prior's draw is what inference uses, and it is the one that goes flat].

Windows are drawn speaker-balanced by default (`--balance`); `tempo` stretches a window's
motion and features together by a random factor (speech rate augmentation that keeps them in
step). With `--init CKPT --person DATASET` a generic model is fine-tuned on one person's own
video: their training frames only (the last 1/11 stays unseen; validation is the last tenth
of the training frames), the generic model's feature and motion statistics kept.
"""

from __future__ import annotations

from typing import Optional, Sequence

import attrs
import numpy as np
import torch

from geneface.core.checkpoint import Checkpoint, stage_checkpoint
from geneface.errors import StageMismatchError, UsageError
from geneface.models.batches import MotionWindows
from geneface.models.syncnet import V_FRAMES, offset_search
from geneface.core.landmarks68 import mouth_opening
from geneface.training.data import Clip, ClipDraw, clip_weights, feature_stats, motion_stats, mouth_slice
from geneface.training.recipe import BuiltTask, Recipe, TrainInputs, TrainOption
from geneface.training.speaker_data import OPTIONS, SpeakerData, load_speaker_data
from geneface.training.task import OptimizerSpec, TrainTask


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
    w_amplitude: float = 0.0  # amplitude loss on a prior draw (module doc)
    tempo: float = 0.0  # +- relative tempo range of the augmentation (0.15: 0.85x-1.15x); 0 = off


class VAETask(TrainTask):
    name = "vae"
    best_metric = "mse"
    best_mode = "min"

    def __init__(self, stage, syncnet, train: Sequence[Clip], val: Sequence[Clip],
                 config: Optional[VAETrainConfig] = None, encoder: str = "", data_info: Optional[dict] = None,
                 balance: str = "speaker", keep_stats: bool = False):
        """`stage`: a `vae` plugin instance (trained in place); `syncnet`: a trained `syncnet` plugin;
        `keep_stats`: keep the stage's feature and motion statistics (fine-tuning a trained model)."""
        self.stage = stage
        self.syncnet = syncnet.net
        self.syncnet.eval()
        for p in self.syncnet.parameters():
            p.requires_grad_(False)
        self.config = config or VAETrainConfig()
        if self.config.segment % stage.config.down:
            raise UsageError(f"task.segment ({self.config.segment}) must be a multiple of {stage.config.down}")
        self.encoder = encoder
        self.data_info = data_info or {}
        self.model = stage.net
        if not keep_stats:
            stage.set_statistics(*feature_stats(train), *motion_stats(train))
        seg = self.config.segment
        self.reach = int(np.ceil(seg * (1 + self.config.tempo)))  # frames a stretched window may read
        self.train = [c for c in train if c.n_frames >= self.reach]
        if not self.train:
            longest = max(c.n_frames for c in train)
            raise UsageError(f"no training clip is {self.reach} frames long (longest: {longest}); "
                             "lower task.segment (or task.tempo) in --config")
        self.p_clip = clip_weights(self.train, self.reach, balance)
        self.draw_clip = ClipDraw(self.p_clip)
        # A corpus's lazy clips: the few validation clips are read into memory once.
        self.val = [c.load() if hasattr(c, "load") else c for c in list(val)[: self.config.val_clips]]
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
        seg, tempo = self.config.segment, self.config.tempo
        motion, audio = [], []
        for _ in range(batch_size):
            c = self.train[self.draw_clip(rng)]
            factor = float(rng.uniform(1 - tempo, 1 + tempo)) if tempo > 0 else 1.0
            span = min(c.n_frames, max(2, int(round(seg * factor))))  # source frames read
            t = int(rng.integers(c.n_frames - span + 1))
            lm, ft = c.landmarks[t: t + span], c.features[2 * t: 2 * (t + span)]
            if span != seg:
                lm, ft = _stretch(lm, seg), _stretch(ft, 2 * seg)
            motion.append(lm)
            audio.append(ft)
        starts = rng.integers(0, seg - V_FRAMES + 1, size=(batch_size, self.config.sync_windows))
        return MotionWindows(torch.from_numpy(np.stack(motion)), torch.from_numpy(np.stack(audio)),
                             torch.from_numpy(starts))

    def optimizers(self, run_schedule):
        return [OptimizerSpec("main", self.stage.param_groups(self.config, run_schedule))]

    def compute_loss(self, net, batch: MotionWindows, step):
        losses = self.stage.losses(batch, self.config, net=net, judge=self.syncnet if self.sync_on else None)
        return losses.total(), losses.metrics

    def validate(self) -> dict:
        c = self.config
        mses, syncs, rs, amps = [], [], [], []
        for clip in self.val:
            pred = self.stage.sample_normalized(clip.features, c.val_temperature, c.val_seed)
            mses.append(float(np.mean((pred - clip.landmarks) ** 2)))
            if clip.n_frames < V_FRAMES:
                continue
            found = offset_search(self.syncnet, torch.from_numpy(pred[:, self.mouth]),
                                  torch.from_numpy(clip.features), 0)
            syncs.append(-np.log(max(found.prob_at_zero, 1e-6)))
            mean, std = _stats(clip)
            gen, true = mouth_opening(pred.reshape(-1, 68, 3) * std + mean), mouth_opening(clip.denormalized())
            r = _corr(gen, true)
            if r is not None:
                rs.append(r)
                amps.append(float(np.std(gen) / np.std(true)))
        out = {"mse": float(np.mean(mses))}
        if syncs:
            out["sync_loss"] = float(np.mean(syncs))
        if rs:
            out["mouth_r"] = float(np.mean(rs))
            out["mouth_amplitude"] = float(np.mean(amps))  # std generated / std true
        return out

    def on_validation(self, metrics: dict, step: int) -> None:
        if not self.sync_on and metrics.get("sync_loss", np.inf) < self.config.sync_threshold:
            self.sync_on = True
        return None

    def export(self, meta: dict) -> Checkpoint:
        return stage_checkpoint(self.stage, meta={**meta, "encoder": self.encoder, "sync_on": self.sync_on,
                                                  "data": self.data_info})


class VAERecipe(Recipe):
    """`geneface train audio2motion --data ... --syncnet CKPT`: the VAE against a frozen SyncNet;
    `--init CKPT --person DATASET`: fine-tune a trained VAE on one person's own video."""

    options = (TrainOption("syncnet", "a trained syncnet checkpoint (geneface train syncnet)", kind="path",
                           required=True), *OPTIONS,
               TrainOption("init", "start from this trained vae checkpoint (its architecture, weights and "
                           "statistics)", kind="path"),
               TrainOption("person", "fine-tune on this person's dataset: its training frames only, the held-out "
                           "last 1/11 never read (needs --init; replaces --data)", kind="path"))
    # METHOD.md: warm-up 1k steps, exponential decay, gradient clipping at 1.
    loop_defaults = {"batch_size": 16, "schedule": "exponential", "warmup": 1000, "grad_clip": 1.0}
    needs_data = False  # --data, or --person with --init

    def build(self, inputs: TrainInputs) -> BuiltTask:
        registry = inputs.registry
        path = inputs.options["syncnet"]
        judge = registry.load(path, "syncnet", "--syncnet")
        init, person = inputs.options["init"], inputs.options["person"]
        if person is not None:
            if init is None:
                raise UsageError("--person fine-tunes a trained model: give the generic model with --init")
            if inputs.data:
                raise UsageError("--person replaces --data: give one or the other")
            stage = registry.load(init, "motion_generator", "--init")
            data = person_speaker_data(person, stage, judge, registry)
        else:
            if not inputs.data:
                raise UsageError("audio2motion needs --data (datasets or corpora), or --init with --person")
            data = load_speaker_data(inputs, judge.expected_width, f"syncnet {path}")
            stage = (registry.load(init, "motion_generator", "--init") if init is not None else
                     inputs.stage_cls(inputs.model_config(audio_width=data.width, utterance_norm=data.utterance_norm)))
        if judge.encoder and judge.encoder != data.encoder:
            raise StageMismatchError(f"syncnet {path} was trained on '{judge.encoder}' features, not '{data.encoder}'")
        if bool(judge.config.utterance_norm) != data.utterance_norm:
            raise StageMismatchError(f"syncnet {path} was trained {'with' if judge.config.utterance_norm else 'without'} "
                                     "--utterance-norm; train the vae the same way")
        if init is not None and (stage.config.audio_width != data.width or stage.config.utterance_norm != data.utterance_norm):
            raise StageMismatchError(f"--init {init} was trained on features {stage.config.audio_width} wide"
                                     f"{' (utterance-normalised)' if stage.config.utterance_norm else ''}; "
                                     f"the data's are {data.width} wide{' (utterance-normalised)' if data.utterance_norm else ''}")
        info = {**data.info, "syncnet": str(path), **({"init": str(init)} if init is not None else {})}
        task = VAETask(stage, judge, data.train, data.val, inputs.task_config(VAETrainConfig), data.encoder,
                       info, data.balance, keep_stats=init is not None)
        return BuiltTask(task, {"data": data.info})


def person_speaker_data(person, stage, judge, registry) -> SpeakerData:
    """One person's training frames as training (all but their last tenth) and validation
    (that last tenth) clips, with the features `stage` was trained on; the held-out last 1/11
    of the video is not read into either."""
    from geneface.core.features import utterance_normalize
    from geneface.training.data import _cut_tail
    from geneface.training.person_data import load_person

    name = stage.encoder or judge.encoder or "mel"
    encoder = registry.get("audio_encoder", name, where="--init's encoder").cls()
    data = load_person(person, encoder)
    clips = list(data.train)
    if stage.config.utterance_norm:
        clips = [attrs.evolve(c, features=utterance_normalize(c.features)) for c in clips]
    pieces = [_cut_tail(c, 0.1) for c in clips]
    train = [a for a, _ in pieces if a is not None]
    val = [b for _, b in pieces if b is not None]
    info = {"person": str(person), "encoder": name, "train_frames": sum(c.n_frames for c in train),
            "val_frames": sum(c.n_frames for c in val), "held_out_frames_unread": data.n_held_out,
            "balance": "window", "utterance_norm": bool(stage.config.utterance_norm)}
    return SpeakerData(train, val, name, info, "window", bool(stage.config.utterance_norm))


def _stats(clip: Clip):
    if clip.mean is None or clip.std is None:
        return np.zeros((68, 3), np.float32), np.ones((68, 3), np.float32)
    return clip.mean, np.maximum(clip.std, 1e-6)


def _corr(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    if len(a) < 3 or np.std(a) < 1e-9 or np.std(b) < 1e-9:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _stretch(values: np.ndarray, n: int) -> np.ndarray:
    """Rows resampled to `n` by linear interpolation over time."""
    src = np.linspace(0, len(values) - 1, n)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, len(values) - 1)
    w = (src - lo)[:, None].astype(np.float32)
    return values[lo] * (1 - w) + values[hi] * w
