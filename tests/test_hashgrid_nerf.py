"""Renderer `hashgrid_nerf`: training through the shared loop, rendering, checkpoints, errors.

One synthetic subject (2 s, processed at 64 px) and one short CLI training run are shared by
the module, so the whole file stays within a couple of CPU minutes.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from support.renderers import render_without_the_dataset, run_renderer, shared_subject, train_renderer
from support.subject import read_metrics
from geneface.cli import main
from geneface.core.checkpoint import read_checkpoint, save_checkpoint
from geneface.core.dataset import Dataset
from geneface.core.records import Motion
from geneface.registry import get_registry
from geneface.errors import CheckpointError, StageMismatchError
from geneface.nerf.losses import psnr
from geneface.plugins.hashgrid_nerf import HashGridNeRF
from geneface.core.dataset import held_out_start

STEPS = 200


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return shared_subject(tmp_path_factory)


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    return train_renderer("hashgrid_nerf", dataset, tmp_path_factory.mktemp("train") / "run",
                          {"train": {"threads": 1}, "task": {"val_frames": 2}},
                          "--steps", STEPS, "--batch-size", 1024, "--lr", "5e-3", "--val-every", 100)


def test_trains_through_the_cli_and_overfits_the_subject(run, dataset):
    metrics = read_metrics(run / "metrics.csv")
    assert metrics[(STEPS, "val", "psnr")] > metrics[(100, "val", "psnr")] - 0.5
    assert (run / "validation" / f"step-{STEPS:08d}").is_dir()
    image = next((run / "validation" / f"step-{STEPS:08d}").glob("*.png"))
    import cv2

    assert cv2.imread(str(image)).shape == (64, 192, 3)  # truth | render | error
    # A training frame, rendered from its own landmarks and pose, matches the video.
    stage = get_registry().load(run / "model.safetensors", "renderer", "test")
    ds = Dataset(dataset)
    frame = 5
    got = stage.net.render_frame(torch.from_numpy(ds.landmarks_canonical()[frame]),
                                 torch.from_numpy(ds.camera().c2w[frame]))
    truth = torch.from_numpy(ds.frame(frame)).float() / 255.0
    assert float(psnr(got, truth)) > 25.0
    held = json.loads((run / "run.json").read_text())["task_config"]["held_out"]
    assert held == [held_out_start(ds.n_frames), ds.n_frames] == [45, 50]


def test_the_model_comes_from_the_last_stage(run):
    # Lip stage = the last 15 % of the steps: only the validation at step 200 is in it, so the
    # exported model is that one even where an earlier one scored higher on the whole frame.
    metrics = read_metrics(run / "metrics.csv")
    assert (STEPS, "val", "psnr_final_stage") in metrics and (100, "val", "psnr_final_stage") not in metrics
    assert (100, "val", "psnr_mouth") in metrics
    meta = read_checkpoint(run / "model.safetensors").meta
    assert meta["step"] == STEPS and meta["selected_by"] == "psnr_final_stage"


def test_validation_scores_with_the_shared_metrics(run, dataset, one_torch_thread):
    # One PSNR, one face box: the logged validation is geneface.metrics.image's score (as bench
    # and eval compute it) of the frames the exported renderer yields for the held-out frames.
    from geneface.metrics.image import face_box, mouth_box, psnr_box
    from geneface.metrics.image import psnr as image_psnr

    stage = get_registry().load(run / "model.safetensors", "renderer", "test")
    ds = Dataset(dataset)
    frames = np.array([45, 49])  # val_frames 2 of the held-out 45-49
    camera = ds.camera()
    camera = type(camera)(camera.focal, camera.width, camera.height, camera.c2w[frames], camera.cx, camera.cy)
    rendered = list(stage.render(ds.motion(frames), camera))
    real = [ds.frame(int(f)) for f in frames]
    points = ds.landmarks_image()[frames]
    scores = {"psnr": [image_psnr(a, b) for a, b in zip(rendered, real)],
              "psnr_face": [psnr_box(a, b, face_box(p, ds.size)) for a, b, p in zip(rendered, real, points)],
              "psnr_mouth": [psnr_box(a, b, mouth_box(p, ds.size)) for a, b, p in zip(rendered, real, points)]}
    metrics = read_metrics(run / "metrics.csv")
    for name, values in scores.items():
        assert metrics[(STEPS, "val", name)] == pytest.approx(float(np.mean(values)), abs=1e-4), name


def test_render_streams_n_frames_and_round_trips(run, dataset, tmp_path):
    stage = get_registry().load(run / "model.safetensors", "renderer", "test")
    motion = Dataset(dataset).motion(np.arange(3))
    first = list(stage.render(motion))
    assert len(first) == 3 and all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in first)
    # Longer than the video's poses: the default camera loops them.
    long = Motion(np.concatenate([Dataset(dataset).motion().landmarks] * 2)[:61])
    assert sum(1 for _ in stage.render(long)) == 61
    # Saved and loaded again (a machine without the dataset): identical frames.
    again = render_without_the_dataset(stage, motion, dataset, tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_geneface_run_writes_an_mp4(run, dataset, tmp_path):
    frames = run_renderer(tmp_path, "hashgrid_nerf", run / "model.safetensors", Dataset(dataset).motion(np.arange(10)))
    assert len(frames) == 10 and frames[0].shape == (64, 64, 3)


def test_motion_in_another_layout_is_one_line(run, dataset):
    stage = get_registry().load(run / "model.safetensors", "renderer", "test")
    pixels = Motion(Dataset(dataset).landmarks_image()[:4])  # crop pixels, not the canonical frame
    with pytest.raises(StageMismatchError, match="another landmark layout or unit"):
        next(stage.render(pixels))


@pytest.mark.parametrize("remove, named", [("camera/c2w.npy", "camera"), ("masks", "masks")])
def test_dataset_without_camera_or_masks(dataset, tmp_path, capsys, remove, named):
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    target = broken / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    code = main(["train", "renderer", "--plugin", "hashgrid_nerf", "--data", str(broken), "--out",
                 str(tmp_path / "o"), "--steps", "1", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert named in err and remove.split("/")[0] in err


def test_checkpoint_of_another_renderer(run, tmp_path, capsys):
    ckpt = read_checkpoint(run / "model.safetensors")
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, type(ckpt)(kind="renderer", plugin="landmark_sketch", plugin_version="1", config={},
                                      state={}, meta={}))
    spec = {"input": {"motion": "m.npy"}, "stages": {"renderer": {"plugin": "hashgrid_nerf", "checkpoint": str(other)}},
            "output": "o.mp4"}
    np.save(tmp_path / "m.npy", np.zeros((2, 68, 3), np.float32))
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", str(tmp_path / "spec.yaml"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "'landmark_sketch'" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(CheckpointError, match="cannot be loaded into 'hashgrid_nerf'"):
        read_checkpoint(other, expect_plugin=HashGridNeRF.name)


def test_plugins_lists_the_backend(capsys):
    assert main(["plugins", "--json"]) == 0
    (row,) = [r for r in json.loads(capsys.readouterr().out)["plugins"] if r["name"] == "hashgrid_nerf"]
    assert row["available"] and row["trainable"] and "head space triplane" in row["compute"]



def test_edge_band_is_the_pixels_near_a_label_boundary():
    from geneface.training.person_renderer_task import edge_band

    labels = np.zeros((32, 32), np.uint8)
    labels[8:24, 8:24] = 1  # a head
    labels[24:, 4:28] = 2  # a torso under it
    got = np.zeros(32 * 32, bool)
    got[edge_band(labels, 2)] = True
    # Brute force: a pixel is in the band when a pixel of another label is at most 2 px away
    # along each axis (the 5 x 5 window, clipped at the border).
    padded = np.pad(labels, 2, mode="edge")
    want = np.zeros((32, 32), bool)
    for y in range(32):
        for x in range(32):
            want[y, x] = (padded[y:y + 5, x:x + 5] != labels[y, x]).any()
    assert np.array_equal(got.reshape(32, 32), want)
    assert want.sum() < 0.5 * want.size  # a band, not the frame


def test_edge_share_draws_rays_from_the_mask_boundaries(dataset):
    from geneface.training.hashgrid_task import HashGridTaskConfig
    from geneface.training.person_renderer_task import PersonRendererTask, edge_band

    ds = Dataset(dataset)

    def share_in_band(edge_share: float) -> float:
        stage = HashGridNeRF(HashGridNeRF.Config(size=ds.size, n_poses=ds.n_frames, n_latents=45))
        task = PersonRendererTask(stage, ds, HashGridTaskConfig(edge_share=edge_share))
        batch = task.sample_batch(np.random.default_rng(0), 4096)
        frames, flat = batch.frame.numpy(), batch.flat.numpy()
        inside = np.zeros(len(flat), bool)
        for f in np.unique(frames):
            band = np.zeros(ds.size * ds.size, bool)
            band[edge_band(ds.mask(int(f)), task.edge_px)] = True
            inside[frames == f] = band[flat[frames == f]]
        return float(inside.mean())

    plain, edged = share_in_band(0.0), share_in_band(0.3)
    # 30 % of the rays come from the band on top of those a plain draw puts there by chance.
    assert edged == pytest.approx(plain + 0.3 * (1.0 - plain), abs=0.05)


def test_trains_with_the_opt_in_variants(dataset, tmp_path):
    # No per-frame latents (head.latent_dim 0: the mean of no codes once made the loss nan),
    # a torso whose colour does not see the pose, rays from the masks' edges.
    out = train_renderer("hashgrid_nerf", dataset, tmp_path / "run",
                         {"train": {"threads": 1}, "model": {"head": {"latent_dim": 0}, "torso": {"pose_colour": False}},
                          "task": {"val_frames": 1, "val_images": 0, "edge_share": 0.2}},
                         "--steps", 3, "--batch-size", 256, "--val-every", 3)
    assert np.isfinite(read_metrics(out / "metrics.csv")[(3, "val", "psnr")])
