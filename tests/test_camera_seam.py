"""The camera reaches the renderer: `input.poses`, the renderer's own default, or a clear error."""

from __future__ import annotations

import types

import numpy as np
import pytest
import yaml

from geneface import hookimpl
from geneface.cli import main
from geneface.core.camera_io import camera_for_length, load_camera, ping_pong, save_camera
from geneface.core.motion_io import save_motion
from geneface.core.records import Camera
from geneface.core.stages import Renderer
from geneface.errors import UsageError
from geneface.registry import Origin, get_registry

from conftest import talking_motion

SEEN: list = []


class CameraRecorder(Renderer):
    """Records the camera it is given; draws the camera's x translation as grey level."""

    name = "camera_recorder"
    needs_camera = True

    def frame_size(self):
        return (32, 32)

    def render(self, motion, camera=None):
        SEEN.append(camera)
        for t in range(motion.n_frames):
            yield np.full((32, 32, 3), int(camera.c2w[t, 0, 3]) % 256, np.uint8)


class WithDefault(CameraRecorder):
    """A renderer trained on a dataset: it falls back to that dataset's poses."""

    name = "camera_default"

    def default_head_path(self, n_frames):
        return camera_for_length(_camera(5, offset=100), n_frames)


def _camera(n: int, offset: int = 0) -> Camera:
    c2w = np.repeat(np.eye(4, dtype=np.float32)[None], n, axis=0)
    c2w[:, 0, 3] = offset + np.arange(n)
    return Camera(focal=500.0, width=64, height=64, c2w=c2w)


@pytest.fixture
def recorders():
    module = types.ModuleType("camera_test_plugins")

    @hookimpl
    def register_renderers(register):
        register(CameraRecorder)
        register(WithDefault)

    module.register_renderers = register_renderers
    get_registry().register_module(module, Origin("camera-test", "0", "camera_test_plugins"))
    SEEN.clear()
    yield
    SEEN.clear()


def _spec(tmp_path, renderer: str, poses=None, n_frames: int = 10):
    save_motion(tmp_path / "m.npz", talking_motion(n_frames))
    spec = {"input": {"motion": "m.npz"}, "stages": {"renderer": renderer}, "output": "out.mp4"}
    if poses is not None:
        spec["input"]["poses"] = poses
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_ping_pong_loops_back_and_forth():
    assert ping_pong(4, 10).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert ping_pong(5, 3).tolist() == [0, 1, 2]
    assert ping_pong(1, 3).tolist() == [0, 0, 0]


def test_pose_file_round_trip_and_errors(tmp_path):
    save_camera(tmp_path / "cam.npz", _camera(3))
    back = load_camera(tmp_path / "cam.npz")
    assert back.focal == 500.0 and back.n_frames == 3 and np.array_equal(back.c2w, _camera(3).c2w)
    np.savez(tmp_path / "bad.npz", c2w=np.zeros((3, 3, 3)), focal=1.0, width=4, height=4)
    with pytest.raises(UsageError, match="bad.npz: c2w must be T x 4 x 4"):
        load_camera(tmp_path / "bad.npz")
    np.savez(tmp_path / "nokey.npz", c2w=np.zeros((3, 4, 4)))
    with pytest.raises(UsageError, match="nokey.npz: not a pose file, missing focal, width, height"):
        load_camera(tmp_path / "nokey.npz")
    nan = _camera(3).c2w.copy()
    nan[2, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", c2w=nan, focal=1.0, width=4, height=4)
    with pytest.raises(UsageError, match="first at frame 2"):
        load_camera(tmp_path / "nan.npz")


def test_input_poses_reach_the_renderer(tmp_path, recorders, capsys):
    save_camera(tmp_path / "poses.npz", _camera(7))
    assert main(["run", str(_spec(tmp_path, "camera_recorder", "poses.npz")), "-q"]) == 0
    (camera,) = SEEN
    assert camera.n_frames == 10 and camera.focal == 500.0
    assert camera.c2w[:, 0, 3].tolist() == [0, 1, 2, 3, 4, 5, 6, 5, 4, 3]  # looped back and forth
    assert "7 poses for 10 motion frames" in capsys.readouterr().err


def test_renderer_default_camera_when_no_poses(tmp_path, recorders):
    assert main(["run", str(_spec(tmp_path, "camera_default")), "-q"]) == 0
    assert SEEN[0].c2w[:, 0, 3].tolist() == [100, 101, 102, 103, 104, 103, 102, 101, 100, 101]


def test_renderer_that_needs_a_camera_and_has_none(tmp_path, recorders, capsys):
    assert main(["run", str(_spec(tmp_path, "camera_recorder")), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "renderer 'camera_recorder' needs a camera path" in err and "input.poses" in err
    assert not (tmp_path / "out.mp4").exists() and SEEN == []


def test_renderer_without_camera_needs_ignores_poses(tmp_path):
    save_camera(tmp_path / "poses.npz", _camera(10))
    assert main(["run", str(_spec(tmp_path, "landmark_sketch", "poses.npz")), "-q"]) == 0
    assert (tmp_path / "out.mp4").is_file()


def test_bad_poses_are_a_spec_error(tmp_path, recorders, capsys):
    (tmp_path / "poses.npz").write_bytes(b"not a zip")
    assert main(["validate", str(_spec(tmp_path, "camera_recorder", "poses.npz"))]) == 2
    assert "input.poses" in capsys.readouterr().err
    assert main(["validate", str(_spec(tmp_path, "camera_recorder", "missing.npz"))]) == 2

