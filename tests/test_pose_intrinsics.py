"""A pose file's intrinsics reach the person NeRF renderers (issue 22, item 3, renderer side).

`geneface run` with `input.poses` casts the head's rays with the pose file's focal length and
principal point, not the checkpoint's: a longer focal length draws a larger head, and a pose
file holding the checkpoint's own camera renders exactly the default frames. One tiny
`hashgrid_nerf` (a few dozen steps on the shared 64 px synthetic subject) serves the module.
"""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch
import yaml

from support.renderers import run_renderer, shared_subject, train_renderer
from geneface.cli import main
from geneface.core.camera_io import save_camera
from geneface.core.checkpoint import read_checkpoint
from geneface.core.config import structure
from geneface.core.dataset import Dataset
from geneface.core.motion_io import save_motion
from geneface.core.records import Camera
from geneface.errors import StageMismatchError
from geneface.nerf.vanilla import VanillaNeRFConfig, VanillaNeRFNet
from geneface.plugins.hashgrid_nerf import HashGridNeRF
from geneface.registry import get_registry

STEPS = 60
N_FRAMES = 4
WIDER = 1.3  # focal length of the "zoomed in" pose file, times the checkpoint's


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return shared_subject(tmp_path_factory)


@pytest.fixture(scope="module")
def checkpoint(dataset, tmp_path_factory):
    run = train_renderer("hashgrid_nerf", dataset, tmp_path_factory.mktemp("train") / "run",
                         {"train": {"threads": 1}, "task": {"val_frames": 1, "val_images": 0}},
                         "--steps", STEPS, "--batch-size", 1024, "--lr", "5e-3", "--val-every", STEPS)
    return run / "model.safetensors"


def _stage(checkpoint) -> HashGridNeRF:
    return get_registry().load(checkpoint, "renderer", "test", plugin=HashGridNeRF.name)


def _trained_camera(checkpoint, **change) -> Camera:
    """The checkpoint's own camera over its first N_FRAMES poses (what the default path uses)."""
    state = read_checkpoint(checkpoint).state
    focal, cx, cy = (float(v) for v in state["intrinsics"])
    side = state["plate"].shape[0]
    camera = Camera(focal=focal, width=side, height=side, c2w=state["c2w"][:N_FRAMES].numpy(), cx=cx, cy=cy)
    return attrs.evolve(camera, **change)


@pytest.fixture(scope="module")
def runs(checkpoint, dataset, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("runs")
    motion = Dataset(dataset).motion(np.arange(N_FRAMES))
    own = _trained_camera(checkpoint)
    cameras = {"default": None, "own": own, "wider": attrs.evolve(own, focal=own.focal * WIDER)}
    return {name: run_renderer(root / name, "hashgrid_nerf", checkpoint, motion, camera)
            for name, camera in cameras.items()}


def _changed(frames: np.ndarray, plate: np.ndarray) -> float:
    """Share of pixels drawn over the plate (well above the video codec's noise)."""
    return float((np.abs(frames.astype(int) - plate.astype(int)).max(-1) > 40).mean())


def test_the_checkpoints_own_intrinsics_render_the_default_frames(runs):
    assert runs["own"].shape == runs["default"].shape == (N_FRAMES, 64, 64, 3)
    assert np.array_equal(runs["own"], runs["default"])


def test_a_longer_focal_length_draws_a_larger_head(runs, checkpoint):
    assert not np.array_equal(runs["wider"], runs["default"])
    state = read_checkpoint(checkpoint).state
    plate, person = state["plate"].numpy(), state["person_region"].numpy()
    print(f"drawn over the plate: default {_changed(runs['default'], plate):.3f}, "
          f"focal x{WIDER} {_changed(runs['wider'], plate):.3f}")
    assert _changed(runs["wider"], plate) > _changed(runs["default"], plate) + 0.03
    # Beyond where a person was seen in training only the head can be drawn: it grew past it.
    outside = ~person
    assert _changed(runs["wider"][:, outside], plate[outside]) > _changed(runs["default"][:, outside], plate[outside])


def test_the_renderer_honours_the_camera_it_is_handed(checkpoint, dataset):
    stage = _stage(checkpoint)
    motion = Dataset(dataset).motion(np.arange(2))
    default = list(stage.render(motion))
    # The training camera (exactly, or as the dataset holds it in float64): the frames of today.
    for camera in (_trained_camera(checkpoint), Dataset(dataset).camera()):
        assert all(np.array_equal(a, b) for a, b in zip(default, stage.render(motion, camera)))
    # Another principal point moves the head; cx / cy None is the image centre.
    shifted = list(stage.render(motion, _trained_camera(checkpoint, cx=20.0)))
    assert not np.array_equal(shifted[0], default[0])
    wider = _trained_camera(checkpoint, focal=_trained_camera(checkpoint).focal * WIDER)
    centred = list(stage.render(motion, attrs.evolve(wider, cx=None, cy=None)))
    explicit = stage.render(motion, attrs.evolve(wider, cx=32.0, cy=32.0))
    assert all(np.array_equal(a, b) for a, b in zip(centred, explicit))


def test_what_the_renderer_cannot_honour_is_one_line(checkpoint, dataset, tmp_path, capsys):
    stage = _stage(checkpoint)
    motion = Dataset(dataset).motion(np.arange(2))
    with pytest.raises(StageMismatchError, match="focal must be positive"):
        next(stage.render(motion, _trained_camera(checkpoint, focal=float("nan"))))
    # Another frame size, from a pose file through `geneface run`.
    (tmp_path / "small").mkdir()
    save_motion(tmp_path / "small" / "motion.npz", motion)
    spec = {"input": {"motion": "motion.npz", "poses": "poses.npz"},
            "stages": {"renderer": {"plugin": "hashgrid_nerf", "checkpoint": str(checkpoint)}}, "output": "out.mp4"}
    small = _trained_camera(checkpoint, width=32, height=32)
    save_camera(tmp_path / "small" / "poses.npz", attrs.evolve(small, c2w=small.c2w[:2]))  # one pose a frame
    (tmp_path / "small" / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", str(tmp_path / "small" / "spec.yaml"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "camera is 32 x 32 px" in err and not (tmp_path / "small" / "out.mp4").exists()


def test_vanilla_nerf_casts_rays_with_the_handed_intrinsics(one_torch_thread):
    # An untrained, tiny vanilla model: its haze fills the head's box, so the box's image is
    # what changes with the focal length; the head region is one pixel so that with another
    # camera the head must be drawn beyond it (over the plate, outside the person region).
    tiny = {"size": 16, "condition": {"dim": 8, "hidden": 8, "window": 1},
            "head": {"hidden": 16, "layers": 2, "skip": -1, "colour_hidden": 8,
                     "coarse_samples": 4, "fine_samples": 4},
            "torso": {"hidden": 16, "layers": 2, "skip": -1, "colour_hidden": 8,
                      "coarse_samples": 2, "fine_samples": 2}}
    torch.manual_seed(0)
    net = VanillaNeRFNet(structure(VanillaNeRFConfig, tiny, "tiny")).eval()
    c2w = torch.eye(4)
    c2w[2, 3] = -3.0  # the camera 3 units in front of the box, looking at it
    region = torch.zeros(16, 16, dtype=torch.bool)
    region[8, 8] = True
    with torch.no_grad():
        net.c2w.copy_(c2w[None])
        net.intrinsics.copy_(torch.tensor([20.0, 8.0, 8.0]))
        net.near_far.copy_(torch.tensor([1.0, 5.0]))
        net.head_region.copy_(region)
        net.person_region.copy_(region)
    landmarks = torch.zeros(68, 3)
    trained = net.render_frame(landmarks, c2w)
    assert torch.equal(net.render_frame(landmarks, c2w, intrinsics=(20.0, 8.0, 8.0)), trained)
    plate = net.plate.float() / 255.0
    drawn = [int(((net.render_frame(landmarks, c2w, intrinsics=(f, 8.0, 8.0)) - plate).abs().amax(-1) > 1e-3).sum())
             for f in (3.0, 6.0, 12.0)]
    assert int(((trained - plate).abs().amax(-1) > 1e-3).sum()) <= 1  # the trained camera: its one-pixel region
    assert drawn[0] < drawn[1] < drawn[2]  # another camera: the whole box's image, larger with the focal length
