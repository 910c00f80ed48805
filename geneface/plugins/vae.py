"""MotionGenerator `vae`: audio features -> 68 x 3 landmarks with a conditional sequence VAE.

Trained with `geneface train audio2motion` (geneface.training.vae_task draws the windows and
keeps the schedule); the class says how it trains (geneface.core.trainable: one parameter
group, its losses over `MotionWindows`, its statistics). At inference the
latent is drawn from the audio-conditioned flow prior (`temperature` scales the draw, `seed`
fixes it) and decoded. Audio of any length runs in windows of `window` frames, each computed
with enough context on both sides (the model's reach) that the result equals one pass over
the whole sequence: no seams, and memory bounded by the window, not the audio.

The latent noise is drawn time-major in blocks of `NOISE_BLOCK` latent frames, each block from
its own generator seeded by (seed, block), so the draw for a frame depends on the seed and
the frame alone, never on the length of the audio: a window of a longer run, or the start of
the audio, gets the noise the whole run gets. (Until streaming came, one `randn(1, latent,
L)` was drawn per run, which changes with L; samples for a given seed changed once then.)

Streaming (`stream_context`): `net.reach()` frames of context each side, rounded up to the
latent grid, plus one latent frame for a window that starts off the grid (156 + 4 frames,
6.4 s, for the trained model). A window starting at run frame `offset` (RunContext.offset)
reads the noise of its own frames. Exact: on the CPU the convolutions run without oneDNN,
whose kernels round differently for different lengths (last-bit differences between a
window and the whole); the plain path sums each output in the same order whatever the
length. With `utterance_norm` the features are normalised over the whole utterance, so a
stream is only approximate.
"""

from __future__ import annotations

import math
from typing import Optional

import attrs
import numpy as np

from geneface import hookimpl
from geneface.core.records import N_LANDMARKS, VIDEO_FPS, AudioFeatures, Motion
from geneface.core.net_stage import AudioConditioned, TorchStage
from geneface.core.stages import MotionGenerator, RunContext, StreamContext
from geneface.errors import StageMismatchError, UsageError
from geneface.core.trainable import Losses, TrainableNet

_pos = attrs.validators.gt(0)
NOISE_BLOCK = 64  # latent frames per block of noise drawn from one generator


def _block_seed(seed: int, block: int) -> int:
    """A 64-bit seed for noise block `block` of run seed `seed` (SeedSequence mixes the two, so
    neighbouring seeds and blocks get unrelated streams)."""
    return int(np.random.SeedSequence([int(seed) % 2 ** 64, int(block)]).generate_state(1, np.uint64)[0])


def latent_noise(seed: int, latent: int, start: int, stop: int):
    """Standard normal noise (1 x latent x (stop - start), torch) for latent frames start ..
    stop - 1 of a run: frame k's values depend only on (seed, k)."""
    import torch

    first, last = start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK
    blocks = [torch.randn(NOISE_BLOCK, latent, generator=torch.Generator().manual_seed(_block_seed(seed, b)))
              for b in range(first, last + 1)]
    base = first * NOISE_BLOCK
    return torch.cat(blocks)[start - base: stop - base].T.contiguous()[None]


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


class VAEGenerator(AudioConditioned, TorchStage, MotionGenerator, TrainableNet):
    name = "vae"
    description = "Conditional sequence VAE with an audio-conditioned flow prior (GeneFace audio2motion)"
    Config = VAEConfig
    training = "geneface.training.vae_task:VAERecipe"

    def build_net(self):
        from geneface.models.vae import MotionVAE

        return MotionVAE(self.config.audio_width, **self.config.model_kwargs())

    # -- how it trains (geneface.core.trainable; one parameter group, the default) --------
    def set_statistics(self, audio_mean: np.ndarray, audio_std: np.ndarray, motion_mean: np.ndarray,
                       motion_std: np.ndarray) -> None:
        """Keep the training data's feature and landmark statistics (inputs are normalised by
        the first, outputs de-normalised by the second)."""
        import torch

        self.net.cond.audio_mean.copy_(torch.from_numpy(audio_mean))
        self.net.cond.audio_std.copy_(torch.from_numpy(audio_std))
        self.net.motion_mean.copy_(torch.from_numpy(motion_mean.reshape(-1)))
        self.net.motion_std.copy_(torch.from_numpy(motion_std.reshape(-1)))

    def losses(self, batch, config, net=None, judge=None) -> Losses:
        """MSE of the reconstruction, MSE of its frame-to-frame differences, the KL estimate
        against the flow prior; the sync loss of the reconstruction once the task switches it
        on (`judge`: the frozen SyncNet then, None before); with `config.w_amplitude` the
        amplitude loss of a draw from the prior (the spread over time of each mouth coordinate
        against the truth's). `batch`: geneface.models.batches.MotionWindows; `config`: the task
        config's weights; `net`: what the forward pass runs through (the trainer's DDP wrapper
        of `self.net`)."""
        import torch

        from geneface.models.syncnet import MOUTH_SLICE, sync_loss, windows_sync_prob

        c, m = config, self.net
        x, a = batch.motion, batch.audio
        out = (m if net is None else net)(x, a)
        recon = out["recon"]
        mse = torch.mean((recon - x) ** 2)
        cont = torch.mean(((recon[:, 1:] - recon[:, :-1]) - (x[:, 1:] - x[:, :-1])) ** 2)
        terms = {"mse": c.w_mse * mse, "continuity": c.w_continuity * cont, "kl": c.w_kl * out["kl"]}
        metrics = {"mse": mse.item(), "continuity": cont.item(), "kl": out["kl"].item()}
        if judge is not None:
            sl = sync_loss(windows_sync_prob(judge, recon, a, batch.sync_starts))
            terms["sync"] = c.w_sync * sl
            metrics["sync"] = sl.item()
        if c.w_amplitude > 0:
            noise = torch.randn(x.shape[0], m.latent, x.shape[1] // m.down, device=x.device)
            drawn = m.sample(a, noise)[:, :, MOUTH_SLICE]
            amp = torch.mean((drawn.std(1) - x[:, :, MOUTH_SLICE].std(1)) ** 2)
            terms["amplitude"] = c.w_amplitude * amp
            metrics["amplitude"] = amp.item()
        return Losses(terms, metrics)

    def check_input(self, record) -> Optional[str]:
        problem = super().check_input(record)
        if problem is None and self.encoder and record.encoder and record.encoder != self.encoder:
            return f"was trained on '{self.encoder}' features, got '{record.encoder}' features"
        return problem

    def stream_context(self) -> StreamContext:
        down = self.net.down
        side = int(math.ceil(self.net.reach() / down)) * down
        if self.config.utterance_norm:
            return StreamContext(side + down, side, exact=False,
                                 why="utterance_norm: features are normalised over the whole utterance")
        return StreamContext(side + down, side)

    def apply(self, record: AudioFeatures, context: RunContext) -> Motion:
        return self.generate(record, offset=context.offset)

    def generate(self, features: AudioFeatures, temperature: Optional[float] = None,
                 seed: Optional[int] = None, offset: int = 0) -> Motion:
        """Motion for `features`; `offset`: the run's video frame they start at (a streamed
        window), which picks the noise."""
        problem = self.check_input(features)
        if problem:
            raise StageMismatchError(f"motion_generator 'vae': {problem}")
        n = features.n_frames // 2
        if n < 1:
            raise UsageError(f"audio too short for motion: {features.n_frames} feature frame(s), "
                             f"at least 2 (one video frame, {1 / VIDEO_FPS:.2f} s) are needed")
        norm = self.sample_normalized(features.values[: 2 * n],
                                      self.config.temperature if temperature is None else temperature,
                                      self.config.seed if seed is None else seed, offset=offset)
        mean = self.net.motion_mean.numpy().reshape(N_LANDMARKS, 3)
        std = self.net.motion_std.numpy().reshape(N_LANDMARKS, 3)
        landmarks = norm.reshape(n, N_LANDMARKS, 3) * std + mean
        return Motion(landmarks, VIDEO_FPS, mean, std)

    def sample_normalized(self, features: np.ndarray, temperature: float, seed: int,
                          window: Optional[int] = None, offset: int = 0) -> np.ndarray:
        """2T x D features -> T x 204 normalised landmarks, window by window. `offset`: the run's
        video frame the features start at (0: the start of the run)."""
        import torch

        net = self.net
        down = net.down
        n = features.shape[0] // 2
        if self.config.utterance_norm:
            from geneface.core.features import utterance_normalize

            features = utterance_normalize(features[: 2 * n])
        # The latent grid is the run's: a piece starting off it is led in by copies of its first
        # frame (within the look-back of `stream_context`, so no output that counts reads them).
        lead = offset % down
        padded = int(math.ceil((lead + n) / down)) * down
        device = net.motion_mean.device
        feats = torch.from_numpy(np.ascontiguousarray(features[: 2 * n], dtype=np.float32)).to(device)
        if lead:
            feats = torch.cat([feats[:2].repeat(lead, 1), feats], 0)
        if padded > lead + n:  # repeat the last frame rather than invent silence
            feats = torch.cat([feats, feats[-1:].expand(2 * (padded - lead - n), -1)], 0)
        first = (offset - lead) // down  # the run's latent frame this piece starts at
        noise = latent_noise(seed, net.latent, first, first + padded // down).to(device)
        window = max(down, (window or self.config.window) // down * down)
        context = int(math.ceil(net.reach() / down)) * down
        out = np.empty((padded, net.motion_dim), np.float32)
        net.eval()
        from geneface.models.blocks import length_invariant_convs

        with torch.no_grad(), length_invariant_convs():  # a window equals the whole, bit for bit
            for start in range(0, padded, window):
                end = min(start + window, padded)
                a, b = max(0, start - context), min(padded, end + context)
                piece = net.sample(feats[None, 2 * a: 2 * b], noise[:, :, a // down: b // down], temperature)
                out[start:end] = piece[0, start - a: end - a].float().cpu().numpy()
        return out[lead: lead + n]


@hookimpl
def register_motion_generators(register):
    register(VAEGenerator)
