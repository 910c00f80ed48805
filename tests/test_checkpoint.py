import pickle

import pytest
import torch

from geneface.core.checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from geneface.errors import CheckpointError, UsageError


def _ckpt():
    return Checkpoint(kind="motion_generator", plugin="vae", plugin_version="0.1.0",
                      config={"hidden": 256, "layers": [1, 2]}, state={"w": torch.arange(6.0).reshape(2, 3)},
                      meta={"step": 12, "best": 0.5})


def test_roundtrip(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, _ckpt())
    back = read_checkpoint(path, expect_kind="motion_generator", expect_plugin="vae")
    assert back.config == {"hidden": 256, "layers": [1, 2]} and back.meta["step"] == 12
    assert torch.equal(back.state["w"], torch.arange(6.0).reshape(2, 3))


def test_wrong_plugin_or_kind(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, _ckpt())
    with pytest.raises(CheckpointError, match="saved by plugin 'vae' and cannot be loaded into 'other'"):
        read_checkpoint(path, expect_plugin="other")
    with pytest.raises(CheckpointError, match="holds a motion_generator"):
        read_checkpoint(path, expect_kind="renderer")


def test_truncated_and_foreign_files(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, _ckpt())
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        read_checkpoint(cut)
    with pytest.raises(UsageError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "nope.safetensors")


class _Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_pickle_is_refused_and_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"state": _Boom()}))
    with pytest.raises(CheckpointError):
        read_checkpoint(evil)
    assert not (tmp_path / "PWNED").exists()


def test_plain_safetensors_without_geneface_metadata(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a geneface checkpoint"):
        read_checkpoint(path)
