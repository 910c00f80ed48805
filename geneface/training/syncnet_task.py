"""Training the landmark SyncNet: balanced pairs with three kinds of negatives.

Half the pairs are in sync (mouth frames t..t+4 with audio frames 2t..2t+9). A negative pairs
the same mouth window with audio from another speaker (1/4 of negatives by default), from a
far-away time of the same clip, or from the same place shifted by 2-5 frames (the hardest
kind: it teaches the offset search to resolve a couple of frames). The model says how it
trains (geneface/plugins/syncnet.py: one parameter group; binary cross-entropy of the cosine
score against the label, over the `SyncPairs` drawn here).
"""

from __future__ import annotations

from typing import Optional, Sequence

import attrs
import numpy as np
import torch

from geneface.core.checkpoint import Checkpoint, stage_checkpoint
from geneface.errors import UsageError
from geneface.models.batches import SyncPairs
from geneface.models.syncnet import A_FRAMES, V_FRAMES, offset_search, sync_bce
from geneface.training.data import Clip, ClipDraw, clip_weights, feature_stats, mouth_slice
from geneface.training.recipe import BuiltTask, Recipe, TrainInputs
from geneface.training.speaker_data import OPTIONS, load_speaker_data
from geneface.training.task import OptimizerSpec, TrainTask


@attrs.define
class SyncNetTrainConfig:
    """Pair sampling and validation settings (the architecture is the plugin's config)."""

    p_positive: float = 0.5
    p_other_speaker: float = 0.25  # shares of the negatives; the rest split evenly below
    p_far: float = 0.375
    p_shift: float = 0.375
    shift_min: int = 2
    shift_max: int = 5
    far_min: int = 12  # frames between a window and its "far-away" negative
    val_pairs: int = 2000
    val_offset_clips: int = 64  # clips (or pieces of clips) for the offset check in validation
    val_max_offset: int = 8


@attrs.frozen
class Pair:
    clip: int
    t: int  # mouth window start (video frames)
    audio_clip: int
    audio_t: int  # audio window start (video frames; feature frame 2 * audio_t)
    label: int
    kind: str  # positive, other_speaker, far, shift


class PairSampler:
    """Draws (mouth window, audio window, label) pairs from clips, with one numpy Generator."""

    def __init__(self, clips: Sequence[Clip], config: SyncNetTrainConfig, balance: str = "window"):
        self.clips = [c for c in clips if c.n_frames >= V_FRAMES]
        if not self.clips:
            raise UsageError(f"no clip has the {V_FRAMES} frames one SyncNet window needs")
        self.config = config
        self.n_windows = np.array([c.n_frames - V_FRAMES + 1 for c in self.clips])
        self.p_clip = clip_weights(self.clips, V_FRAMES, balance)
        self.draw_clip = ClipDraw(self.p_clip)
        self.by_speaker: dict[str, list[int]] = {}
        for i, c in enumerate(self.clips):
            self.by_speaker.setdefault(c.speaker, []).append(i)
        self.speaker_id = np.unique([c.speaker for c in self.clips], return_inverse=True)[1]
        self.mouth = mouth_slice()
        shares = np.array([config.p_other_speaker, config.p_far, config.p_shift], dtype=np.float64)
        self.p_kind = shares / shares.sum()

    def _other_speaker(self, rng, i):
        """A clip of another speaker, uniformly: drawn among all clips until the speaker differs
        (O(1) per draw at 100k clips), with the explicit list only when others are rare."""
        if len(self.by_speaker) < 2:
            return None
        for _ in range(32):
            j = int(rng.integers(len(self.clips)))
            if self.speaker_id[j] != self.speaker_id[i]:
                return j, int(rng.integers(self.n_windows[j]))
        others = np.flatnonzero(self.speaker_id != self.speaker_id[i])
        j = int(others[rng.integers(len(others))])
        return j, int(rng.integers(self.n_windows[j]))

    def _far(self, rng, i, t):
        n, gap = self.n_windows[i], self.config.far_min
        choices = np.r_[np.arange(0, max(0, t - gap + 1)), np.arange(min(n, t + gap), n)]
        if len(choices):
            return i, int(choices[rng.integers(len(choices))])
        same = [j for j in self.by_speaker[self.clips[i].speaker] if j != i]
        if same:  # a short clip: another clip of the same speaker is just as far away
            j = same[rng.integers(len(same))]
            return j, int(rng.integers(self.n_windows[j]))
        return None

    def _shift(self, rng, i, t):
        c = self.config
        d = int(rng.integers(c.shift_min, c.shift_max + 1))
        for s in ((1, -1) if rng.random() < 0.5 else (-1, 1)):
            u = t + s * d
            if 0 <= u < self.n_windows[i]:
                return i, u
        return None

    def draw(self, rng: np.random.Generator) -> Pair:
        i = self.draw_clip(rng)
        t = int(rng.integers(self.n_windows[i]))
        if rng.random() < self.config.p_positive:
            return Pair(i, t, i, t, 1, "positive")
        kinds = ("other_speaker", "far", "shift")
        first = int(rng.choice(3, p=self.p_kind))
        # Fall back through the other kinds when a clip cannot give the one drawn.
        for kind in kinds[first:] + kinds[:first]:
            got = {"other_speaker": lambda: self._other_speaker(rng, i), "far": lambda: self._far(rng, i, t),
                   "shift": lambda: self._shift(rng, i, t)}[kind]()
            if got is not None:
                return Pair(i, t, got[0], got[1], 0, kind)
        raise UsageError(f"clip {self.clips[i].name} is too short to draw a negative from")

    def tensors(self, pairs: Sequence[Pair]) -> SyncPairs:
        mouth = np.stack([self.clips[p.clip].landmarks[p.t: p.t + V_FRAMES, self.mouth] for p in pairs])
        audio = np.stack([self.clips[p.audio_clip].features[2 * p.audio_t: 2 * p.audio_t + A_FRAMES] for p in pairs])
        label = np.array([p.label for p in pairs], dtype=np.float32)
        return SyncPairs(torch.from_numpy(mouth), torch.from_numpy(audio), torch.from_numpy(label))


class SyncNetTask(TrainTask):
    name = "syncnet"
    best_metric = "loss"
    best_mode = "min"

    def __init__(self, stage, train: Sequence[Clip], val: Sequence[Clip], config: Optional[SyncNetTrainConfig] = None,
                 encoder: str = "", data_info: Optional[dict] = None, balance: str = "window"):
        """`stage`: a `syncnet` plugin instance (its net is trained in place); `balance`: how
        training windows are drawn (`clip_weights`); validation pairs stay uniform over windows."""
        self.stage = stage
        self.config = config or SyncNetTrainConfig()
        self.encoder = encoder
        self.data_info = data_info or {}
        self.model = stage.net
        stage.set_statistics(*feature_stats(train))
        self.sampler = PairSampler(train, self.config, balance)
        self.val_sampler = PairSampler(val, self.config)
        rng = np.random.default_rng(12345)  # fixed validation pairs: comparable across steps
        self.val_pairs = [self.val_sampler.draw(rng) for _ in range(self.config.val_pairs)]
        self.val_pieces = _pieces(val, self.config.val_offset_clips, 50 + 2 * self.config.val_max_offset)

    def config_dict(self) -> dict:
        from geneface.core.config import unstructure

        return {"sampling": unstructure(self.config), "model": unstructure(self.stage.config), "encoder": self.encoder}

    def sample_batch(self, rng, batch_size):
        return self.sampler.tensors([self.sampler.draw(rng) for _ in range(batch_size)])

    def optimizers(self, run_schedule):
        return [OptimizerSpec("main", self.stage.param_groups(self.config, run_schedule))]

    def compute_loss(self, net, batch: SyncPairs, step):
        losses = self.stage.losses(batch, self.config, net=net)
        return losses.total(), losses.metrics

    def validate(self) -> dict:
        metrics = pair_metrics(self.model, self.val_sampler, self.val_pairs)
        errors = []
        mouth = mouth_slice()
        for clip in self.val_pieces:
            found = offset_search(self.model, torch.from_numpy(clip.landmarks[:, mouth]),
                                  torch.from_numpy(np.asarray(clip.features)), self.config.val_max_offset)
            errors.append(abs(found.best_offset))
        if errors:
            metrics["offset_within_1"] = float(np.mean(np.array(errors) <= 1))
        return metrics

    def export(self, meta: dict) -> Checkpoint:
        return stage_checkpoint(self.stage, meta={**meta, "encoder": self.encoder, "data": self.data_info})


class SyncNetRecipe(Recipe):
    """`geneface train syncnet --data ...`: the plugin's config from `model:`, sampling from `task:`."""

    options = OPTIONS

    def build(self, inputs: TrainInputs) -> BuiltTask:
        data = load_speaker_data(inputs)
        stage = inputs.stage_cls(inputs.model_config(audio_width=data.width, utterance_norm=data.utterance_norm))
        task = SyncNetTask(stage, data.train, data.val, inputs.task_config(SyncNetTrainConfig), data.encoder, data.info,
                           data.balance)
        return BuiltTask(task, {"data": data.info})


@torch.no_grad()
def pair_metrics(net, sampler: PairSampler, pairs: Sequence[Pair], chunk: int = 512) -> dict:
    """Accuracy (threshold 0.5), BCE and accuracy per kind of negative over fixed pairs."""
    probs = []
    device = net.audio_mean.device
    for i in range(0, len(pairs), chunk):
        b = sampler.tensors(pairs[i: i + chunk])
        probs.append(net(b.mouth.to(device), b.audio.to(device)).float().cpu())
    prob = torch.cat(probs)
    label = torch.tensor([p.label for p in pairs], dtype=torch.float32)
    correct = ((prob > 0.5).float() == label).numpy()
    out = {"loss": float(sync_bce(prob, label)), "acc": float(correct.mean())}
    kinds = np.array([p.kind for p in pairs])
    for kind in ("positive", "other_speaker", "far", "shift"):
        if (kinds == kind).any():
            out[f"acc_{kind}"] = float(correct[kinds == kind].mean())
    return out


def _pieces(clips: Sequence[Clip], n: int, length: int) -> list[Clip]:
    """Up to `n` pieces of `length` frames spread over the clips (for a quick offset check)."""
    pieces = [c.piece(a, a + length, f":{a}") for c in clips for a in range(0, c.n_frames - length + 1, length)]
    if len(pieces) > n:
        idx = np.linspace(0, len(pieces) - 1, n).round().astype(int)
        pieces = [pieces[i] for i in idx]
    return pieces
