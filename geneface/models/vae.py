"""Conditional sequence VAE with an audio-conditioned normalising-flow prior (audio -> motion).

    audio features (50 Hz) --average pairs--> 25 Hz --conv net--> condition c (64 x T)
    motion x (204 x T) --WaveNet encoder (8 layers, 256, kernel 5)--> /4 in time --> q(z|x,c), 16 x T/4
    z --x4 in time--> WaveNet decoder (4 layers) with c --> motion (204 x T)
    prior p(z|c): N(0, I) pushed through 4 residual coupling blocks (hidden 64) conditioned on c

KL(q || p) is estimated with the sampled z: log q(z|x) - [log N(f(z)) + log|det df/dz|].
Sampling runs the flow backwards from N(0, temperature^2 I). Every layer is a convolution,
so `reach()` says how many frames of context one output frame depends on; the windowed
inference in the `vae` plugin uses it to make windowed output equal the whole-sequence output.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from geneface.models.blocks import WaveNet

LOG_2PI = math.log(2 * math.pi)


class AudioCondition(nn.Module):
    """B x 2T x D features (50 Hz) -> B x C x T condition (25 Hz)."""

    def __init__(self, audio_dim: int, out: int = 64, hidden: int = 128, kernel: int = 5, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        c = audio_dim
        for i in range(n_layers):
            last = i == n_layers - 1
            layers.append(nn.Conv1d(c, out if last else hidden, kernel, padding=kernel // 2))
            if not last:
                layers.append(nn.LeakyReLU(0.2))
            c = hidden
        self.net = nn.Sequential(*layers)
        self.reach = n_layers * (kernel // 2)
        self.register_buffer("audio_mean", torch.zeros(audio_dim))
        self.register_buffer("audio_std", torch.ones(audio_dim))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        b, f, d = audio.shape
        x = (audio - self.audio_mean) / self.audio_std
        x = x[:, : f // 2 * 2].reshape(b, f // 2, 2, d).mean(2)  # 50 Hz -> 25 Hz
        return self.net(x.transpose(1, 2))


class Coupling(nn.Module):
    """Affine coupling: the second half of the channels is scaled and shifted by a WaveNet of the first."""

    def __init__(self, channels: int, hidden: int, kernel: int, n_layers: int, cond: int):
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.wn = WaveNet(hidden, kernel, n_layers, cond)
        self.post = nn.Conv1d(hidden, 2 * (channels - self.half), 1)
        # Starts as the identity map, so the prior starts as a plain N(0, I).
        nn.init.zeros_(self.post.weight)
        nn.init.zeros_(self.post.bias)

    def _stats(self, x0, c):
        m, logs = self.post(self.wn(self.pre(x0), c)).chunk(2, dim=1)
        return m, torch.tanh(logs)  # bounded scale keeps the inverse well conditioned

    def forward(self, x, c):
        x0, x1 = x[:, : self.half], x[:, self.half:]
        m, logs = self._stats(x0, c)
        return torch.cat([x0, m + x1 * torch.exp(logs)], 1), logs.sum(dim=(1, 2))

    def reverse(self, y, c):
        y0, y1 = y[:, : self.half], y[:, self.half:]
        m, logs = self._stats(y0, c)
        return torch.cat([y0, (y1 - m) * torch.exp(-logs)], 1)


class FlowPrior(nn.Module):
    def __init__(self, channels: int = 16, hidden: int = 64, kernel: int = 5, n_layers: int = 4, n_flows: int = 4,
                 cond: int = 64):
        super().__init__()
        self.flows = nn.ModuleList(Coupling(channels, hidden, kernel, n_layers, cond) for _ in range(n_flows))
        self.reach = sum(f.wn.reach for f in self.flows)

    def forward(self, z, c):
        """z -> u (base space) and log|det dz->u| per sequence."""
        logdet = z.new_zeros(z.shape[0])
        for flow in self.flows:
            z, ld = flow(z, c)
            logdet = logdet + ld
            z = z.flip(1)  # alternate which half is transformed
        return z, logdet

    def reverse(self, u, c):
        for flow in reversed(self.flows):
            u = flow.reverse(u.flip(1), c)
        return u


class MotionVAE(nn.Module):
    def __init__(self, audio_dim: int, motion_dim: int = 204, hidden: int = 256, enc_layers: int = 8,
                 dec_layers: int = 4, kernel: int = 5, latent: int = 16, cond_dim: int = 64, down: int = 4,
                 flow_hidden: int = 64, flow_layers: int = 4, n_flows: int = 4, cond_hidden: int = 128):
        super().__init__()
        self.down = down
        self.latent = latent
        self.motion_dim = motion_dim
        self.cond = AudioCondition(audio_dim, cond_dim, cond_hidden, kernel)
        self.enc_pre = nn.Conv1d(motion_dim, hidden, 1)
        self.enc_wn = WaveNet(hidden, kernel, enc_layers, cond_dim)
        self.enc_out = nn.Conv1d(hidden, 2 * latent, down, stride=down)
        self.dec_pre = nn.Conv1d(latent, hidden, 1)
        self.dec_wn = WaveNet(hidden, kernel, dec_layers, cond_dim)
        self.dec_out = nn.Conv1d(hidden, motion_dim, 1)
        self.prior = FlowPrior(latent, flow_hidden, kernel, flow_layers, n_flows, cond_dim)
        # Landmark statistics the outputs are de-normalised with (set from the training data).
        self.register_buffer("motion_mean", torch.zeros(motion_dim))
        self.register_buffer("motion_std", torch.ones(motion_dim))

    def reach(self) -> int:
        """Frames of context (each side) an output frame of `sample` depends on, rounded up."""
        latent_side = self.prior.reach + 2  # + pooling and interpolation, one latent frame each
        return self.cond.reach * 2 + self.down * latent_side + self.dec_wn.reach

    def condition(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.cond(audio)
        return c, F.avg_pool1d(c, self.down)

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(z, scale_factor=self.down, mode="linear", align_corners=False)
        return self.dec_out(self.dec_wn(self.dec_pre(up), c))

    def forward(self, motion: torch.Tensor, audio: torch.Tensor) -> dict:
        """motion: B x T x 204 (normalised, T divisible by `down`), audio: B x 2T x D.

        Returns the reconstruction (B x T x 204) and the per-element KL estimate.
        """
        c, c_lat = self.condition(audio)
        h = self.enc_wn(self.enc_pre(motion.transpose(1, 2)), c)
        mu, logs = self.enc_out(h).chunk(2, dim=1)
        eps = torch.randn_like(mu)
        z = mu + eps * torch.exp(logs)
        u, logdet = self.prior(z, c_lat)
        log_q = (-0.5 * (LOG_2PI + eps ** 2) - logs).sum(dim=(1, 2))
        log_p = (-0.5 * (LOG_2PI + u ** 2)).sum(dim=(1, 2)) + logdet
        kl = (log_q - log_p).mean() / (mu.shape[1] * mu.shape[2])
        recon = self.decode(z, c).transpose(1, 2)
        return {"recon": recon, "kl": kl}

    def sample(self, audio: torch.Tensor, noise: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """audio: B x 2T x D, noise: B x latent x T/down (standard normal) -> B x T x 204."""
        c, c_lat = self.condition(audio)
        z = self.prior.reverse(noise * temperature, c_lat)
        return self.decode(z, c).transpose(1, 2)
