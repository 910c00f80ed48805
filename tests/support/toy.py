"""A feature-level toy corpus with a known audio -> mouth relation, and a toy training task,
for tests (test support, not part of the installed package).

Not a talking face (that is geneface.synth): each clip has a syllable-like loudness envelope;
the audio features are that envelope spread over a speaker-specific spectral profile plus
noise, and the mouth opens with the envelope. So audio and mouth are in sync by construction,
a shift of the audio is a real desynchronisation, and tiny models learn it in seconds.
"""

from __future__ import annotations

import numpy as np
import torch

from geneface.core.checkpoint import Checkpoint
from geneface.core.records import AudioFeatures
from geneface.core.stages import AudioEncoder
from geneface.errors import UsageError
from geneface.training.data import Clip, make_clip
from geneface.training.task import TrainTask


def _envelope(rng: np.random.Generator, n: int) -> np.ndarray:
    """n values at 50 Hz in [0, 1]: bursts of 100-300 ms separated by short pauses."""
    env = np.zeros(n)
    t = 0
    while t < n:
        length = int(rng.integers(5, 16))
        if rng.random() < 0.8:
            env[t: t + length] = np.sin(np.linspace(0, np.pi, min(length, n - t))) * rng.uniform(0.4, 1.0)
        t += length + int(rng.integers(0, 6))
    return env


def toy_clip(name: str, speaker: int, n_frames: int, width: int, seed: int, amplitude: float = 1.0,
             corner: float = 0.0) -> Clip:
    """`amplitude` scales the mouth's opening; `corner` raises the left mouth corner (point
    54) by `corner` x (0.5 + opening) x 0.3: a person's speaking habit for adapter tests."""
    rng = np.random.default_rng(seed)
    spk = np.random.default_rng(1000 + speaker)
    env = _envelope(rng, 2 * n_frames)
    profile = spk.uniform(0.2, 1.0, width)
    features = env[:, None] * profile[None] * 4.0 + 0.1 * rng.standard_normal((2 * n_frames, width)) + spk.normal(0, 1, width)
    # One face for everyone with a little of each speaker's own shape (a layout check must pass).
    base = np.random.default_rng(68).normal(0, 1, (68, 3)) * 0.3 + spk.normal(0, 1, (68, 3)) * 0.03
    lm = np.repeat(base[None], n_frames, axis=0)
    opening = env.reshape(n_frames, 2).mean(1) * amplitude
    lm[:, 55:60, 1] += opening[:, None] * 0.5  # outer lower lip
    lm[:, 65:68, 1] += opening[:, None] * 0.5  # inner lower lip
    lm[:, 8, 1] += opening * 0.3  # chin
    lm[:, 54, 1] -= corner * (0.5 + opening) * 0.3
    lm += 0.01 * rng.standard_normal(lm.shape)
    mean, std = lm.mean(0), lm.std(0) + 1e-3
    return make_clip(name, f"spk{speaker}", lm, features, mean, std, encoder="toy", mouth_opening=opening,
                     source=f"toy/spk{speaker}")


class ToyEncoder(AudioEncoder):
    """The encoder the toy corpus's features are named after, for `load_clips` and `evaluate`:
    the features are stored in the toy datasets, never computed from audio."""

    name = "toy"
    description = "stand-in for the toy corpus's stored features (tests only)"

    @property
    def width(self) -> int:
        return 16

    def encode(self, audio) -> AudioFeatures:
        raise UsageError("the toy corpus's features are stored in its datasets, not computed from audio")


def register_toy_encoder() -> None:
    """Make `--encoder toy` name ToyEncoder in the current registry, as an installed plugin
    would (the CLI resolves encoders by name). The test suite resets the registry for every
    test, so call it in each test (or fixture) that runs such a command."""
    import types

    from geneface import hookimpl
    from geneface.registry import Origin, get_registry

    module = types.ModuleType("toy_encoder_plugin")
    module.register_audio_encoders = hookimpl(lambda register: register(ToyEncoder))
    get_registry().register_module(module, Origin("geneface-tests", "0", "toy = support.toy"))


def toy_corpus(n_speakers: int = 4, clips_per_speaker: int = 2, n_frames: int = 120, width: int = 16,
               seed: int = 0) -> list[Clip]:
    return [toy_clip(f"spk{s}_{i}", s, n_frames, width, seed * 100_000 + s * 100 + i)
            for s in range(n_speakers) for i in range(clips_per_speaker)]


def write_toy_dataset(folder, clip: Clip, features: bool = True) -> None:
    """Write `clip` as a dataset folder holding what the audio-to-motion trainers read
    (manifest, canonical landmarks and their statistics, audio features), for tests.

    Real datasets (`geneface process`, `synth-corpus`) hold much more (frames, masks,
    camera); the trainers need none of it.
    """
    from pathlib import Path

    from geneface.core import dataset as D

    folder = Path(folder)
    encoder = clip.encoder
    (folder / "landmarks").mkdir(parents=True, exist_ok=True)
    lm = clip.denormalized().astype(np.float32)
    np.save(folder / D.CANONICAL68, lm)
    mean, std = (clip.mean, clip.std) if clip.mean is not None else (lm.mean(0), lm.std(0) + 1e-6)
    np.savez(folder / D.STATS, mean=mean, std=std)
    entry = {}
    if features:
        (folder / D.FEATURES_DIR).mkdir(exist_ok=True)
        np.save(folder / D.FEATURES_DIR / f"{encoder}.npy", clip.features)
        entry = {encoder: {"file": f"{D.FEATURES_DIR}/{encoder}.npy", "rate": 50.0, "channels": []}}
    held = D.held_out_start(clip.n_frames)  # the held-out end every person-specific reader takes
    # The crop is nominal (there are no pictures) but every manifest must name one.
    D.write_manifest(folder, clip.n_frames, speaker=clip.speaker, source={"name": f"{clip.name}.mp4"},
                     crop={"x0": 0, "y0": 0, "side": 64, "size": 64},
                     splits={"train": [0, held], "val": [held, clip.n_frames]},
                     audio={"file": "audio.wav", "features": entry} if features else None)


class ToyRegressionTask(TrainTask):
    """A tiny TrainTask (linear target, MLP with dropout) for testing the training loop.

    Dropout and the data draw both consume random numbers, so a resumed run matches an
    uninterrupted one only if every generator is restored.
    """

    name = "toy"
    best_metric = "loss"
    best_mode = "min"

    def __init__(self, dims: int = 4):
        torch.manual_seed(0)
        self.dims = dims
        self.model = torch.nn.Sequential(torch.nn.Linear(dims, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                         torch.nn.Linear(16, 1))
        self.weights = torch.linspace(-1.0, 2.0, dims)

    def config_dict(self):
        return {"dims": self.dims}

    def sample_batch(self, rng, batch_size):
        x = torch.from_numpy(rng.standard_normal((batch_size, self.dims)).astype(np.float32))
        return {"x": x, "y": x @ self.weights}

    def compute_loss(self, net, batch, step):
        loss = ((net(batch["x"]).squeeze(-1) - batch["y"]) ** 2).mean()
        return loss, {"checksum": float(batch["x"].sum())}

    def validate(self):
        # Deliberately draws from the global generator: the trainer must shield training from it.
        x = torch.randn(64, self.dims)
        return {"loss": float(((self.model(x).squeeze(-1) - x @ self.weights) ** 2).mean())}

    def export(self, meta):
        return Checkpoint("toy", "toy", "1", {"dims": self.dims}, dict(self.model.state_dict()), meta)


def toy_datasets(root, n_speakers: int = 5, clips_per_speaker: int = 3, n_frames: int = 150, width: int = 16,
                 seed: int = 0) -> list:
    """Write a toy corpus as dataset folders under `root` (one per clip); returns their paths."""
    from pathlib import Path

    paths = []
    for clip in toy_corpus(n_speakers, clips_per_speaker, n_frames, width, seed):
        path = Path(root) / clip.name
        if not (path / "manifest.json").exists():
            write_toy_dataset(path, clip)
        paths.append(path)
    return paths


# Small enough to train in seconds on a CPU; used by the tests.
TINY_SYNCNET_YAML = """
train: {batch_size: 32, lr: 0.001, val_every: 150, ckpt_every: 150, log_every: 50, keep_best: 1}
model: {channels: [32, 64, 128], embed: 64}
task: {val_pairs: 400, val_offset_clips: 8}
"""
TINY_VAE_YAML = """
train: {batch_size: 16, lr: 0.002, warmup: 20, decay_steps: 500, val_every: 100, ckpt_every: 100, log_every: 50,
        keep_best: 1}
model: {hidden: 64, enc_layers: 4, dec_layers: 2, flow_layers: 2, cond_hidden: 64, window: 64}
task: {segment: 32, val_clips: 4}
"""


def train_toy_syncnet(root, steps: int = 300):
    """Train (once per `root`) a tiny SyncNet on the toy corpus through the CLI; its checkpoint."""
    from pathlib import Path

    from geneface.cli import main

    root = Path(root)
    ckpt = root / "syncnet" / "model.safetensors"
    if not ckpt.exists():
        root.mkdir(parents=True, exist_ok=True)
        (root / "tiny_syncnet.yaml").write_text(TINY_SYNCNET_YAML)
        toy_datasets(root / "data")
        register_toy_encoder()
        code = main(["train", "syncnet", "--data", str(root / "data"), "--out", str(root / "syncnet"),
                     "--config", str(root / "tiny_syncnet.yaml"), "--steps", str(steps), "--quiet",
                     "--encoder", "toy", "--val-speakers", "spk1"])
        if code != 0:
            raise RuntimeError(f"toy syncnet training failed with exit code {code}")
    return ckpt


def train_toy_vae(root, steps: int = 200):
    """Train (once per `root`) a tiny VAE on the toy corpus against the toy SyncNet; its checkpoint."""
    from pathlib import Path

    from geneface.cli import main

    root = Path(root)
    syncnet = train_toy_syncnet(root)
    ckpt = root / "shared_vae" / "model.safetensors"  # test_vae trains its own in root / "vae"
    if not ckpt.exists():
        (root / "tiny_vae.yaml").write_text(TINY_VAE_YAML)
        register_toy_encoder()
        code = main(["train", "audio2motion", "--data", str(root / "data"), "--syncnet", str(syncnet),
                     "--out", str(root / "shared_vae"), "--config", str(root / "tiny_vae.yaml"), "--encoder", "toy",
                     "--val-speakers", "spk1", "--quiet", "--steps", str(steps)])
        if code != 0:
            raise RuntimeError(f"toy vae training failed with exit code {code}")
    return ckpt


def toy_person(folder, n_frames: int = 330, amplitude: float = 1.5, corner: float = 1.0, seed: int = 7):
    """A toy person dataset (speaker 9, never in the toy corpus) whose mouth opens `amplitude`
    times as wide and whose left corner rises with speech (`corner`); its folder."""
    from pathlib import Path

    folder = Path(folder)
    if not (folder / "manifest.json").exists():
        write_toy_dataset(folder, toy_clip("person", 9, n_frames, 16, seed, amplitude, corner))
    return folder
