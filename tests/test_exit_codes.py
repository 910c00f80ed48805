"""The exit-code rule (geneface/errors.py) on a table of bad inputs a new user would try.

Every row: the exit code, a fragment of the one-line message, and never a traceback or an
"internal error" (those are for bugs only).
"""

import errno
import json
import pickle

import numpy as np
import pytest
import torch

from geneface.cli import main
from geneface.core.checkpoint import Checkpoint, save_checkpoint
from geneface.core.media import write_video, write_wav
from geneface.core.records import Audio
from geneface.errors import (CheckpointError, GenefaceError, MediaError, PipeClosedError, StageMismatchError,
                             Terminated, UsageError, exit_status)

from conftest import speechlike, talking_motion


def _landmarks(tmp, fps):
    np.savez(tmp / "lm.npz", landmarks=talking_motion(10).landmarks, fps=np.float32(fps))
    return ["run", _sketch_spec(tmp, "motion: lm.npz"), "-q"]


def _sketch_spec(tmp, inputs):
    spec = tmp / "sketch.yaml"
    spec.write_text(f"input: {{{inputs}}}\nstages: {{renderer: {{plugin: landmark_sketch, config: {{size: 64}}}}}}\noutput: out.mp4\n")
    return spec


def _enc(tmp, audio_name):
    spec = tmp / "enc.yaml"
    spec.write_text(f"input: {{audio: {audio_name}}}\nstages: {{audio_encoder: mel}}\noutput: feats.npz\n")
    return ["run", spec, "-q"]


def _audio_file(tmp, name, maker):
    maker(tmp / name)
    return _enc(tmp, name)


def _video(path, audio=True, frames=5):
    write_video(path, [np.full((32, 32, 3), 90, np.uint8)] * frames,
                audio=Audio(speechlike(frames / 25), 16000) if audio else None)


def _truncated(path):
    _video(path.with_name("full.mp4"), frames=25)
    path.write_bytes(path.with_name("full.mp4").read_bytes()[:2000])


def _ckpt_spec(tmp, make):
    make(tmp / "m.safetensors")
    spec = tmp / "a2m.yaml"
    spec.write_text("input: {audio: speech.wav}\nstages:\n  audio_encoder: mel\n"
                    "  motion_generator: {plugin: vae, checkpoint: m.safetensors}\noutput: motion.npz\n")
    write_wav(tmp / "speech.wav", Audio(speechlike(1.0), 16000))
    return ["validate", spec]


def _ckpt(kind="motion_generator", plugin="vae", value=0.0, config=None):
    def make(path):
        save_checkpoint(path, Checkpoint(kind, plugin, "0", config or {}, {"w": torch.full((3,), value)}))
    return make


def _torch_save(path):
    torch.save({"w": torch.zeros(3)}, path)


def _bare_pickle(path):
    path.write_bytes(pickle.dumps({"w": [0.0]}))


def _folder_input(tmp):
    (tmp / "dir.wav").mkdir()
    return _enc(tmp, "dir.wav")


def _folder_spec(tmp):
    (tmp / "s.yaml").mkdir()
    return ["run", tmp / "s.yaml"]


def _output_under_a_file(tmp):
    write_wav(tmp / "speech.wav", Audio(speechlike(1.0), 16000))
    return [*_enc(tmp, "speech.wav"), "-o", tmp / "speech.wav" / "x.npz"]


def _process_silent_video(tmp):
    _video(tmp / "v.mp4", audio=False)
    return ["process", tmp / "v.mp4", "-o", tmp / "ds", "--size", "64"]


def _manifest(tmp, drop):
    folder = tmp / "ds"
    folder.mkdir()
    manifest = {"format": "geneface-dataset", "version": 1, "complete": True, "n_frames": 6, "fps": 25,
                "crop": {"size": 64}, "splits": {"train": [0, 5], "val": [5, 6]}, "source": {"name": "x"}}
    manifest.pop(drop)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


CASES = {
    # inputs of a pipeline run
    "landmarks with NaN fps": (lambda t: _landmarks(t, np.nan), 2, "'fps' must be a positive number"),
    "landmarks at 30 fps": (lambda t: _landmarks(t, 30), 2, "expects motion at 25 fps, got 30 fps"),
    "landmarks with zero fps": (lambda t: _landmarks(t, 0), 2, "'fps' must be a positive number"),
    "zero-length audio": (lambda t: _audio_file(t, "e.wav", lambda p: write_wav(p, Audio(np.zeros(0, np.float32), 16000))), 2, "zero length"),
    "not media": (lambda t: _audio_file(t, "junk.wav", lambda p: p.write_bytes(b"RIFF" + bytes(200))), 2, "cannot open as media"),
    "video without an audio track": (lambda t: _audio_file(t, "v.mp4", lambda p: _video(p, audio=False)), 2, "has no audio stream"),
    "truncated mp4": (lambda t: _audio_file(t, "cut.mp4", _truncated), 2, "cut.mp4"),
    "input is a folder": (_folder_input, 2, "no such file"),
    "spec is a folder": (_folder_spec, 2, "no such spec file"),
    "unwritable output": (_output_under_a_file, 2, "is a file, not a folder"),
    # checkpoints, through `validate`
    "NaN weights": (lambda t: _ckpt_spec(t, _ckpt(value=float("nan"))), 2, "tensor 'w' holds NaN"),
    "torch.save pickle": (lambda t: _ckpt_spec(t, _torch_save), 2, "pickles are refused"),
    "bare pickle": (lambda t: _ckpt_spec(t, _bare_pickle), 2, "pickles are refused"),
    "wrong kind": (lambda t: _ckpt_spec(t, _ckpt("renderer", "landmark_sketch")), 2, "holds a renderer"),
    "wrong plugin": (lambda t: _ckpt_spec(t, _ckpt(plugin="other")), 2, "saved by plugin 'other'"),
    "unknown config key in checkpoint": (lambda t: _ckpt_spec(t, _ckpt(config={"hiden": 3})), 2, "stages.motion_generator.config"),
    # datasets
    "manifest without n_frames": (lambda t: ["dataset", "info", _manifest(t, "n_frames")], 2, "no 'n_frames' key"),
    "manifest without splits": (lambda t: ["dataset", "info", _manifest(t, "splits")], 2, "no 'splits' key"),
    "video without audio for process": (_process_silent_video, 2, "--no-audio"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exit_codes(name, tmp_path, monkeypatch, capsys):
    make, want_code, fragment = CASES[name]
    monkeypatch.chdir(tmp_path)
    args = [str(a) for a in make(tmp_path)]
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    assert code == want_code, err
    assert fragment in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err


def test_validate_refuses_wrong_kind_and_pickle_checkpoints(tmp_path, capsys):
    for make, fragment in ((_ckpt("renderer", "landmark_sketch"), "not a motion_generator"),
                           (_torch_save, "pickle"), (_bare_pickle, "pickle")):
        args = _ckpt_spec(tmp_path, make)
        assert main([str(a) for a in args]) == 2
        err = capsys.readouterr().err
        assert "stages.motion_generator.checkpoint" in err and fragment in err, err
    args = _ckpt_spec(tmp_path, _ckpt())  # the right kind and plugin, no weights the VAE needs
    assert main([str(a) for a in args]) == 0, capsys.readouterr().err


def test_the_rule_itself():
    assert exit_status(UsageError("x")) == (2, "x")
    assert exit_status(MediaError("x"))[0] == exit_status(CheckpointError("x"))[0] == 2
    assert exit_status(StageMismatchError("x"))[0] == 2
    assert exit_status(GenefaceError("some clips failed")) == (1, "some clips failed")
    assert exit_status(KeyboardInterrupt()) == (130, "interrupted")
    assert exit_status(Terminated()) == (143, "terminated (SIGTERM)")  # SIGTERM unwinds as Ctrl-C does
    assert exit_status(PipeClosedError("--raw -: closed")) == (141, "--raw -: closed")
    full = OSError(errno.ENOSPC, "No space left on device", "out.mp4")
    assert exit_status(full) == (1, "out.mp4: No space left on device")
    assert exit_status(ValueError("a bug")) == (1, None)  # reported as an internal error
    assert exit_status(KeyError("a bug")) == (1, None)


def test_bench_generic_refuses_a_wrong_kind_of_checkpoint_before_any_work(tmp_path, capsys, monkeypatch):
    import geneface.app.motion_figures as figures
    from geneface.core.checkpoint import stage_checkpoint
    from geneface.registry import get_registry

    def boom(*_a, **_k):
        raise AssertionError("the clips were read before the checkpoints were checked")

    monkeypatch.setattr(figures, "load_clips", boom)
    entry = get_registry().get("syncnet", "syncnet")
    syncnet = tmp_path / "syncnet.safetensors"
    save_checkpoint(syncnet, stage_checkpoint(entry.cls(entry.cls.Config(channels=(8, 8, 8), embed=8))))
    renderer = tmp_path / "renderer.safetensors"
    _ckpt(kind="renderer", plugin="hashgrid_nerf")(renderer)
    code = main(["bench", "generic", "--data", str(tmp_path), "--syncnet", str(syncnet), "--vae", str(renderer)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: --vae: {renderer}: holds a renderer"), err
