"""Shared fixtures: generated audio and motion, so no test needs downloaded or shipped media."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from geneface.core.records import Audio, Motion

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def speechlike(seconds: float = 2.0, sr: int = 16_000, seed: int = 0) -> np.ndarray:
    """A voiced, syllable-modulated signal: harmonics of a gliding f0 under a 4 Hz envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    return (0.3 * voiced * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture
def audio() -> Audio:
    return Audio(speechlike(2.0), 16_000)


@pytest.fixture
def wav_file(tmp_path, audio) -> Path:
    from geneface.core.media import write_wav

    path = tmp_path / "speech.wav"
    write_wav(path, audio)
    return path


def talking_motion(n_frames: int, seed: int = 0) -> Motion:
    """A plausible 68-point face (unit-ish scale) whose jaw and lower lip open and close."""
    rng = np.random.default_rng(seed)
    base = np.zeros((68, 3), np.float32)
    jaw = np.linspace(-np.pi * 0.9, -np.pi * 0.1, 17)
    base[0:17, 0] = 0.8 * np.cos(jaw)
    base[0:17, 1] = -0.9 * np.sin(jaw) * 0.9 + 0.1
    base[17:27, 0] = np.linspace(-0.6, 0.6, 10)
    base[17:27, 1] = -0.45
    base[27:36, 0] = np.r_[np.zeros(4), np.linspace(-0.15, 0.15, 5)]
    base[27:36, 1] = np.r_[np.linspace(-0.3, 0.05, 4), np.full(5, 0.12)]
    for i, cx in ((36, -0.35), (42, 0.35)):
        a = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        base[i:i + 6, 0] = cx + 0.12 * np.cos(a)
        base[i:i + 6, 1] = -0.25 + 0.05 * np.sin(a)
    a = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    base[48:60, 0] = 0.3 * np.cos(a)
    base[48:60, 1] = 0.4 + 0.1 * np.sin(a)
    a = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    base[60:68, 0] = 0.2 * np.cos(a)
    base[60:68, 1] = 0.4 + 0.05 * np.sin(a)
    base[:, 2] = 0.2 * (base[:, 0] ** 2)
    t = np.arange(n_frames)
    opening = 0.5 + 0.5 * np.sin(2 * np.pi * t / 10.0)
    frames = np.repeat(base[None], n_frames, axis=0)
    lower = np.r_[np.arange(4, 13), np.arange(55, 60), np.arange(64, 68)]
    frames[:, lower, 1] += 0.15 * opening[:, None]
    frames += 0.002 * rng.standard_normal(frames.shape).astype(np.float32)
    return Motion(frames, 25.0)


@pytest.fixture
def motion_file(tmp_path, audio) -> Path:
    from geneface.core.motion_io import save_motion

    path = tmp_path / "motion.npz"
    save_motion(path, talking_motion(audio.n_video_frames))
    return path


@pytest.fixture
def one_torch_thread():
    """Small tensors on a busy 2-core machine: thread synchronisation costs more than the
    work (ten times slower with two threads), so such tests run on one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_third_party_by_default(monkeypatch):
    # Tests see built-ins plus the plugins this repository ships (plugins_contrib), never
    # whatever else happens to be installed on the machine.
    monkeypatch.setenv("GENEFACE_PLUGINS", os.environ.get("GENEFACE_TEST_PLUGINS", "geneface-landmark-viz"))
    from geneface import registry

    registry._REGISTRY = None
    yield
    registry._REGISTRY = None
