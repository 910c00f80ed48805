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


def _trained(root: Path, name: str, yaml: str, args: list) -> Path:
    """`geneface train ARGS --out ROOT/NAME --config ROOT/NAME.yaml` once per session; its model."""
    from geneface.cli import main

    ckpt = Path(root) / name / "model.safetensors"
    if not ckpt.exists():
        config = Path(root) / f"{name}.yaml"
        config.write_text(yaml)
        code = _one_thread(lambda: main(["train", *map(str, args), "--out", str(ckpt.parent), "--config", str(config),
                                         "--encoder", "mel", "--threads", "1", "--quiet"]))
        assert code == 0, f"training {name} failed"
    return ckpt


def mel_syncnet(root: Path) -> Path:
    """A tiny SyncNet on mel features (300 steps on four synthetic clips)."""
    return _trained(root, "mel_syncnet", SYNCNET_YAML, ["syncnet", "--data", mel_corpus(root), "--steps", 300])


def mel_vae(root: Path) -> Path:
    """A tiny VAE on mel features against the tiny SyncNet (60 steps)."""
    return _trained(root, "mel_vae", VAE_YAML, ["audio2motion", "--data", mel_corpus(root), "--syncnet",
                                                mel_syncnet(root), "--steps", 60])
