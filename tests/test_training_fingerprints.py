"""Bit for bit: training hashgrid_nerf, vanilla_nerf, syncnet, vae and adversarial_postnet at
tiny sizes with a fixed seed gives the metrics.csv and the weights (every tensor) recorded in
tests/training_fingerprints.json, and the trained renderers draw the recorded frames.

A change to the training code that is meant to change no number must leave this green. One
that changes numbers on purpose regenerates the file (`python tests/support/fingerprints.py`)
and says so in its commit. Float results depend on the CPU's instruction set: the test skips
on a machine whose `torch.backends.cpu.get_cpu_capability()` differs from the recorded one.
"""

from __future__ import annotations

import json

import pytest
import torch

from support.fingerprints import FINGERPRINTS, fingerprints

RECORDED = json.loads(FINGERPRINTS.read_text())


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    if torch.backends.cpu.get_cpu_capability() != RECORDED["cpu_capability"]:
        pytest.skip(f"fingerprints recorded on a {RECORDED['cpu_capability']} CPU, this one is "
                    f"{torch.backends.cpu.get_cpu_capability()}: float results may differ")
    subject = tmp_path_factory.getbasetemp() / "subject_2s"  # shared with the renderer tests
    root = tmp_path_factory.mktemp("fingerprints")
    return {**fingerprints(root, subject), "root": root}


def test_the_input_is_the_recorded_one(measured):
    assert measured["subject_dataset"] == RECORDED["subject_dataset"], (
        "the synthetic subject's dataset differs from the recorded one: the fingerprints below "
        "compare training on other data (synth / process changed?)")


@pytest.mark.parametrize("plugin", sorted(RECORDED["runs"]))
def test_training_is_bit_identical(measured, plugin):
    got, want = measured["runs"][plugin], RECORDED["runs"][plugin]
    changed = sorted(k for k in set(got["model"]) | set(want["model"]) if got["model"].get(k) != want["model"].get(k))
    assert not changed, f"{plugin}: model.safetensors tensors differ: {', '.join(changed[:8])}"
    assert got["last"] == want["last"], f"{plugin}: last.safetensors differs"
    assert got["metrics_csv"] == want["metrics_csv"], f"{plugin}: metrics.csv differs"
    assert got.get("render") == want.get("render"), f"{plugin}: the trained model draws other frames"


def test_a_changed_weight_is_caught(measured, tmp_path):
    # The comparison is of the bytes of every tensor: one ulp in one weight shows.
    from support.fingerprints import checkpoint_digests

    from geneface.core.checkpoint import read_checkpoint, save_checkpoint

    ckpt = read_checkpoint(measured["root"] / "hashgrid_nerf" / "model.safetensors")
    name = next(k for k in sorted(ckpt.state) if ckpt.state[k].is_floating_point() and ckpt.state[k].numel())
    tensor = ckpt.state[name].clone()
    flat = tensor.reshape(-1)
    flat[0] = torch.nextafter(flat[0], torch.tensor(float("inf"), dtype=flat.dtype))
    ckpt.state[name] = tensor
    save_checkpoint(tmp_path / "m.safetensors", ckpt)
    got = checkpoint_digests(tmp_path / "m.safetensors")
    assert got[name] != RECORDED["runs"]["hashgrid_nerf"]["model"][name]
    assert all(got[k] == v for k, v in RECORDED["runs"]["hashgrid_nerf"]["model"].items() if k != name)
