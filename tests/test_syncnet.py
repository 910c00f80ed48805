"""SyncNet: windows, negatives, training through the CLI, scoring and offset search, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.toy import register_toy_encoder, toy_corpus, toy_datasets, train_toy_syncnet, write_toy_dataset

from geneface.cli import main
from geneface.core.checkpoint import read_checkpoint
from geneface.core.records import AudioFeatures, Motion
from geneface.errors import StageMismatchError, UsageError
from geneface.models.syncnet import A_FRAMES, V_FRAMES, LandmarkSyncNet, audio_windows, mouth_windows
from geneface.plugins.syncnet import SyncNet, SyncNetConfig
from geneface.training.data import split_by_speaker
from geneface.training.syncnet_task import PairSampler, SyncNetTrainConfig


@pytest.fixture(autouse=True)
def _toy_encoder():
    register_toy_encoder()  # `--encoder toy` names the toy corpus's stored features


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "toy_audio2motion"


@pytest.fixture(scope="session")
def trained(toy_root):
    ckpt = read_checkpoint(train_toy_syncnet(toy_root), expect_kind="syncnet", expect_plugin="syncnet")
    stage = SyncNet(SyncNetConfig(**{**ckpt.config, "channels": tuple(ckpt.config["channels"])}))
    stage.load_checkpoint(ckpt)
    return stage


def test_windows_line_up():
    mouth = torch.arange(12 * 60, dtype=torch.float32).reshape(12, 60)
    audio = torch.arange(24 * 3, dtype=torch.float32).reshape(24, 3)
    mw, aw = mouth_windows(mouth), audio_windows(audio)
    assert mw.shape == (8, V_FRAMES, 60) and aw.shape == (8, A_FRAMES, 3)
    assert torch.equal(mw[3], mouth[3:8]) and torch.equal(aw[3], audio[6:16])


def test_any_feature_width():
    for width in (16, 80, 1024):
        net = LandmarkSyncNet(width, channels=(8, 16, 32), embed=16).eval()
        p = net(torch.randn(4, V_FRAMES, 60), torch.randn(4, A_FRAMES, width))
        assert p.shape == (4,) and bool(((p >= 0) & (p <= 1 + 1e-6)).all())


def test_three_kinds_of_negatives():
    clips = toy_corpus(3, 2, 80, 8)
    cfg = SyncNetTrainConfig()
    sampler = PairSampler(clips, cfg)
    rng = np.random.default_rng(0)
    pairs = [sampler.draw(rng) for _ in range(4000)]
    kinds = {k: [p for p in pairs if p.kind == k] for k in ("positive", "other_speaker", "far", "shift")}
    assert abs(len(kinds["positive"]) / 4000 - 0.5) < 0.03
    negatives = 4000 - len(kinds["positive"])
    assert abs(len(kinds["other_speaker"]) / negatives - 0.25) < 0.04
    for p in kinds["positive"]:
        assert (p.audio_clip, p.audio_t, p.label) == (p.clip, p.t, 1)
    for p in kinds["other_speaker"]:
        assert clips[p.audio_clip].speaker != clips[p.clip].speaker and p.label == 0
    for p in kinds["far"]:
        assert p.audio_clip == p.clip and abs(p.audio_t - p.t) >= cfg.far_min
    for p in kinds["shift"]:
        assert p.audio_clip == p.clip and 2 <= abs(p.audio_t - p.t) <= 5
    batch = sampler.tensors(pairs[:16])
    assert batch.mouth.shape == (16, 5, 60) and batch.audio.shape == (16, 10, 8) and batch.label.shape == (16,)


def test_split_by_speaker_holds_out_whole_speakers():
    clips = toy_corpus(5, 2, 40, 4)
    split = split_by_speaker(clips, seed=3)
    assert split.val and {c.speaker for c in split.train}.isdisjoint({c.speaker for c in split.val})
    assert split_by_speaker(clips, seed=3).val_speakers == split.val_speakers
    with pytest.raises(UsageError, match="not in the data"):
        split_by_speaker(clips, ["nobody"])


def test_trained_syncnet_judges_pairs_and_offsets(trained, toy_root):
    ckpt = read_checkpoint(toy_root / "syncnet" / "model.safetensors")
    assert ckpt.meta["encoder"] == "toy" and ckpt.meta["data"]["val_speakers"] == ["spk1"]
    # Held-out speaker (spk1), fresh clips never seen in training.
    held_out = [c for c in toy_corpus(5, 3, 150, 16, seed=7) if c.speaker == "spk1"]
    sampler = PairSampler(held_out, SyncNetTrainConfig())
    rng = np.random.default_rng(1)
    pairs = [sampler.draw(rng) for _ in range(600)]
    batch = sampler.tensors(pairs)
    with torch.no_grad():
        prob = trained.sync_probability(batch.mouth, batch.audio)
    acc = float(((prob > 0.5).float() == batch.label).float().mean())
    assert acc > 0.7, acc
    # Offset search: shift the audio by k frames; the judge must find k within one frame.
    hits = 0
    for clip in held_out:
        for k in (-4, -2, 0, 3):
            feats = np.roll(clip.features, 2 * k, axis=0)
            motion = Motion(clip.denormalized(), mean=clip.mean, std=clip.std)
            result = trained.score(motion, AudioFeatures(feats, encoder="toy"), max_offset=8)
            hits += abs(result.offset - k) <= 1
            assert result.offsets == tuple(range(-8, 9)) and len(result.curve) == 17
    assert hits >= 10, hits  # of 12


def test_confidence_higher_in_sync(trained):
    clip = [c for c in toy_corpus(5, 1, 200, 16, seed=11) if c.speaker == "spk1"][0]
    motion = Motion(clip.denormalized(), mean=clip.mean, std=clip.std)
    synced = trained.score(motion, AudioFeatures(clip.features, encoder="toy"))
    shifted = trained.score(motion, AudioFeatures(np.roll(clip.features, 8, axis=0), encoder="toy"))
    assert synced.confidence > shifted.confidence


def test_score_bad_input(trained):
    motion = Motion(np.zeros((20, 68, 3)) + np.random.default_rng(0).normal(size=(20, 68, 3)))
    with pytest.raises(StageMismatchError, match="16 wide"):
        trained.score(motion, AudioFeatures(np.zeros((40, 80)), encoder="mel"))
    with pytest.raises(StageMismatchError, match="'toy'"):
        trained.score(motion, AudioFeatures(np.zeros((40, 16)), encoder="other"))
    with pytest.raises(UsageError, match="at least 5 video frames"):
        trained.score(motion.with_landmarks(motion.landmarks[:4]), AudioFeatures(np.zeros((8, 16)), encoder="toy"))


def test_train_syncnet_cli_errors(tmp_path, capsys):
    clip = toy_corpus(1, 1, 40, 8)[0]
    write_toy_dataset(tmp_path / "nofeat", clip, features=False)
    code = main(["train", "syncnet", "--data", str(tmp_path / "nofeat"), "--out", str(tmp_path / "o"), "--encoder", "toy"])
    err = capsys.readouterr().err
    assert code == 2 and "no 'toy' audio features" in err
    code = main(["train", "syncnet", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert code == 2 and "no such dataset" in capsys.readouterr().err
    write_toy_dataset(tmp_path / "nan", clip)
    feats = np.load(tmp_path / "nan" / "audio_features" / "toy.npy")
    feats[3, 2] = np.nan
    np.save(tmp_path / "nan" / "audio_features" / "toy.npy", feats)
    code = main(["train", "syncnet", "--data", str(tmp_path / "nan"), "--out", str(tmp_path / "o"), "--encoder", "toy"])
    assert code == 2 and "NaN" in capsys.readouterr().err
    toy_datasets(tmp_path / "a", 2, 1, 40, 8)
    toy_datasets(tmp_path / "b", 2, 1, 40, 12, seed=1)
    code = main(["train", "syncnet", "--data", str(tmp_path / "a"), "--data", str(tmp_path / "b"),
                 "--out", str(tmp_path / "o"), "--encoder", "toy"])
    assert code == 2 and "different widths" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("model: {chanels: [8, 8, 8]}\n")
    code = main(["train", "syncnet", "--data", str(tmp_path / "a"), "--out", str(tmp_path / "o"), "--encoder", "toy",
                 "--config", str(tmp_path / "bad.yaml")])
    assert code == 2 and "did you mean 'channels'" in capsys.readouterr().err


def test_one_speaker_validates_on_clip_tails(capsys):
    clips = toy_corpus(1, 2, 50, 4)
    split = split_by_speaker(clips)
    assert "one speaker only" in capsys.readouterr().err
    assert [c.n_frames for c in split.train] == [45, 45] and [c.n_frames for c in split.val] == [5, 5]
    assert np.array_equal(split.val[0].features, clips[0].features[90:100])
