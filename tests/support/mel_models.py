"""Tiny mel-feature models trained on a few synthetic clips, made once per test session
(test support): a SyncNet (~10 s) and a VAE on top of it (~20 s), so tests can run the real
audio-to-motion chain from speech."""

from __future__ import annotations

from pathlib import Path

SYNCNET_YAML = """
train: {batch_size: 32, lr: 0.002, val_every: 1000, ckpt_every: 1000, log_every: 50, keep_best: 1}
model: {channels: [16, 32, 64], embed: 32}
task: {val_pairs: 100, val_offset_clips: 2}
"""
VAE_YAML = """
train: {batch_size: 8, lr: 0.002, warmup: 10, decay_steps: 200, val_every: 1000, ckpt_every: 1000, log_every: 50,
        keep_best: 1}
model: {hidden: 32, enc_layers: 2, dec_layers: 2, flow_layers: 1, cond_hidden: 32, window: 64}
task: {segment: 32, val_clips: 1}
"""


def _one_thread(fn):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def mel_corpus(root: Path) -> Path:
    from geneface.cli import main

    corpus = Path(root) / "mel_corpus"
    if not (corpus / "corpus.json").exists():
        assert main(["synth-corpus", str(corpus), "-n", "4", "--size", "64", "--identities", "1",
                     "--identity-id", "0", "--test-fraction", "0", "--seed", "0", "-q"]) == 0
    return corpus


def mel_syncnet(root: Path) -> Path:
    """A tiny SyncNet on mel features (150 steps on four synthetic clips)."""
    from geneface.cli import main

    root = Path(root)
    ckpt = root / "mel_syncnet" / "model.safetensors"
    if not ckpt.exists():
        corpus = mel_corpus(root)
        (root / "mel_syncnet.yaml").write_text(SYNCNET_YAML)
        assert _one_thread(lambda: main(["train", "syncnet", "--data", str(corpus), "--out", str(ckpt.parent),
                                         "--config", str(root / "mel_syncnet.yaml"), "--steps", "150", "--encoder",
                                         "mel", "--threads", "1", "--quiet"])) == 0
    return ckpt


def mel_vae(root: Path) -> Path:
    """A tiny VAE on mel features against the tiny SyncNet (60 steps)."""
    from geneface.cli import main

    root = Path(root)
    ckpt = root / "mel_vae" / "model.safetensors"
    if not ckpt.exists():
        syncnet = mel_syncnet(root)
        (root / "mel_vae.yaml").write_text(VAE_YAML)
        assert _one_thread(lambda: main(["train", "audio2motion", "--data", str(mel_corpus(root)), "--syncnet",
                                         str(syncnet), "--out", str(ckpt.parent), "--config",
                                         str(root / "mel_vae.yaml"), "--steps", "60", "--encoder", "mel",
                                         "--threads", "1", "--quiet"])) == 0
    return ckpt
