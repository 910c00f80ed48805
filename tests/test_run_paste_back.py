"""`geneface run` with paste-back: the crop goes back into the dataset's full-size source video."""

from __future__ import annotations

import json
import shutil

import pytest

from geneface.cli import main
from geneface.core import media
from geneface.core.dataset import Dataset
from geneface.core.motion_io import save_motion
from support.renderers import shared_subject


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return shared_subject(tmp_path_factory)


@pytest.fixture
def nearest(dataset, tmp_path_factory, monkeypatch):
    """nearest_frame (plugins_contrib) fitted on the subject: a renderer of the dataset's crop."""
    pytest.importorskip("geneface_nearest_frame")
    from geneface import registry

    monkeypatch.setenv("GENEFACE_PLUGINS", "geneface-landmark-viz,geneface-nearest-frame")
    registry._REGISTRY = None
    run = tmp_path_factory.getbasetemp() / "paste_back_nearest"
    if not (run / "model.safetensors").exists():
        assert main(["train", "renderer", "--plugin", "nearest_frame", "--data", str(dataset), "--out", str(run),
                     "--quiet"]) == 0
    return run / "model.safetensors"


def _spec(tmp_path, ds, output: str, renderer: str):
    motion = tmp_path / "motion.npz"
    save_motion(motion, Dataset(ds).motion())
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"input: {{motion: {motion}, audio: {ds / 'audio.wav'}}}\n"
                    f"stages: {{renderer: {renderer}}}\n" + output)
    return spec


def test_paste_back_writes_the_source_size(dataset, nearest, tmp_path, capsys):
    # The dataset comes from the renderer's checkpoint (the one it was fitted on).
    spec = _spec(tmp_path, dataset, "output: v.mp4\n", f"{{plugin: nearest_frame, checkpoint: {nearest}}}")
    assert main(["run", str(spec), "--paste-back", "-q"]) == 0, capsys.readouterr().err
    manifest = json.loads((dataset / "manifest.json").read_text())
    info = media.probe_video(tmp_path / "v.mp4")
    assert (info.width, info.height) == (manifest["source"]["width"], manifest["source"]["height"])
    assert info.n_frames() == Dataset(dataset).n_frames and info.has_audio
    assert json.loads((tmp_path / "v.run.json").read_text())["paste_back"] is True


def test_paste_back_errors_are_one_line(dataset, nearest, tmp_path, capsys):
    sketch = "{plugin: landmark_sketch, config: {size: 64}}"
    spec = _spec(tmp_path, dataset, "output: {path: v.mp4, paste_back: true}\n", sketch)
    assert main(["run", str(spec), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "output.paste_back: set output.dataset" in err
    # A renderer that does not draw the dataset's crop (the sketch draws two views side by side).
    spec = _spec(tmp_path, dataset, f"output: {{path: v.mp4, paste_back: true, dataset: {dataset}}}\n", sketch)
    assert main(["run", str(spec), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "renders 128 x 64 px, not the 64 px crop of the dataset" in err
    # The dataset's source video is gone: one line naming it, and no video left behind.
    moved = tmp_path / "ds"
    shutil.copytree(dataset, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["source"]["path"] = str(tmp_path / "gone.mp4")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    spec = _spec(tmp_path, moved, f"output: {{path: w.mp4, paste_back: true, dataset: {moved}}}\n",
                 f"{{plugin: nearest_frame, checkpoint: {nearest}}}")
    assert main(["run", str(spec), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gone.mp4" in err
    assert not (tmp_path / "w.mp4").exists()


def test_paste_back_is_built_once(dataset, nearest, tmp_path, capsys, monkeypatch):
    """One PasteBack per run: checked before any work (the source's sha256 read once) and
    given the motion's length when that is known (issue 34)."""
    from geneface.core.paste_back import PasteBack

    built = []
    original = PasteBack.from_dataset.__func__
    monkeypatch.setattr(PasteBack, "from_dataset", classmethod(lambda cls, *a, **k: built.append(a) or original(cls, *a, **k)))
    spec = _spec(tmp_path, dataset, "output: v.mp4\n", f"{{plugin: nearest_frame, checkpoint: {nearest}}}")
    assert main(["run", str(spec), "--paste-back", "-q"]) == 0, capsys.readouterr().err
    assert len(built) == 1
    assert media.probe_video(tmp_path / "v.mp4").n_frames() == Dataset(dataset).n_frames
