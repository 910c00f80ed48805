"""SyncScorer `syncnet`: the landmark SyncNet, a lip-sync judge and a training loss.

Trained with `geneface train syncnet` (geneface.training.syncnet_task draws the pairs); the
class says how it trains (geneface.core.trainable: one parameter group, the BCE of the
cosine score over `SyncPairs`). As a judge, `score(motion, features)` gives the mean
sync confidence at offset 0 and the audio-visual offset (in video frames) that fits best,
searching -K..K like SyncNet's offset estimate; as a loss, `sync_probability(mouth, audio)`
takes batches of windows and keeps the graph for the caller's gradient.
"""

from __future__ import annotations

import attrs
import numpy as np

from geneface import hookimpl
from geneface.core.records import AudioFeatures, Motion
from geneface.core.net_stage import AudioConditioned, TorchStage
from geneface.core.stages import SyncResult, SyncScorer
from geneface.errors import StageMismatchError, UsageError
from geneface.core.trainable import Losses, TrainableNet


def _three_widths(_inst, _attr, value):
    if len(value) != 3 or any(int(v) <= 0 for v in value):
        raise ValueError(f"channels must be three positive widths, got {value}")


@attrs.define
class SyncNetConfig:
    audio_width: int = attrs.field(default=80, validator=attrs.validators.gt(0))  # set from the data
    channels: tuple[int, int, int] = attrs.field(default=(128, 256, 512), converter=tuple, validator=_three_widths)
    embed: int = attrs.field(default=512, validator=attrs.validators.gt(0))
    utterance_norm: bool = False  # trained on per-utterance normalised features (set by training)


class SyncNet(AudioConditioned, TorchStage, SyncScorer, TrainableNet):
    name = "syncnet"
    description = "Landmark SyncNet (5 mouth frames vs 10 audio frames, cosine score): sync judge and loss"
    Config = SyncNetConfig
    training = "geneface.training.syncnet_task:SyncNetRecipe"

    def build_net(self):
        from geneface.models.syncnet import LandmarkSyncNet

        return LandmarkSyncNet(self.config.audio_width, self.config.channels, self.config.embed)

    def check_features(self, features: AudioFeatures, where: str = "audio features") -> None:
        if features.width != self.config.audio_width:
            raise StageMismatchError(
                f"syncnet was trained on features {self.config.audio_width} wide"
                f"{f' (encoder {self.encoder!r})' if self.encoder else ''}, but {where} are {features.width} wide"
                f"{f' (encoder {features.encoder!r})' if features.encoder else ''}")
        if self.encoder and features.encoder and features.encoder != self.encoder:
            raise StageMismatchError(f"syncnet was trained on '{self.encoder}' features, {where} come from "
                                     f"'{features.encoder}'")

    def sync_probability(self, mouth, audio):
        """Torch: B x 5 x 60 normalised mouth, B x 10 x D features -> B probabilities."""
        return self.net(mouth, audio)

    # -- how it trains (geneface.core.trainable; one parameter group, the default) --------
    def set_statistics(self, audio_mean: np.ndarray, audio_std: np.ndarray) -> None:
        """Keep the training features' statistics (every encoder's features arrive on one scale)."""
        import torch

        self.net.audio_mean.copy_(torch.from_numpy(audio_mean))
        self.net.audio_std.copy_(torch.from_numpy(audio_std))

    def losses(self, batch, config, net=None) -> Losses:
        """Binary cross-entropy of the pairs' sync probability against their labels
        (`batch`: geneface.models.batches.SyncPairs); `net`: what the forward pass runs
        through (the trainer's DDP wrapper of `self.net`)."""
        from geneface.models.syncnet import sync_bce

        prob = (self.net if net is None else net)(batch.mouth, batch.audio)
        bce = sync_bce(prob, batch.label)
        acc = ((prob.detach() > 0.5).float() == batch.label).float().mean()
        return Losses({"bce": bce}, {"acc": float(acc)})

    def score(self, motion: Motion, features: AudioFeatures, max_offset: int = 15) -> SyncResult:
        import torch

        from geneface.models.syncnet import A_FRAMES, V_FRAMES, mouth_of, offset_search

        self.check_features(features)
        n = min(motion.n_frames, features.n_frames // 2)
        if n < V_FRAMES:
            raise UsageError(f"sync scoring needs at least {V_FRAMES} video frames ({A_FRAMES} feature frames, "
                             f"{V_FRAMES / motion.fps:.2f} s) of motion and audio; got {n}")
        norm = _normalized(motion)
        mouth = mouth_of(torch.from_numpy(norm[:n]))
        self.net.eval()
        values = features.values[: 2 * n]
        if self.config.utterance_norm:
            from geneface.core.features import utterance_normalize

            values = utterance_normalize(values)
        found = offset_search(self.net, mouth, torch.from_numpy(values), max_offset)
        return SyncResult(
            confidence=found.prob_at_zero,
            offset=found.best_offset,
            offset_confidence=found.offset_confidence,
            offsets=found.offsets,
            curve=found.mean_prob,
            n_windows=found.n_windows,
        )


def _normalized(motion: Motion) -> np.ndarray:
    """The motion in the normalised space the net was trained in.

    With statistics attached (datasets, the `vae` generator) they are used; a bare sequence
    is normalised by its own per-coordinate mean and spread over time, which is what a
    dataset's statistics amount to for a single clip of one person.
    """
    if motion.mean is not None and motion.std is not None:
        return motion.normalized().astype(np.float32)
    lm = motion.landmarks
    return ((lm - lm.mean(0)) / np.maximum(lm.std(0), 1e-6)).astype(np.float32)


@hookimpl
def register_syncnets(register):
    register(SyncNet)
