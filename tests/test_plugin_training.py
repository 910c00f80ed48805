"""A trainable plugin from a separately installed distribution trains through `geneface train`
and runs through `geneface run` from its checkpoint, like a built-in one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from geneface.cli import main
from geneface.core.motion_io import load_motion, save_motion
from geneface.core.records import Motion
from geneface.training.metrics import read_metrics

from conftest import talking_motion

THIRD_PARTY = Path(__file__).parent / "support" / "third_party"


@pytest.fixture
def denoise_installed(tmp_path, monkeypatch):
    """Install tests/support/third_party/geneface_denoise as distribution `geneface-denoise`:
    a dist-info folder with its entry point, the way pip leaves one, on sys.path."""
    site = tmp_path / "site"
    info = site / "geneface_denoise-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: geneface-denoise\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[geneface]\ndenoise = geneface_denoise\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(THIRD_PARTY))
    monkeypatch.setenv("GENEFACE_PLUGINS", "geneface-landmark-viz,geneface-denoise")
    from geneface import registry

    registry._REGISTRY = None


def _person(folder: Path, n: int = 330) -> Motion:
    """A person's dataset holding tracked landmarks (what this adapter trains on)."""
    from support.toy import write_toy_dataset
    from geneface.training.data import make_clip

    # Every coordinate moves smoothly (two slow sinusoids), so jitter is what a filter can remove.
    rng = np.random.default_rng(0)
    t = np.arange(n)[:, None, None]
    period = rng.uniform(12, 40, size=(2, 68, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(2, 68, 3))
    wave = sum(np.sin(2 * np.pi * t / period[k] + phase[k]) for k in range(2))
    motion = Motion(talking_motion(1).landmarks[0] + 0.02 * wave.astype(np.float32))
    mean, std = motion.landmarks.mean(0), motion.landmarks.std(0) + 1e-6
    clip = make_clip("person", "person", motion.landmarks, np.zeros((2 * n, 4), np.float32), mean, std, "toy")
    write_toy_dataset(folder, clip, features=False)
    return motion


def test_third_party_plugin_trains_and_runs(tmp_path, denoise_installed, capsys):
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["plugins"]
    (row,) = [r for r in rows if r["name"] == "temporal_denoise"]
    assert row["origin"] == "geneface-denoise" and row["kind"] == "domain_adapter" and row["trainable"]

    clean = _person(tmp_path / "person")
    assert main(["train", "domain_adapter", "--plugin", "temporal_denoise", "--options"]) == 0
    assert "--noise FLOAT" in capsys.readouterr().out
    out = tmp_path / "run"
    code = main(["train", "domain_adapter", "--plugin", "temporal_denoise", "--data", str(tmp_path / "person"), "--out", str(out),
                 "--steps", "150", "--val-every", "50", "--ckpt-every", "50", "--noise", "0.5", "-q"])
    assert code == 0, capsys.readouterr().err
    val = {(s, n): v for s, phase, n, v in read_metrics(out / "metrics.csv") if phase == "val"}
    assert val[(150, "loss")] < 0.6 * val[(150, "noisy_loss")]  # it learned to remove jitter

    # The checkpoint drives `geneface run`: noisy landmarks in, smoother landmarks out.
    rng = np.random.default_rng(3)
    tail = clean.landmarks[-60:]
    noisy = tail + 0.5 * clean.landmarks.std(0) * rng.standard_normal(tail.shape).astype(np.float32)
    save_motion(tmp_path / "noisy.npz", Motion(noisy))
    spec = {"input": {"motion": "noisy.npz"},
            "stages": {"domain_adapter": {"plugin": "temporal_denoise", "checkpoint": "run/model.safetensors"}},
            "output": "clean.npz"}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", str(tmp_path / "spec.yaml"), "-q"]) == 0
    adapted = load_motion(tmp_path / "clean.npz").landmarks
    assert adapted.shape == noisy.shape
    assert np.mean((adapted - tail) ** 2) < 0.6 * np.mean((noisy - tail) ** 2)


def test_training_flags_errors(tmp_path, denoise_installed, capsys):
    _person(tmp_path / "person", 120)
    base = ["train", "domain_adapter", "--plugin", "temporal_denoise", "--data", str(tmp_path / "person"),
            "--out", str(tmp_path / "o")]
    assert main([*base, "--nois", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "no such option --nois" in err and "did you mean '--noise'" in err
    assert main([*base, "--noise", "lots"]) == 2
    assert "--noise: expected float, got 'lots'" in capsys.readouterr().err
    assert main(["train", "face_tracker", "--data", "x", "--out", str(tmp_path / "o")]) == 2
    assert "trainable: " in capsys.readouterr().err
    assert main(["train", "rendrer", "--out", str(tmp_path / "o")]) == 2
    assert "did you mean 'renderer'" in capsys.readouterr().err
    assert main(["train", "audio_encoder", "--plugin", "mel", "--out", str(tmp_path / "o")]) == 2
    assert "'mel' is not trainable" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
