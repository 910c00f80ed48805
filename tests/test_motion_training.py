"""Audio-to-motion training on real-corpus layouts: nested corpora, who speaks, speaker-balanced
windows, per-utterance normalisation, the amplitude term, and fine-tuning on one person."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.toy import TINY_VAE_YAML, register_toy_encoder, toy_clip, toy_person, train_toy_syncnet, train_toy_vae, write_toy_dataset

from geneface.cli import main
from geneface.core.checkpoint import read_checkpoint
from geneface.core.dataset import held_out_start
from geneface.core.features import utterance_normalize
from geneface.training.data import clip_weights, dataset_folders, speaker_of


def test_speaker_rule():
    assert speaker_of({"speaker": "ann"}, Path("c/x")) == "ann"
    # SPEAKER/CLIP below the corpus root (LRS3, VoxCeleb2, our grid_s1/)
    assert speaker_of({"source": {"name": "bbaf3s.mp4"}}, Path("/c/grid_s1/bbaf3s"), Path("/c")) == "grid_s1"
    # numbered takes of one person are one speaker; other names stay whole
    assert speaker_of({"source": {"name": "styletalk__Obama_clip2.mp4"}}, Path("/c/o"), Path("/c")) == "styletalk__Obama"
    assert speaker_of({"source": {"name": "feifeili_clip2_short.mp4"}}, Path("/c/f"), Path("/c")) == "feifeili"
    assert speaker_of({"source": {"name": "RD_Radio2_000.mp4"}}, Path("/c/r"), Path("/c")) == "RD_Radio2_000"


def test_nested_corpus_is_found(tmp_path):
    for i, rel in enumerate(["a/one", "a/two", "flat", "b/deep/three"]):
        write_toy_dataset(tmp_path / rel, toy_clip(rel, i, 40, 8, i))
    found = [p.relative_to(tmp_path).as_posix() for p in dataset_folders(tmp_path)]
    assert found == ["a/one", "a/two", "b/deep/three", "flat"]


def test_speaker_balanced_weights():
    # one speaker with ten long clips (GRID's s1), three with one short clip each
    clips = [toy_clip(f"g{i}", 0, 100, 8, i) for i in range(10)] + [toy_clip(f"o{i}", i + 1, 40, 8, 50 + i) for i in range(3)]
    by_speaker = lambda p: {s: float(sum(w for c, w in zip(clips, p) if c.speaker == s)) for s in ("spk0", "spk1")}  # noqa: E731
    window = by_speaker(clip_weights(clips, 32, "window"))
    balanced = by_speaker(clip_weights(clips, 32, "speaker"))
    assert window["spk0"] > 0.9  # 10 x 69 windows against 3 x 9
    assert balanced["spk0"] == pytest.approx(0.25) and balanced["spk1"] == pytest.approx(0.25)
    # a clip shorter than the window is never drawn
    assert clip_weights([toy_clip("s", 0, 20, 8, 0), clips[0]], 32)[0] == 0


def test_utterance_normalisation():
    rng = np.random.default_rng(0)
    v = rng.normal(3.0, 5.0, (200, 4)).astype(np.float32)
    v[:, 3] = 2.0  # a channel that never moves is only centred
    out = utterance_normalize(v)
    assert np.allclose(out[:, :3].mean(0), 0, atol=1e-5) and np.allclose(out[:, :3].std(0), 1, atol=1e-4)
    assert np.allclose(out[:, 3], 0)
    # a louder recording of the same utterance gives the same features
    assert np.allclose(utterance_normalize(v[:, :3] * 2 + 7), out[:, :3], atol=1e-4)


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "toy_audio2motion"  # the toy models test_postnet trains too


def _weights(path: Path) -> dict:
    return read_checkpoint(path).state


def test_fine_tuning_reads_the_training_frames_only(toy_root, tmp_path):
    register_toy_encoder()
    vae, syncnet = train_toy_vae(toy_root), train_toy_syncnet(toy_root)
    person = toy_person(tmp_path / "person")
    # The same person with other held-out frames (landmarks and features after the 1/11 cut).
    changed = tmp_path / "changed"
    clip = toy_clip("person", 9, 330, 16, 7, 1.5, 1.0)
    cut = held_out_start(clip.n_frames)
    other = toy_clip("other", 9, 330, 16, 99, 3.0, -1.0)
    lm = clip.landmarks.copy()
    lm[cut:] = other.landmarks[cut:]
    ft = clip.features.copy()
    ft[2 * cut:] = other.features[2 * cut:]
    import attrs

    write_toy_dataset(changed, attrs.evolve(clip, landmarks=lm, features=ft))
    (tmp_path / "ft.yaml").write_text(TINY_VAE_YAML)
    outs = []
    for name, data in (("a", person), ("b", changed)):
        out = tmp_path / name
        code = main(["train", "audio2motion", "--init", str(vae), "--person", str(data), "--syncnet", str(syncnet),
                     "--out", str(out), "--config", str(tmp_path / "ft.yaml"), "--steps", "30", "--quiet",
                     "--threads", "1"])
        assert code == 0
        outs.append(out)
    a, b = _weights(outs[0] / "last.safetensors"), _weights(outs[1] / "last.safetensors")
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)  # the held-out frames changed nothing
    start = _weights(vae)
    assert any(not np.array_equal(a[k].numpy(), start[k].numpy()) for k in a)  # and it did train
    run = json.loads((outs[0] / "run.json").read_text())
    info = run["data"] if "data" in run else run
    text = json.dumps(info)
    assert '"held_out_frames_unread": 30' in text and f'"train_frames": ' in text


def test_fine_tuning_errors(toy_root, tmp_path, capsys):
    register_toy_encoder()
    vae, syncnet = train_toy_vae(toy_root), train_toy_syncnet(toy_root)
    person = toy_person(tmp_path / "person")
    code = main(["train", "audio2motion", "--person", str(person), "--syncnet", str(syncnet), "--out", str(tmp_path / "o")])
    assert code == 2 and "--init" in capsys.readouterr().err
    code = main(["train", "audio2motion", "--init", str(syncnet), "--person", str(person), "--syncnet", str(syncnet),
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "not a motion_generator" in err and err.count("\n") == 1
    code = main(["train", "audio2motion", "--syncnet", str(syncnet), "--out", str(tmp_path / "o"), "--balance", "x",
                 "--data", str(person), "--encoder", "toy"])
    assert code == 2 and "--balance" in capsys.readouterr().err


def test_amplitude_term_and_tempo_train(toy_root, tmp_path):
    register_toy_encoder()
    syncnet = train_toy_syncnet(toy_root)
    (tmp_path / "amp.yaml").write_text(TINY_VAE_YAML.replace("task: {segment: 32, val_clips: 4}",
                                                             "task: {segment: 32, val_clips: 4, w_amplitude: 1.0, tempo: 0.15}"))
    code = main(["train", "audio2motion", "--data", str(toy_root / "data"), "--syncnet", str(syncnet), "--encoder", "toy",
                 "--out", str(tmp_path / "o"), "--config", str(tmp_path / "amp.yaml"), "--steps", "20", "--quiet",
                 "--val-speakers", "spk1", "--threads", "1", "--val-every", "20"])
    assert code == 0
    header = (tmp_path / "o" / "metrics.csv").read_text()
    assert "amplitude" in header and "mouth_amplitude" in header
