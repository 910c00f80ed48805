"""Renderer `vanilla_nerf`: training through the shared loop, the attention window, rendering,
checkpoints, errors.

One synthetic subject (2 s, processed at 64 px) and one short CLI training run with narrow
MLPs (set through --config model keys) are shared by the module, so the whole file stays
within a couple of CPU minutes on one thread.
"""

from __future__ import annotations

import json
import shutil

import attrs
import numpy as np
import pytest
import torch
import yaml

from support.renderers import render_without_the_dataset, run_renderer, shared_subject, train_renderer
from support.subject import read_metrics
from geneface.cli import main
from geneface.core.dataset import Dataset, held_out_start
from geneface.core.records import Motion
from geneface.registry import get_registry
from geneface.errors import StageMismatchError
from geneface.nerf.fields.vanilla_head import window_indices
from geneface.nerf.losses import psnr

STEPS = 200
# Measured with this file's settings (200 steps of 512 rays, one thread): training frames
# rendered from their own windows reach about 24.9 dB, held-out ones 23.5 (the plate alone: 8.5).
OVERFIT_PSNR = 21.0
TINY = {
    "condition": {"dim": 16, "hidden": 32},
    "head": {"hidden": 64, "layers": 4, "skip": 2, "colour_hidden": 32, "coarse_samples": 16, "fine_samples": 16},
    "torso": {"hidden": 64, "layers": 4, "skip": 2, "colour_hidden": 32, "coarse_samples": 8, "fine_samples": 8},
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return shared_subject(tmp_path_factory)


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    return train_renderer("vanilla_nerf", dataset, tmp_path_factory.mktemp("train") / "run",
                          {"train": {"threads": 1}, "model": TINY,
                           "task": {"val_frames": 2, "head_stage": 0.3, "frames_per_batch": 4}},
                          "--steps", STEPS, "--batch-size", 512, "--lr", "5e-3", "--val-every", 100)


@pytest.fixture(scope="module")
def stage(run):
    return get_registry().load(run / "model.safetensors", "renderer", "test")


def test_trains_through_the_cli_and_overfits_the_subject(run, dataset, stage):
    metrics = read_metrics(run / "metrics.csv")
    assert metrics[(STEPS, "val", "psnr")] > metrics[(100, "val", "psnr")] - 0.5
    image = next((run / "validation" / f"step-{STEPS:08d}").glob("*.png"))
    import cv2

    assert cv2.imread(str(image)).shape == (64, 192, 3)  # truth | render | error
    ds = Dataset(dataset)
    held = json.loads((run / "run.json").read_text())["task_config"]["held_out"]
    assert held == [held_out_start(ds.n_frames), ds.n_frames] == [45, 50]
    # A training frame, rendered from its own window of landmarks and its pose, matches the video.
    frame = 5
    window = ds.landmarks_canonical()[window_indices(held[0], frame, 5)]
    got = stage.net.render_frame(torch.from_numpy(window), torch.from_numpy(ds.camera().c2w[frame]))
    truth = torch.from_numpy(ds.frame(frame)).float() / 255.0
    assert float(psnr(got, truth)) > OVERFIT_PSNR
    # The full-size model is the method's: 8 x 256 MLPs with a skip at 4, 64-d condition.
    from geneface.nerf.vanilla import VanillaNeRFConfig, VanillaNeRFNet

    full = VanillaNeRFNet(VanillaNeRFConfig())
    widths = [layer.out_features for layer in full.head_coarse.trunk.linears]
    assert widths == [256] * 8 and full.head_coarse.trunk.skips == {4} and full.head_fine is not None
    assert full.head_coarse.position.out_dim == 63 and full.head_coarse.direction.out_dim == 27
    assert full.condition.config.dim == 64 and full.condition.encoder[0].in_features == 204


def test_render_streams_and_the_checkpoint_round_trips(run, dataset, stage, tmp_path):
    motion = Dataset(dataset).motion(np.arange(3))
    first = list(stage.render(motion))
    assert len(first) == 3 and all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in first)
    # Saved and loaded again on a machine without the dataset: identical frames.
    again = render_without_the_dataset(stage, motion, dataset, tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_geneface_run_writes_an_mp4_with_the_default_camera(run, dataset, tmp_path):
    frames = run_renderer(tmp_path, "vanilla_nerf", run / "model.safetensors", Dataset(dataset).motion(np.arange(3)))
    assert len(frames) == 3 and frames[0].shape == (64, 64, 3)


def _mean_step(values: np.ndarray) -> float:
    return float(np.abs(np.diff(values.astype(np.float64), axis=0)).mean())


def test_the_attention_window_smooths_a_jittered_motion(dataset, stage):
    ds = Dataset(dataset)
    clean = ds.landmarks_canonical()[10:18]
    _, std = ds.landmark_stats()
    rng = np.random.default_rng(0)
    jittered = Motion(clean + 0.5 * std * rng.standard_normal(clean.shape).astype(np.float32))
    net = stage.net
    n = jittered.n_frames
    lm = torch.from_numpy(jittered.landmarks)
    with torch.no_grad():
        weights = net.condition.weights(lm[window_indices(n, np.arange(n), 5)])
        smooth = net.condition(lm[window_indices(n, np.arange(n), 5)]).numpy()
        single = net.condition(lm[:, None]).numpy()
    assert torch.allclose(weights.sum(-1), torch.ones(n)) and weights.shape == (n, 5)
    cond_ratio = _mean_step(smooth) / _mean_step(single)
    frames5 = np.stack(list(stage.render(jittered)))
    frames1 = np.stack(list(stage.render(jittered, window=1)))
    frame_ratio = _mean_step(frames5) / _mean_step(frames1)
    print(f"smoothness (window 5 / window 1): condition {cond_ratio:.3f}, frames {frame_ratio:.3f}")
    assert cond_ratio < 0.6 and frame_ratio < 0.9
    with pytest.raises(StageMismatchError, match="window of 3 frames"):
        next(stage.render(jittered, window=3))


def test_streams_with_half_its_window_as_context(dataset, stage, monkeypatch):
    # What `geneface stream` relies on: frames a..b-1 drawn from the motion's frames a-2..b+1
    # (clamped at the run's ends) are the frames of the whole render, and only those are drawn.
    from geneface.core.stages import StreamContext

    ds = Dataset(dataset)
    motion, camera = Motion(ds.landmarks_canonical()[:12]), ds.camera()
    camera = attrs.evolve(camera, c2w=camera.c2w[:12])
    whole = list(stage.render(motion, camera))
    context = stage.stream_context()
    assert context == StreamContext(2, 2)
    drawn_frames = []
    render_frame = stage.net.render_frame
    monkeypatch.setattr(stage.net, "render_frame", lambda *a, **k: drawn_frames.append(1) or render_frame(*a, **k))
    for a, b in [(0, 3), (4, 7), (9, 12)]:
        lo, hi = max(0, a - context.back), min(12, b + context.ahead)
        part = motion.with_landmarks(motion.landmarks[lo:hi])
        drawn_frames.clear()
        drawn = list(stage.render_part(part, attrs.evolve(camera, c2w=camera.c2w[lo:hi]), a - lo, b - lo))
        assert len(drawn) == len(drawn_frames) == b - a
        assert all(np.array_equal(x, y) for x, y in zip(drawn, whole[a:b]))


def test_motion_in_another_layout_is_one_line(stage, dataset):
    pixels = Motion(Dataset(dataset).landmarks_image()[:4])  # crop pixels, not the canonical frame
    with pytest.raises(StageMismatchError, match="another landmark layout or unit"):
        next(stage.render(pixels))


def _train(dataset, out, capsys, *extra):
    code = main(["train", "renderer", "--plugin", "vanilla_nerf", "--data", str(dataset), "--out", str(out),
                 "--steps", "1", "-q", *extra])
    err = capsys.readouterr().err
    return code, err


def test_a_dataset_too_short_to_hold_out_a_part(dataset, tmp_path, capsys):
    short = tmp_path / "short"
    shutil.copytree(dataset, short)
    manifest = json.loads((short / "manifest.json").read_text())
    manifest["n_frames"], manifest["splits"] = 1, {"train": [0, 1], "val": [1, 1]}
    (short / "manifest.json").write_text(json.dumps(manifest))
    code, err = _train(short, tmp_path / "o", capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "too few to hold out the last 1/11" in err


@pytest.mark.parametrize("extra, named", [
    (["--profile", "fast"], "unknown profile 'fast'"),
    (["--config", "CONFIG"], "window must be an odd number"),
])
def test_bad_settings_are_one_line(dataset, tmp_path, capsys, extra, named):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"model": {"condition": {"window": 4}}}))
    code, err = _train(dataset, tmp_path / "o", capsys, *[str(config) if e == "CONFIG" else e for e in extra])
    assert code == 2 and len(err.strip().splitlines()) == 1 and named in err


def test_dataset_without_masks(dataset, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    shutil.rmtree(broken / "masks")
    code, err = _train(broken, tmp_path / "o", capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "vanilla_nerf needs the dataset's masks" in err


def test_plugins_lists_it_as_trainable(capsys):
    assert main(["plugins", "--json"]) == 0
    (row,) = [r for r in json.loads(capsys.readouterr().out)["plugins"] if r["name"] == "vanilla_nerf"]
    assert row["available"] and row["trainable"]
