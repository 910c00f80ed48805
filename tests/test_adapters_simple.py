"""The simple domain adapters: `identity` (pass-through) and `landmark_projection`
(GeneFace++'s LLE projection onto the person's own landmarks, fitted in closed form)."""

from __future__ import annotations

import json
import time

import attrs
import numpy as np
import pytest

from geneface.core.records import MOUTH, Motion, rebase
from geneface.errors import SpecError, UsageError
from geneface.plugins.identity_adapter import IdentityAdapter
from geneface.plugins.landmark_projection import LandmarkProjection, ProjectionConfig
from geneface.training.person_data import load_person
from support.toy import toy_person

NO_CLIP = {"clip_low": 0.0, "clip_high": 100.0}


@pytest.fixture(scope="module")
def person_dir(tmp_path_factory):
    return toy_person(tmp_path_factory.mktemp("person") / "person")


@pytest.fixture(scope="module")
def person(person_dir):
    return load_person(person_dir)


def fitted(person, **config) -> LandmarkProjection:
    return LandmarkProjection(ProjectionConfig(**config)).fit(person.train_frames(), person.mean, person.std)


def generic_motion(n: int = 40, seed: int = 0, spread: float = 1.0) -> Motion:
    """Generator-like output: an average face's units with its statistics attached, the
    normalised values being per-speaker z-scores."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(0, 1, (68, 3)).astype(np.float32)
    std = rng.uniform(0.05, 0.2, (68, 3)).astype(np.float32)
    z = spread * rng.standard_normal((n, 68, 3)).astype(np.float32)
    return Motion(z * std + mean, 25.0, mean, std)


def test_identity_returns_the_motion_unchanged():
    motion = generic_motion()
    out = IdentityAdapter().adapt(motion)
    assert out is motion
    assert np.array_equal(out.landmarks, motion.landmarks) and out.mean is motion.mean


def test_lle_weights_sum_to_one_and_a_training_frame_projects_onto_itself(person):
    frames = person.train_frames()
    stage = fitted(person)
    _, index, weights = stage.project(frames[:30] + 0.3, return_weights=True)
    assert weights.shape == (30, 10) and np.allclose(weights.sum(1), 1.0, atol=1e-9)
    _, index, weights = stage.project(frames[:30], return_weights=True)
    assert np.array_equal(index[:, 0], np.arange(30))  # its own nearest neighbour
    assert np.all(weights[:, 0] > 0.9)  # the default regularisation pulls it only slightly

    # With (almost) no regularisation the weights put the frame exactly on itself.
    stage = fitted(person, share=1.0, regularization=1e-9, **NO_CLIP)
    chosen = frames[::37]
    motion = Motion(person.denormalize(chosen), 25.0)  # no statistics: the person's own units
    out = stage.adapt(motion)
    assert np.abs(out.landmarks - motion.landmarks).max() < 1e-4
    assert np.array_equal(out.mean, person.mean) and np.array_equal(out.std, person.std)


def test_projection_pulls_towards_the_persons_repertoire(person):
    frames = person.train_frames()
    source = frames[5::40]
    noisy = source + 0.5 * np.random.default_rng(3).standard_normal(source.shape).astype(np.float32)
    stage = fitted(person, share=1.0, **NO_CLIP)
    projected = person.normalize(stage.adapt(Motion(person.denormalize(noisy), 25.0)).landmarks)
    distance = lambda a: np.linalg.norm(a - source, axis=1).mean()  # noqa: E731
    print(f"noisy frame -> its source: {distance(noisy):.2f}, projection -> source: {distance(projected):.2f}")
    assert distance(projected) < 0.5 * distance(noisy)


def test_clipping_respects_the_persons_percentiles(person):
    units = person.denormalize(person.train_frames())
    low, high = np.percentile(units, 3, axis=0), np.percentile(units, 97, axis=0)
    motion = generic_motion(50, seed=1, spread=4.0)  # far outside the person's range
    out = fitted(person).adapt(motion).landmarks
    assert np.all(out >= low - 1e-5) and np.all(out <= high + 1e-5)
    assert np.isclose(out, low, atol=1e-5).any() and np.isclose(out, high, atol=1e-5).any()

    narrow = fitted(person, clip_low=20.0, clip_high=80.0).adapt(motion).landmarks
    assert np.all(narrow >= np.percentile(units, 20, axis=0) - 1e-5)
    assert np.all(narrow <= np.percentile(units, 80, axis=0) + 1e-5)


def test_share_zero_without_clipping_is_rebase_then_denormalize(person):
    motion = generic_motion(25, seed=2)
    out = fitted(person, share=0.0, mouth_scale=1.0, **NO_CLIP).adapt(motion)
    expected = person.denormalize(rebase(motion, person.mean, person.std))
    assert np.allclose(out.landmarks, expected, atol=1e-5)
    assert out.n_frames == motion.n_frames and out.fps == motion.fps


def test_mouth_scale_doubles_mouth_deviations_before_clipping(person):
    motion = generic_motion(25, seed=4)
    base = fitted(person, share=0.0, **NO_CLIP).adapt(motion).landmarks
    doubled = fitted(person, share=0.0, mouth_scale=2.0, **NO_CLIP).adapt(motion).landmarks
    assert np.allclose(doubled[:, MOUTH] - person.mean[MOUTH], 2 * (base[:, MOUTH] - person.mean[MOUTH]), atol=1e-5)
    not_mouth = np.r_[0:48]
    assert np.allclose(doubled[:, not_mouth], base[:, not_mouth], atol=1e-6)

    units = person.denormalize(person.train_frames())
    low, high = np.percentile(units, 3, axis=0), np.percentile(units, 97, axis=0)
    clipped = fitted(person, share=0.0, mouth_scale=2.0).adapt(motion).landmarks
    assert np.allclose(clipped, np.clip(doubled, low, high), atol=1e-5)


def test_config_is_validated():
    from geneface.core.config import structure

    with pytest.raises(SpecError, match="clip_low"):
        structure(ProjectionConfig, {"clip_low": 90, "clip_high": 10}, "model")
    with pytest.raises(SpecError, match="share"):
        structure(ProjectionConfig, {"share": 1.5}, "model")
    with pytest.raises(SpecError, match="neighbours"):
        structure(ProjectionConfig, {"neighbours": 0}, "model")


def test_unfitted_stage_fails_with_one_line(tmp_path, capsys):
    with pytest.raises(UsageError) as err:
        LandmarkProjection().adapt(generic_motion(5))
    message = str(err.value)
    assert "\n" not in message and "not fitted" in message
    assert "geneface train domain_adapter --plugin landmark_projection --person DATASET" in message

    from geneface.cli import main
    from geneface.core.motion_io import save_motion

    save_motion(tmp_path / "in.npz", generic_motion(5))
    spec = tmp_path / "spec.yaml"
    spec.write_text("input: {motion: in.npz}\nstages:\n  domain_adapter: {plugin: landmark_projection}\n"
                    "output: out.npz\n")
    assert main(["run", str(spec), "--quiet"]) == 2
    err_text = capsys.readouterr().err.strip()
    # Refused before any work, by `needs_checkpoint` (also what `geneface validate` says).
    assert len(err_text.splitlines()) == 1 and "stages.domain_adapter.checkpoint" in err_text
    assert "works only from a trained checkpoint" in err_text
    assert not (tmp_path / "out.npz").exists()
    assert main(["validate", str(spec)]) == 2


def test_fit_through_the_cli_and_use_the_checkpoint(person_dir, person, tmp_path, capsys):
    from geneface.cli import main
    from geneface.core.checkpoint import read_checkpoint
    from geneface.core.motion_io import load_motion, save_motion
    from geneface.registry import get_registry

    out = tmp_path / "proj"
    started = time.perf_counter()
    code = main(["train", "domain_adapter", "--plugin", "landmark_projection", "--person", str(person_dir),
                 "--out", str(out)])
    print(f"landmark_projection fit through the CLI: {time.perf_counter() - started:.2f} s")
    assert code == 0, capsys.readouterr().err
    ckpt = read_checkpoint(out / "model.safetensors", expect_kind="domain_adapter", expect_plugin="landmark_projection")
    assert ckpt.state["frames"].shape == (person.n_train, 204)  # the held-out 1/11 is not stored
    assert np.allclose(ckpt.state["frames"].numpy(), person.train_frames())
    assert ckpt.meta["train_frames"] == person.n_train and ckpt.meta["held_out_frames"] == person.n_held_out
    assert ckpt.config["share"] == 0.2 and ckpt.config["neighbours"] == 10
    run = json.loads((out / "run.json").read_text())
    assert run["fitted"] is True and run["train_frames"] == person.n_train

    stage = get_registry().load(out / "model.safetensors", "domain_adapter", "test")
    motion = generic_motion(30, seed=5)
    adapted = stage.adapt(motion)
    assert np.allclose(adapted.landmarks, fitted(person).adapt(motion).landmarks, atol=1e-5)

    # In a spec, with config overriding the checkpoint's (the clip bounds follow the override).
    save_motion(tmp_path / "in.npz", motion)
    spec = tmp_path / "spec.yaml"
    spec.write_text("input: {motion: in.npz}\nstages:\n  domain_adapter:\n    plugin: landmark_projection\n"
                    "    checkpoint: proj/model.safetensors\n"
                    "    config: {share: 0.0, clip_low: 0.0, clip_high: 100.0}\noutput: out.npz\n")
    assert main(["run", str(spec), "--quiet"]) == 0, capsys.readouterr().err
    result = load_motion(tmp_path / "out.npz")
    assert np.allclose(result.landmarks, person.denormalize(rebase(motion, person.mean, person.std)), atol=1e-5)


def test_plugins_lists_both_adapters(capsys):
    from geneface.cli import main

    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["plugins"]
    adapters = {p["name"]: p for p in rows if p["kind"] == "domain_adapter"}
    assert {"identity", "landmark_projection"} <= set(adapters)
    assert adapters["identity"]["available"] and adapters["landmark_projection"]["available"]


def test_ten_minutes_of_motion_adapt_in_seconds(one_torch_thread):
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((5000, 204)).astype(np.float32)
    stage = LandmarkProjection().fit(frames, np.zeros((68, 3)), np.ones((68, 3)))
    motion = Motion(rng.standard_normal((15000, 68, 3)).astype(np.float32), 25.0)
    started = time.perf_counter()
    out = stage.adapt(motion)
    print(f"landmark_projection: 15000 frames against 5000 training frames in {time.perf_counter() - started:.2f} s")
    assert out.n_frames == 15000 and np.all(np.isfinite(out.landmarks))


def test_a_checkpoint_missing_a_tensor_is_refused(person, tmp_path):
    from geneface.core.checkpoint import save_checkpoint, stage_checkpoint
    from geneface.registry import get_registry
    from geneface.errors import CheckpointError

    ckpt = stage_checkpoint(fitted(person))
    assert sorted(ckpt.state) == ["frames", "high", "low", "mean", "std"]
    save_checkpoint(tmp_path / "bad.safetensors", attrs.evolve(ckpt, state={k: v for k, v in ckpt.state.items()
                                                                             if k != "low"}))
    with pytest.raises(CheckpointError, match="missing tensor.*low"):
        get_registry().load(tmp_path / "bad.safetensors", "domain_adapter", "test")


def test_adapting_at_inference_needs_no_training_code():
    """Both person adapters read generic motion with `core.records.rebase`: a run that only
    adapts imports nothing from geneface.training (issue 34)."""
    import subprocess
    import sys

    code = """
import sys
import numpy as np
from geneface.core.records import Motion
from geneface.plugins.adversarial_postnet import AdversarialPostnet
from geneface.plugins.landmark_projection import LandmarkProjection
rng = np.random.default_rng(0)
mean, std = rng.normal(0, 1, (68, 3)).astype(np.float32), np.full((68, 3), 0.1, np.float32)
motion = Motion(rng.normal(0, 1, (12, 68, 3)).astype(np.float32), 25.0, mean, std)
LandmarkProjection().fit(rng.standard_normal((40, 204)).astype(np.float32), mean, std).adapt(motion)
post = AdversarialPostnet()
post.net.person_mean.fill_(0.5)
post.net.person_std.fill_(0.2)
post.adapt(motion)
print(sorted(m for m in sys.modules if m.startswith("geneface.training")))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
