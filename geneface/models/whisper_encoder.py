"""Whisper's audio encoder in plain torch, and the key maps from OpenAI's and Hugging Face's files.

The encoder (Radford et al., "Robust Speech Recognition via Large-Scale Weak Supervision"):
log-mel frames (n_mels x 3000, 10 ms apart: one 30 s window) -> conv k3 + GELU -> conv k3
stride 2 + GELU (now 1500 frames, 20 ms apart) -> + a positional embedding (stored in the
weights) -> N pre-LayerNorm residual blocks (self-attention, then a 4x GELU MLP) -> LayerNorm.
The key projection has no bias, as in Whisper. Only the encoder is built; a file's decoder
weights are never read into it.

Two key maps put a checkpoint's tensors onto this module's own names:
`from_openai` (OpenAI's `.pt`: `encoder.blocks.N.attn.query.weight`, ...) and `from_hf`
(`save_pretrained` folders: `model.encoder.layers.N.self_attn.q_proj.weight`, ...).
The log-mel front end that feeds it is `log_mel`.
"""

from __future__ import annotations

import functools
import re
from typing import Mapping

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160  # 10 ms mel frames
WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE  # 480 000
WINDOW_MEL_FRAMES = WINDOW_SAMPLES // HOP  # 3000
WINDOW_OUT_FRAMES = WINDOW_MEL_FRAMES // 2  # 1500: one per 20 ms


@attrs.frozen
class EncoderDims:
    n_mels: int
    n_ctx: int  # output frames per window (1500)
    width: int
    heads: int
    layers: int
    ffn: int  # MLP hidden width (4 x width in every released model)

    def __attrs_post_init__(self):
        if min(self.n_mels, self.n_ctx, self.width, self.heads, self.layers, self.ffn) <= 0:
            raise ValueError(f"encoder sizes must be positive, got {self}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not a multiple of the {self.heads} heads")


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width, bias=False)
        self.v = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape

        def split(y):  # (b, t, d) -> (b, heads, t, d / heads)
            return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)))
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, ffn: int):
        super().__init__()
        self.attn_norm = nn.LayerNorm(width)
        self.attn = _Attention(width, heads)
        self.mlp_norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, ffn)
        self.fc2 = nn.Linear(ffn, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.fc2(F.gelu(self.fc1(self.mlp_norm(x))))


class WhisperEncoder(nn.Module):
    """(batch, n_mels, 2 * n_ctx) log-mel -> (batch, n_ctx, width) hidden states."""

    def __init__(self, dims: EncoderDims):
        super().__init__()
        self.dims = dims
        self.conv1 = nn.Conv1d(dims.n_mels, dims.width, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(dims.width, dims.width, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(dims.n_ctx, dims.width))
        self.layers = nn.ModuleList(_Block(dims.width, dims.heads, dims.ffn) for _ in range(dims.layers))
        self.final_norm = nn.LayerNorm(dims.width)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        expected = 2 * self.dims.n_ctx
        if mel.ndim != 3 or mel.shape[1] != self.dims.n_mels or mel.shape[2] != expected:
            raise ValueError(f"expected log-mel of shape (batch, {self.dims.n_mels}, {expected}), got {tuple(mel.shape)}")
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positions
        for layer in self.layers:
            x = layer(x)
        return self.final_norm(x)


# -- key maps -----------------------------------------------------------------------------------

def _rename(state: Mapping[str, torch.Tensor], prefix: str, rules: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Our names for the tensors under `prefix`; rules are (regex on the rest, our name)."""
    out = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        for pattern, target in rules:
            if re.fullmatch(pattern, rest):
                out[re.sub(pattern, target, rest)] = value
                break
    return out


_OPENAI_RULES = [
    (r"conv([12])\.(weight|bias)", r"conv\1.\2"),
    (r"positional_embedding", "positions"),
    (r"blocks\.(\d+)\.attn\.query\.(weight|bias)", r"layers.\1.attn.q.\2"),
    (r"blocks\.(\d+)\.attn\.key\.(weight)", r"layers.\1.attn.k.\2"),
    (r"blocks\.(\d+)\.attn\.value\.(weight|bias)", r"layers.\1.attn.v.\2"),
    (r"blocks\.(\d+)\.attn\.out\.(weight|bias)", r"layers.\1.attn.out.\2"),
    (r"blocks\.(\d+)\.attn_ln\.(weight|bias)", r"layers.\1.attn_norm.\2"),
    (r"blocks\.(\d+)\.mlp_ln\.(weight|bias)", r"layers.\1.mlp_norm.\2"),
    (r"blocks\.(\d+)\.mlp\.0\.(weight|bias)", r"layers.\1.fc1.\2"),
    (r"blocks\.(\d+)\.mlp\.2\.(weight|bias)", r"layers.\1.fc2.\2"),
    (r"ln_post\.(weight|bias)", r"final_norm.\1"),
]

_HF_RULES = [
    (r"conv([12])\.(weight|bias)", r"conv\1.\2"),
    (r"embed_positions\.weight", "positions"),
    (r"layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)", r"layers.\1.attn.q.\2"),
    (r"layers\.(\d+)\.self_attn\.k_proj\.(weight)", r"layers.\1.attn.k.\2"),
    (r"layers\.(\d+)\.self_attn\.v_proj\.(weight|bias)", r"layers.\1.attn.v.\2"),
    (r"layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)", r"layers.\1.attn.out.\2"),
    (r"layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", r"layers.\1.attn_norm.\2"),
    (r"layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"layers.\1.mlp_norm.\2"),
    (r"layers\.(\d+)\.fc([12])\.(weight|bias)", r"layers.\1.fc\2.\3"),
    (r"layer_norm\.(weight|bias)", r"final_norm.\1"),
]


def from_openai(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI's `model_state_dict` (keys `encoder.*`) -> this module's state dict."""
    return _rename(state, "encoder.", _OPENAI_RULES)


def hf_prefix(keys) -> str:
    """`model.encoder.` (WhisperForConditionalGeneration) or `encoder.` (WhisperModel)."""
    return "model.encoder." if any(k.startswith("model.encoder.") for k in keys) else "encoder."


def from_hf(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Hugging Face Whisper state dict (either prefix) -> this module's state dict."""
    return _rename(state, hf_prefix(state.keys()), _HF_RULES)


def dims_from_openai(dims: Mapping) -> EncoderDims:
    n = int(dims["n_audio_state"])
    return EncoderDims(n_mels=int(dims["n_mels"]), n_ctx=int(dims["n_audio_ctx"]), width=n,
                       heads=int(dims["n_audio_head"]), layers=int(dims["n_audio_layer"]), ffn=4 * n)


def dims_from_hf(config: Mapping) -> EncoderDims:
    n = int(config["d_model"])
    return EncoderDims(n_mels=int(config.get("num_mel_bins", 80)), n_ctx=int(config.get("max_source_positions", 1500)),
                       width=n, heads=int(config["encoder_attention_heads"]), layers=int(config["encoder_layers"]),
                       ffn=int(config.get("encoder_ffn_dim", 4 * n)))


def build(dims: EncoderDims, state: Mapping[str, torch.Tensor]) -> WhisperEncoder:
    """The encoder with `state` (already in our names) loaded strictly, in float32.

    Raises ValueError naming missing/unexpected keys, a wrong shape or non-finite weights.
    """
    model = WhisperEncoder(dims)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} encoder tensors (e.g. {', '.join(missing[:3])})")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:3])}")
        raise ValueError("; ".join(parts))
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ValueError(f"{key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}")
        if not torch.isfinite(value).all():
            raise ValueError(f"{key} holds NaN or infinite values")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()


# -- the log-mel front end ------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def mel_filters(n_mels: int) -> np.ndarray:
    """Slaney-scale mel filterbank (n_mels x 201), the one Whisper was trained with."""
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels).astype(np.float32)


def log_mel(window: np.ndarray, n_mels: int) -> np.ndarray:
    """Whisper's input for one window: (n_mels x 3000) float32 from <= 30 s of 16 kHz audio.

    The audio is zero-padded (or trimmed) to 30 s; power STFT (Hann 400, hop 160, centred),
    mel, log10 floored at 1e-10, clamped to (max - 8), then (x + 4) / 4.
    """
    y = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    n = min(len(window), WINDOW_SAMPLES)
    y[:n] = window[:n]
    spec = torch.stft(torch.from_numpy(y), N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    power = spec[:, :-1].abs() ** 2  # 3001 centred frames; Whisper drops the last
    mel = torch.from_numpy(mel_filters(n_mels)) @ power
    logs = torch.clamp(mel, min=1e-10).log10()
    logs = torch.maximum(logs, logs.max() - 8.0)
    return ((logs + 4.0) / 4.0).numpy()
