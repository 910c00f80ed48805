"""AudioEncoders `hubert` and `wav2vec2`: self-supervised speech features from a local model.

GeneFace's original features are HuBERT-large hidden states (1024-d, 50 Hz). Nothing is ever
downloaded: `model_path` must be a folder written by `save_pretrained` (config.json plus
weights), and it is opened with `local_files_only=True`. Needs the optional `transformers`
package (`pip install geneface[hf]`); without it both plugins are listed as unavailable.

The convolutional front end of both models hops 320 samples at 16 kHz, i.e. 50 Hz, like
`mel`; the count is trimmed or edge-padded to exactly two frames per video frame. Long audio
runs in chunks (`chunk_seconds`) with `context_seconds` of overlap on each side, so memory
stays bounded (self-attention is quadratic in length) and no chunk edge lacks context.

Streaming is approximate (`stream_context`): self-attention sees the whole chunk, so a frame
depends on every sample of it (no bounded context gives the offline value), and most models
scale each utterance to zero mean and unit variance first. A stream runs the model on a
window of `context_seconds` either side of the new frames, as offline chunks are padded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import ClassVar, Optional

import attrs
import numpy as np

from geneface import hookimpl
from geneface.core.arrays import fit_rows
from geneface.core.records import FEATURE_RATE, SAMPLE_RATE, VIDEO_FPS, Audio, AudioFeatures, frames_for_duration
from geneface.core.stages import AudioEncoder, StreamContext
from geneface.errors import UsageError


@attrs.define
class HFEncoderConfig:
    model_path: Optional[Path] = None  # a save_pretrained folder; required
    layer: int = -1  # which hidden state: 0 = after the feature projection, -1 = the last layer
    chunk_seconds: float = attrs.field(default=20.0, validator=attrs.validators.gt(0))
    context_seconds: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    device: str = "cpu"


class _TransformersEncoder(AudioEncoder):
    Config = HFEncoderConfig
    requires = ("transformers",)
    model_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config=None):
        super().__init__(config)
        self._model = None
        self._hf_config = None

    # -- loading ---------------------------------------------------------------------------
    def _folder(self) -> Path:
        path = self.config.model_path
        if path is None:
            raise UsageError(f"audio encoder '{self.name}' needs config.model_path: a local folder with a "
                             "pretrained model (saved with save_pretrained); nothing is downloaded")
        path = Path(path).expanduser()
        if not (path / "config.json").is_file():
            raise UsageError(f"{path}: not a model folder (no config.json); '{self.name}' loads only local "
                             "models saved with save_pretrained")
        return path

    def hf_config(self):
        if self._hf_config is None:
            folder = self._folder()
            from transformers import AutoConfig

            try:
                cfg = AutoConfig.from_pretrained(str(folder), local_files_only=True)
            except (OSError, ValueError) as exc:
                raise UsageError(f"{folder}: cannot read the model config ({exc})") from None
            if cfg.model_type not in self.model_types:
                raise UsageError(f"{folder}: holds a '{cfg.model_type}' model, but encoder '{self.name}' "
                                 f"loads {' or '.join(self.model_types)}")
            self._hf_config = cfg
        return self._hf_config

    def model(self):
        if self._model is None:
            from transformers import AutoModel
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # our own output stays one line per step
            folder = self._folder()
            self.hf_config()
            try:
                model = AutoModel.from_pretrained(str(folder), local_files_only=True)
            except (OSError, ValueError) as exc:
                raise UsageError(f"{folder}: cannot load the model weights ({exc})") from None
            self._model = model.to(self.config.device).eval()
        return self._model

    @property
    def width(self) -> int:
        return int(self.hf_config().hidden_size)

    @property
    def hop(self) -> int:
        """Samples per output frame of the convolutional front end (320 for these models)."""
        return int(np.prod(self.hf_config().conv_stride))

    def _normalize_input(self) -> bool:
        # What the model's own feature extractor would do: most HuBERT/wav2vec2 checkpoints
        # expect each utterance scaled to zero mean and unit variance.
        pre = self._folder() / "preprocessor_config.json"
        if pre.is_file():
            return bool(json.loads(pre.read_text()).get("do_normalize", True))
        return True

    def stream_context(self) -> StreamContext:
        side = int(math.ceil(self.config.context_seconds * VIDEO_FPS))
        return StreamContext(side, side, exact=False,
                             why="self-attention reads its whole chunk and the input is scaled per utterance")

    # -- encoding --------------------------------------------------------------------------
    def encode(self, audio: Audio) -> AudioFeatures:
        import torch

        y = audio.samples_at(SAMPLE_RATE)
        if len(y) == 0:
            raise ValueError("cannot encode zero-length audio")
        if self._normalize_input():
            y = (y - y.mean()) / np.sqrt(y.var() + 1e-7)
        model = self.model()
        hop = self.hop
        n_out = 2 * frames_for_duration(len(y) / SAMPLE_RATE)
        rate = SAMPLE_RATE / hop
        chunk = max(1, int(self.config.chunk_seconds * rate))  # output frames per chunk
        ctx = int(math.ceil(self.config.context_seconds * rate))
        n_native = max(1, int(math.ceil(len(y) / hop)))
        # Pad so the last frame's receptive field is covered (the front end drops a partial hop).
        field = self._receptive_field()
        y = np.concatenate([y, np.zeros(field, dtype=np.float32)]).astype(np.float32)
        pieces = []
        with torch.no_grad():
            for start in range(0, n_native, chunk):
                end = min(n_native, start + chunk)
                a, b = max(0, start - ctx), min(n_native, end + ctx)
                wav = torch.from_numpy(y[a * hop: b * hop + field - hop]).to(self.config.device)
                out = model(wav[None], output_hidden_states=True)
                hidden = out.hidden_states[self.config.layer][0].float().cpu().numpy()
                hidden = fit_rows(hidden, b - a)
                pieces.append(hidden[start - a: end - a])
        values = np.concatenate(pieces, axis=0)
        if abs(rate - FEATURE_RATE) > 1e-6:  # a model with another hop: resample in time
            t_src = (np.arange(len(values)) + 0.5) / rate
            t_dst = (np.arange(n_out) + 0.5) / FEATURE_RATE
            values = np.stack([np.interp(t_dst, t_src, values[:, j]) for j in range(values.shape[1])], axis=1)
        return AudioFeatures(fit_rows(values, n_out), FEATURE_RATE, self.name, ())

    def _receptive_field(self) -> int:
        cfg = self.hf_config()
        field, jump = 1, 1
        for k, s in zip(cfg.conv_kernel, cfg.conv_stride):
            field += (k - 1) * jump
            jump *= s
        return field


class HubertEncoder(_TransformersEncoder):
    name = "hubert"
    description = "HuBERT hidden states (50 Hz) from a local pretrained model folder (transformers; no download)"
    model_types = ("hubert",)


class Wav2Vec2Encoder(_TransformersEncoder):
    name = "wav2vec2"
    description = "wav2vec 2.0 hidden states (50 Hz) from a local pretrained model folder (transformers; no download)"
    model_types = ("wav2vec2",)


@hookimpl
def register_audio_encoders(register):
    register(HubertEncoder)
    register(Wav2Vec2Encoder)
