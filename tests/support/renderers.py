"""What the trained-renderer tests do alike: the shared synthetic subject, a short training
run, rendering from a copy of the checkpoint on a machine without the dataset, and
`geneface run` of a renderer on a motion."""

from __future__ import annotations

import shutil
from pathlib import Path
import numpy as np
import yaml

from geneface.cli import main
from geneface.core.camera_io import save_camera
from geneface.core.checkpoint import save_checkpoint, stage_checkpoint
from geneface.core.media import iter_video_frames
from geneface.core.motion_io import save_motion
from geneface.registry import get_registry
from support.subject import subject_dataset


def shared_subject(tmp_path_factory) -> Path:
    """The 2 s synthetic subject processed at 64 px, made once per session for every renderer
    test module."""
    return subject_dataset(tmp_path_factory.getbasetemp() / "subject_2s")


def train_renderer(plugin: str, dataset: Path, out: Path, config: dict, *flags) -> Path:
    """`geneface train renderer --plugin PLUGIN` on `dataset` into `out`, with `config` as its
    --config file and the loop `flags` (--steps ...): the run folder."""
    path = out.with_name(f"{out.name}.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    assert main(["train", "renderer", "--plugin", plugin, "--data", str(dataset), "--out", str(out),
                 *map(str, flags), "--config", str(path), "-q"]) == 0
    return out


def render_without_the_dataset(stage, motion, dataset: Path, tmp_path: Path) -> list:
    """Frames of `motion` from a saved copy of `stage`, rendered while the dataset it was
    trained on is moved away (a checkpoint must render on a machine that never saw it)."""
    copy = tmp_path / "copy.safetensors"
    save_checkpoint(copy, stage_checkpoint(stage))
    shutil.move(str(dataset), str(tmp_path / "moved"))
    try:
        return list(get_registry().load(copy, "renderer", "test").render(motion))
    finally:
        shutil.move(str(tmp_path / "moved"), str(dataset))


def run_renderer(folder: Path, plugin: str, checkpoint: Path, motion, camera=None) -> np.ndarray:
    """`geneface run` of `motion` through renderer `plugin` in `folder` (poses from `camera`
    when given, else the renderer's own head path): the decoded frames."""
    folder.mkdir(parents=True, exist_ok=True)
    save_motion(folder / "motion.npz", motion)
    spec: dict = {"input": {"motion": "motion.npz"},
                  "stages": {"renderer": {"plugin": plugin, "checkpoint": str(checkpoint)}},
                  "output": "out.mp4"}
    if camera is not None:
        save_camera(folder / "poses.npz", camera)
        spec["input"]["poses"] = "poses.npz"
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", str(folder / "spec.yaml"), "-q"]) == 0
    return np.stack(list(iter_video_frames(folder / "out.mp4")))

