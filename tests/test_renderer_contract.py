"""The trainable-renderer contract's smallest example (tests/support/flat_renderer.py, shown in
docs/writing-a-trainable-renderer.md) trains through `geneface train` with the generic person
renderer task and renders from its checkpoint."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from support.subject import read_metrics, subject_dataset

from geneface import hookimpl
from geneface.cli import main
from geneface.registry import Origin, get_registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-trainable-renderer.md"
EXAMPLE = Path(__file__).resolve().parent / "support" / "flat_renderer.py"


def _register():
    from support.flat_renderer import FlatRenderer

    module = types.ModuleType("flat_renderer_plugin")
    module.register_renderers = hookimpl(lambda register: register(FlatRenderer))
    get_registry().register_module(module, Origin("geneface-tests", "0", "flat_renderer = support.flat_renderer"))


def test_the_doc_shows_the_example_verbatim():
    code = EXAMPLE.read_text().split('"""', 2)[2].strip()
    assert code in DOC.read_text(), "docs/writing-a-trainable-renderer.md no longer shows tests/support/flat_renderer.py"


def test_the_smallest_renderer_trains_and_renders(tmp_path_factory, tmp_path, one_torch_thread):
    dataset = subject_dataset(tmp_path_factory.getbasetemp() / "subject_2s")
    _register()
    out = tmp_path / "run"
    assert main(["train", "renderer", "--plugin", "flat_renderer", "--data", str(dataset), "--out", str(out),
                 "--steps", "60", "--val-every", "20", "--threads", "1", "-q"]) == 0
    metrics = read_metrics(out / "metrics.csv")
    assert metrics[(60, "val", "psnr")] > metrics[(20, "val", "psnr")]
    assert (60, "val", "psnr_final_stage") in metrics  # one stage: every validation is in it
    stage = get_registry().load(out / "model.safetensors", "renderer", "test")
    from geneface.core.dataset import Dataset

    frames = list(stage.render(Dataset(dataset).motion(range(45, 48))))
    assert len(frames) == 3 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
    with pytest.raises(Exception, match="--profile: unknown profile 'huge'"):
        from geneface.app.train import plugin_to_train, train_plugin

        registry = get_registry()
        train_plugin(plugin_to_train("renderer", "flat_renderer", registry), [dataset], tmp_path / "o",
                     args=["--profile", "huge"], registry=registry)
