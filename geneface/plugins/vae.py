"""MotionGenerator `vae`: audio features -> 68 x 3 landmarks with a conditional sequence VAE.

Trained with `geneface train audio2motion` (geneface.training.vae_task). At inference the
latent is drawn from the audio-conditioned flow prior (`temperature` scales the draw, `seed`
fixes it) and decoded. Audio of any length runs in windows of `window` frames, each computed
with enough context on both sides (the model's reach) that the result equals one pass over
the whole sequence: no seams, and memory bounded by the window, not the audio.
"""

from __future__ import annotations

import math
from typing import Optional

import attrs
import numpy as np

from geneface import hookimpl
from geneface.core.records import N_LANDMARKS, VIDEO_FPS, AudioFeatures, Motion
from geneface.core.net_stage import AudioConditioned, TorchStage
from geneface.core.stages import MotionGenerator
from geneface.errors import StageMismatchError, UsageError

_pos = attrs.validators.gt(0)


@attrs.define
class VAEConfig:
    audio_width: int = attrs.field(default=80, validator=_pos)  # set from the data when training
    hidden: int = attrs.field(default=256, validator=_pos)
    enc_layers: int = attrs.field(default=8, validator=_pos)
    dec_layers: int = attrs.field(default=4, validator=_pos)
    kernel: int = attrs.field(default=5, validator=_pos)
    latent: int = attrs.field(default=16, validator=_pos)
    cond_dim: int = attrs.field(default=64, validator=_pos)
    cond_hidden: int = attrs.field(default=128, validator=_pos)
    down: int = attrs.field(default=4, validator=_pos)
    flow_hidden: int = attrs.field(default=64, validator=_pos)
    flow_layers: int = attrs.field(default=4, validator=_pos)
    n_flows: int = attrs.field(default=4, validator=_pos)
    utterance_norm: bool = False  # trained on per-utterance normalised features (set by training)
    # inference
    temperature: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    seed: int = 0
    window: int = attrs.field(default=512, validator=_pos)  # video frames per inference window

    def model_kwargs(self) -> dict:
        keys = ("hidden", "enc_layers", "dec_layers", "kernel", "latent", "cond_dim", "cond_hidden", "down",
                "flow_hidden", "flow_layers", "n_flows")
        return {k: getattr(self, k) for k in keys}


class VAEGenerator(AudioConditioned, TorchStage, MotionGenerator):
    name = "vae"
    description = "Conditional sequence VAE with an audio-conditioned flow prior (GeneFace audio2motion)"
    Config = VAEConfig
    training = "geneface.training.vae_task:VAERecipe"

    def build_net(self):
        from geneface.models.vae import MotionVAE

        return MotionVAE(self.config.audio_width, **self.config.model_kwargs())

    def check_input(self, record) -> Optional[str]:
        problem = super().check_input(record)
        if problem is None and self.encoder and record.encoder and record.encoder != self.encoder:
            return f"was trained on '{self.encoder}' features, got '{record.encoder}' features"
        return problem

    def generate(self, features: AudioFeatures, temperature: Optional[float] = None,
                 seed: Optional[int] = None) -> Motion:
        problem = self.check_input(features)
        if problem:
            raise StageMismatchError(f"motion_generator 'vae': {problem}")
        n = features.n_frames // 2
        if n < 1:
            raise UsageError(f"audio too short for motion: {features.n_frames} feature frame(s), "
                             f"at least 2 (one video frame, {1 / VIDEO_FPS:.2f} s) are needed")
        norm = self.sample_normalized(features.values[: 2 * n],
                                      self.config.temperature if temperature is None else temperature,
                                      self.config.seed if seed is None else seed)
        mean = self.net.motion_mean.numpy().reshape(N_LANDMARKS, 3)
        std = self.net.motion_std.numpy().reshape(N_LANDMARKS, 3)
        landmarks = norm.reshape(n, N_LANDMARKS, 3) * std + mean
        return Motion(landmarks, VIDEO_FPS, mean, std)

    def sample_normalized(self, features: np.ndarray, temperature: float, seed: int,
                          window: Optional[int] = None) -> np.ndarray:
        """2T x D features -> T x 204 normalised landmarks, window by window."""
        import torch

        net = self.net
        down = net.down
        n = features.shape[0] // 2
        if self.config.utterance_norm:
            from geneface.core.features import utterance_normalize

            features = utterance_normalize(features[: 2 * n])
        padded = int(math.ceil(n / down)) * down
        device = net.motion_mean.device
        feats = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(device)
        if padded > n:  # repeat the last frame rather than invent silence
            feats = torch.cat([feats, feats[-1:].expand(2 * (padded - n), -1)], 0)
        # One noise sequence for the whole audio, so every window reads the same latent draw.
        gen = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(1, net.latent, padded // down, generator=gen).to(device)
        window = max(down, (window or self.config.window) // down * down)
        context = int(math.ceil(net.reach() / down)) * down
        out = np.empty((padded, net.motion_dim), np.float32)
        net.eval()
        with torch.no_grad():
            for start in range(0, padded, window):
                end = min(start + window, padded)
                a, b = max(0, start - context), min(padded, end + context)
                piece = net.sample(feats[None, 2 * a: 2 * b], noise[:, :, a // down: b // down], temperature)
                out[start:end] = piece[0, start - a: end - a].float().cpu().numpy()
        return out[:n]


@hookimpl
def register_motion_generators(register):
    register(VAEGenerator)
