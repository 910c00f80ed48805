"""Landmark SyncNet: does a 5-frame mouth window match its 10 audio-feature frames?

Two 1-D conv encoders (residual blocks with batch norm, widening 128 -> 256 -> 512, two
stride-2 steps) map the mouth (5 x 60) and the audio (10 x D) to 512-d vectors; after a ReLU
they are L2-normalised, so their cosine lies in [0, 1] and is read as the probability that
the pair is in sync (binary cross-entropy against the label, as in Wav2Lip's expert).

Also here: cutting sequences into aligned windows, and the offset search that scores a
whole sequence against its audio shifted by -K..K frames (SyncNet's AV-offset estimate).
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from geneface.models.blocks import ResBlock1d, conv_bn_relu

V_FRAMES = 5  # video frames per window
A_FRAMES = 10  # audio-feature frames per window (two per video frame)
MOUTH_DIM = 60  # 20 mouth points x 3
MOUTH_SLICE = slice(48 * 3, 68 * 3)  # the mouth in a flattened 204-number frame
EPS = 1e-6


def _encoder(c_in: int, channels: tuple[int, int, int], embed: int, length: int) -> nn.Sequential:
    c0, c1, c2 = channels
    after_strides = ((length + 1) // 2 + 1) // 2  # two stride-2 convs with padding 1, kernel 3
    return nn.Sequential(
        conv_bn_relu(c_in, c0, 3, padding=1),
        ResBlock1d(c0),
        conv_bn_relu(c0, c1, 3, stride=2, padding=1),
        ResBlock1d(c1),
        conv_bn_relu(c1, c2, 3, stride=2, padding=1),
        ResBlock1d(c2),
        # Collapse the remaining frames into one vector, keeping their order (no pooling).
        nn.Conv1d(c2, embed, after_strides),
        nn.ReLU(),
    )


class LandmarkSyncNet(nn.Module):
    def __init__(self, audio_dim: int, channels=(128, 256, 512), embed: int = 512):
        super().__init__()
        self.audio_dim = audio_dim
        self.audio_encoder = _encoder(audio_dim, tuple(channels), embed, A_FRAMES)
        self.mouth_encoder = _encoder(MOUTH_DIM, tuple(channels), embed, V_FRAMES)
        # Feature statistics of the training data: any encoder's features arrive on one scale.
        self.register_buffer("audio_mean", torch.zeros(audio_dim))
        self.register_buffer("audio_std", torch.ones(audio_dim))

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """B x 10 x D features -> B x E unit vectors."""
        x = (audio - self.audio_mean) / self.audio_std
        return F.normalize(self.audio_encoder(x.transpose(1, 2)).flatten(1), dim=1, eps=EPS)

    def embed_mouth(self, mouth: torch.Tensor) -> torch.Tensor:
        """B x 5 x 60 normalised mouth landmarks -> B x E unit vectors."""
        return F.normalize(self.mouth_encoder(mouth.transpose(1, 2)).flatten(1), dim=1, eps=EPS)

    def forward(self, mouth: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Sync probability (cosine of the embeddings, in [0, 1]) per pair."""
        return (self.embed_mouth(mouth) * self.embed_audio(audio)).sum(1)


def sync_bce(prob: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy(prob.clamp(EPS, 1 - EPS), label.to(prob.dtype))


def sync_loss(prob: torch.Tensor) -> torch.Tensor:
    """The "sync loss" of METHOD.md: BCE of the score against 'in sync'."""
    return -torch.log(prob.clamp(EPS, 1.0)).mean()


def windows_sync_prob(net: "LandmarkSyncNet", motion: torch.Tensor, audio: torch.Tensor,
                      starts: torch.Tensor) -> torch.Tensor:
    """Sync probability of B x K windows, with gradients into `motion`.

    motion: B x T x 204 normalised landmarks; audio: B x 2T x D features; starts: B x K
    first video frame of each window -> (B * K) probabilities.
    """
    b, k = starts.shape
    frames = starts[..., None] + torch.arange(V_FRAMES, device=starts.device)  # B x K x 5
    mouth = motion[..., MOUTH_SLICE]
    mouth = torch.gather(mouth[:, None].expand(b, k, -1, -1), 2,
                         frames[..., None].expand(-1, -1, -1, mouth.shape[-1]))
    feat = 2 * starts[..., None] + torch.arange(A_FRAMES, device=starts.device)
    aud = torch.gather(audio[:, None].expand(b, k, -1, -1), 2, feat[..., None].expand(-1, -1, -1, audio.shape[-1]))
    return net(mouth.reshape(b * k, V_FRAMES, -1).float(), aud.reshape(b * k, A_FRAMES, -1).float())


def mouth_of(motion_norm: torch.Tensor) -> torch.Tensor:
    """... x T x 68 x 3 (or ... x T x 204) normalised landmarks -> ... x T x 60 mouth numbers."""
    flat = motion_norm.reshape(*motion_norm.shape[:-2], -1) if motion_norm.shape[-1] == 3 else motion_norm
    return flat[..., MOUTH_SLICE]


def mouth_windows(mouth: torch.Tensor) -> torch.Tensor:
    """T x 60 -> (T-4) x 5 x 60: the window starting at every frame."""
    return mouth.unfold(0, V_FRAMES, 1).transpose(1, 2)


def audio_windows(audio: torch.Tensor) -> torch.Tensor:
    """F x D (F = 2T) -> (T-4) x 10 x D: the window starting at every video frame."""
    return audio.unfold(0, A_FRAMES, 2).transpose(1, 2)


@attrs.frozen
class OffsetSearch:
    offsets: tuple[int, ...]
    mean_prob: tuple[float, ...]  # mean sync probability per offset
    mean_dist: tuple[float, ...]  # mean embedding distance per offset (SyncNet's LSE-D)
    prob_at_zero: float  # mean over every window of the clip at offset 0
    n_windows: int

    @property
    def best_offset(self) -> int:
        return self.offsets[min(range(len(self.offsets)), key=lambda i: self.mean_dist[i])]

    @property
    def offset_confidence(self) -> float:
        """median - min of the distance curve (LSE-C): how clearly one offset stands out."""
        d = sorted(self.mean_dist)
        median = d[len(d) // 2] if len(d) % 2 else 0.5 * (d[len(d) // 2 - 1] + d[len(d) // 2])
        return median - min(d)


@torch.no_grad()
def _embed_chunked(fn, windows: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    return torch.cat([fn(windows[i:i + chunk]) for i in range(0, len(windows), chunk)], dim=0)


@torch.no_grad()
def offset_search(net: LandmarkSyncNet, mouth: torch.Tensor, audio: torch.Tensor, max_offset: int) -> OffsetSearch:
    """Score a mouth sequence (T x 60, normalised) against its features (>= 2T x D).

    Offset k pairs the video window at frame t with the audio window at frame t + k, so a
    positive best offset means the audio lags the video by k frames. Every offset is averaged
    over the same video windows (those with a partner at every offset).
    """
    n_frames = min(mouth.shape[0], audio.shape[0] // 2)
    n_win = n_frames - V_FRAMES + 1
    if n_win < 1:
        raise ValueError(f"need at least {V_FRAMES} frames (and {A_FRAMES} feature frames), got {n_frames}")
    device = net.audio_mean.device
    v = _embed_chunked(net.embed_mouth, mouth_windows(mouth[:n_frames].to(device)))
    a = _embed_chunked(net.embed_audio, audio_windows(audio[: 2 * n_frames].to(device)))
    k_max = min(max_offset, (n_win - 1) // 2)
    prob0 = float((v * a).sum(1).mean())
    offsets, probs, dists = [], [], []
    for k in range(-k_max, k_max + 1):
        vv = v[k_max: n_win - k_max]
        aa = a[k_max + k: n_win - k_max + k]
        cos = (vv * aa).sum(1)
        offsets.append(k)
        probs.append(float(cos.mean()))
        dists.append(float((vv - aa).norm(dim=1).mean()))
    return OffsetSearch(tuple(offsets), tuple(probs), tuple(dists), prob0, n_win)
