"""AudioEncoders `hubert` / `wav2vec2`: local folders only, 50 Hz, any width downstream."""

from __future__ import annotations

import numpy as np
import pytest

from geneface.core.records import Audio
from geneface.errors import PluginError, UsageError
from geneface.plugins.hubert import HFEncoderConfig, HubertEncoder, Wav2Vec2Encoder


def test_unavailable_without_transformers(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a))
    assert "transformers" in HubertEncoder.unavailable_reason()
    from geneface.registry import get_registry

    with pytest.raises(PluginError, match="not available: missing optional dependency: transformers"):
        get_registry().get("audio_encoder", "hubert")


def test_needs_a_local_folder(tmp_path):
    with pytest.raises(UsageError, match="model_path"):
        HubertEncoder().width
    with pytest.raises(UsageError, match="no config.json"):
        HubertEncoder(HFEncoderConfig(model_path=tmp_path)).width


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    import torch

    root = tmp_path_factory.mktemp("hf")
    common = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, conv_dim=(8,) * 7,
                  num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, vocab_size=4)
    torch.manual_seed(0)
    transformers.HubertModel(transformers.HubertConfig(**common)).save_pretrained(root / "hubert")
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**common)).save_pretrained(root / "wav2vec2")
    return root


def _burst(seconds=2.0, at=1.0, length=0.2, sr=16_000):
    rng = np.random.default_rng(0)
    y = 0.001 * rng.standard_normal(int(seconds * sr))
    a = int(at * sr)
    y[a: a + int(length * sr)] += 0.5 * np.sin(2 * np.pi * 220 * np.arange(int(length * sr)) / sr)
    return Audio(y.astype(np.float32), sr)


def test_features_at_50hz_and_in_time(tiny_models):
    enc = HubertEncoder(HFEncoderConfig(model_path=tiny_models / "hubert", layer=0))
    assert enc.width == 16 and enc.hop == 320
    audio = _burst()
    feats = enc.encode(audio)
    assert feats.values.shape == (2 * audio.n_video_frames, 16) and feats.frame_rate == 50 and feats.encoder == "hubert"
    # The burst (1.0-1.2 s = frames 50-60) is where the features depart from the background.
    deviation = np.linalg.norm(feats.values - np.median(feats.values, axis=0), axis=1)
    assert 47 <= int(np.argmax(deviation)) <= 62
    # Resampled input (8 kHz) gives features of the same length.
    y8 = audio.samples[::2]
    assert enc.encode(Audio(y8, 8000)).values.shape == feats.values.shape


def test_long_audio_in_chunks(tiny_models):
    enc = HubertEncoder(HFEncoderConfig(model_path=tiny_models / "hubert", chunk_seconds=1.0, context_seconds=0.5))
    audio = Audio(np.random.default_rng(1).normal(0, 0.1, 16_000 * 5).astype(np.float32))
    feats = enc.encode(audio)
    assert feats.values.shape == (250, 16) and np.all(np.isfinite(feats.values))


def test_wrong_model_type_and_wav2vec2(tiny_models):
    with pytest.raises(UsageError, match="holds a 'wav2vec2' model"):
        HubertEncoder(HFEncoderConfig(model_path=tiny_models / "wav2vec2")).width
    enc = Wav2Vec2Encoder(HFEncoderConfig(model_path=tiny_models / "wav2vec2"))
    assert enc.encode(_burst(1.0, 0.5)).values.shape == (50, 16)


def test_any_width_downstream(tiny_models):
    """The motion models take the hubert features (16 wide here) as they take mel's 80."""
    from geneface.plugins.syncnet import SyncNet, SyncNetConfig
    from geneface.plugins.vae import VAEConfig, VAEGenerator

    feats = HubertEncoder(HFEncoderConfig(model_path=tiny_models / "hubert")).encode(_burst())
    gen = VAEGenerator(VAEConfig(audio_width=feats.width, hidden=16, enc_layers=1, dec_layers=1, flow_layers=1))
    motion = gen.generate(feats)
    assert motion.n_frames == 50
    judge = SyncNet(SyncNetConfig(audio_width=feats.width, channels=(8, 8, 8), embed=8))
    assert judge.score(motion, feats).n_windows == 46
