"""The corpus index (`corpus_index.npz`) and what training makes of it: the same clips as
walking the folders, arrays read lazily, speaker- and length-balanced draws."""

from __future__ import annotations

import shutil
from pathlib import Path

import attrs
import numpy as np
import pytest
from test_process_media import astronaut_frames, speech, write_clip

from geneface.cli import main
from geneface.core import corpus_index as ci
from geneface.core.dataset import FLAG_FAILED, Dataset, DatasetError
from geneface.plugins.mel import MelEncoder
from geneface.training import data
from geneface.training.lazy_clips import LazyClip, LazyRows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three processed clips of two speakers (offset taken as it is: the clips are short)."""
    root = tmp_path_factory.mktemp("idx")
    src = root / "in"
    (src / "ann").mkdir(parents=True)
    (src / "bob").mkdir()
    write_clip(src / "ann" / "one.mp4", astronaut_frames(40), speech(1.6))
    write_clip(src / "ann" / "two.mp4", astronaut_frames(30, seed=2), speech(1.2))
    write_clip(src / "bob" / "three.mp4", astronaut_frames(36, seed=3), speech(1.44))
    out = root / "out"
    assert main(["process-corpus", str(src), str(out), "--workers", "2", "--size", "64", "--min-face", "20",
                 "--av-offset", "0", "--quiet"]) == 0
    return out


def _with_failed_frames(corpus: Path, tmp_path: Path) -> Path:
    """A copy of the corpus where frames 10-14 of ann/one failed tracking."""
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    file = copy / "ann" / "one" / "tracking.npz"
    with np.load(file) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["flags"][10:15] |= FLAG_FAILED
    np.savez(file, **arrays)
    assert main(["dataset", "index", str(copy), "--quiet", "--overwrite"]) == 0
    return copy


def test_process_corpus_writes_the_index_that_dataset_index_rebuilds(corpus, tmp_path, capsys):
    index = ci.read_index(corpus)
    assert index.dataset.tolist() == ["ann/one", "ann/two", "bob/three"]
    assert index.speaker.tolist() == ["ann", "ann", "bob"]
    for i in range(len(index)):
        ds = Dataset(corpus / index.dataset[i])
        e = index.entry(i)
        assert e.n_frames == ds.n_frames and e.segments == ((0, ds.n_frames),) and e.failed_frames == 0
        assert dict(e.features) == {"mel": 80} and e.size == 64 and e.av_offset == 0 and not e.skip_training
        assert e.av_status == ds.manifest["av_offset"]["status"]
        mean, std = ds.landmark_stats()
        assert np.array_equal(e.mean, mean) and np.array_equal(e.std, std)
    copy = tmp_path / "c"
    shutil.copytree(corpus, copy)
    (copy / ci.INDEX).unlink()
    assert main(["dataset", "index", str(copy), "--quiet"]) == 0
    assert "3 datasets, 2 speakers, 106 frames, 0 flagged" in capsys.readouterr().out
    assert (copy / ci.INDEX).read_bytes() == (corpus / ci.INDEX).read_bytes()
    assert main(["dataset", "index", str(copy), "--quiet"]) == 2  # an index that exists: --overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_a_damaged_or_foreign_index_is_one_line_naming_the_file(tmp_path, capsys):
    (tmp_path / ci.INDEX).write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=f"{tmp_path / ci.INDEX}: missing or unreadable corpus index"):
        ci.read_index(tmp_path)
    np.savez(tmp_path / ci.INDEX, x=np.zeros(3))
    with pytest.raises(DatasetError, match="not a geneface corpus index"):
        ci.read_index(tmp_path)
    assert main(["dataset", "index", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_a_cut_off_index_is_one_line_naming_the_file_for_training_too(corpus, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    whole = (copy / ci.INDEX).read_bytes()
    for keep in (len(whole) // 2, len(whole) - 10, 100):
        (copy / ci.INDEX).write_bytes(whole[:keep])
        with pytest.raises(DatasetError, match=f"{copy / ci.INDEX}: missing or unreadable corpus index"):
            ci.read_index(copy)
    capsys.readouterr()
    assert main(["train", "syncnet", "--data", str(copy), "--out", str(tmp_path / "run"), "--steps", "1",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"error: {copy / ci.INDEX}: missing or unreadable corpus index" in err and "internal error" not in err
    assert not (tmp_path / "run").exists()


def test_training_reads_the_index_and_gets_the_walked_clips(corpus, tmp_path, monkeypatch):
    copy = _with_failed_frames(corpus, tmp_path)
    enc = MelEncoder()
    walked = data._walked_clips(data.dataset_folders(copy), copy, enc, 5)
    assert [c.name for c in walked] == ["one", "one:15", "two", "three"]  # cut where tracking failed
    eager = data.read_dataset_clips(copy, enc)
    # Lazy: no dataset is opened to list the clips (the index says it all)...
    monkeypatch.setattr(Dataset, "__init__", lambda *a: (_ for _ in ()).throw(AssertionError("opened a dataset")))
    lazy = data.read_dataset_clips(copy, enc, lazy=True)
    monkeypatch.undo()
    assert all(isinstance(c, LazyClip) for c in lazy)
    for w, e, z in zip(walked, eager, lazy, strict=True):
        assert w.name == e.name == z.name and w.speaker == e.speaker == z.speaker and w.n_frames == z.n_frames
        assert np.array_equal(w.landmarks, e.landmarks) and np.array_equal(w.features, e.features)
        # ...and its arrays, read on demand, are the walked ones bit for bit, however sliced.
        assert np.array_equal(w.landmarks, np.asarray(z.landmarks)) and np.array_equal(w.features, np.asarray(z.features))
        assert np.array_equal(w.landmarks[3:9, 48 * 3:], z.landmarks[3:9, 48 * 3:])
        assert np.array_equal(w.features[4:10], z.features[4:10]) and np.array_equal(w.landmarks[-1], z.landmarks[-1])
        np.testing.assert_allclose(w.denormalized(), z.denormalized(), atol=1e-6)
        assert np.array_equal(w.piece(2, 7).landmarks, np.asarray(z.piece(2, 7).landmarks))


def test_lazy_rows_read_only_what_is_asked(tmp_path):
    values = np.arange(60, dtype=np.float32).reshape(20, 3)
    np.save(tmp_path / "a.npy", values)
    rows = LazyRows(str(tmp_path / "a.npy"), 5, 15, 3)
    assert rows.shape == (10, 3) and len(rows) == 10
    assert np.array_equal(rows[2:4], values[7:9]) and np.array_equal(rows[:, 1], values[5:15, 1])
    assert np.array_equal(np.asarray(rows), values[5:15]) and rows[-1].tolist() == values[14].tolist()
    with pytest.raises(DatasetError, match="rows 5-25 asked for, it has 20"):
        LazyRows(str(tmp_path / "a.npy"), 5, 25, 3)[:]
    (tmp_path / "a.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:200])
    with pytest.raises(DatasetError, match="truncated"):
        LazyRows(str(tmp_path / "a.npy"), 0, 20, 3)[:]


def test_a_lazy_corpus_trains_syncnet(corpus, tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text("train: {batch_size: 8, val_every: 10, ckpt_every: 10, log_every: 5}\n"
                      "model: {channels: [8, 16, 16], embed: 16}\ntask: {val_pairs: 16, val_offset_clips: 1}\n")
    assert main(["train", "syncnet", "--data", str(corpus), "--out", str(out), "--config", str(config),
                 "--steps", "10", "--val-speakers", "bob", "--balance", "speaker-length", "--threads", "1",
                 "--quiet"]) == 0
    assert (out / "model.safetensors").exists()


@attrs.frozen
class _C:
    speaker: str
    n_frames: int


def test_speaker_and_length_balance():
    clips = [_C("a", 200)] + [_C("a", 20)] * 9 + [_C("b", 50)] * 3
    window = data.clip_weights(clips, 10, "window")
    speaker = data.clip_weights(clips, 10, "speaker")
    length = data.clip_weights(clips, 10, "speaker-length")
    assert window[:10].sum() > 0.6  # the long-recorded speaker dominates by frames
    assert speaker[:10].sum() == pytest.approx(0.5) and length[:10].sum() == pytest.approx(0.5)
    # speaker a's one long clip: 191 of its 290 windows by frames; half of its vote by length
    assert speaker[0] == pytest.approx(0.5 * 191 / 290) and length[0] == pytest.approx(0.25)
    with pytest.raises(Exception, match="balance must be one of"):
        data.clip_weights(clips, 10, "nope")


def test_clip_draw_equals_numpy_choice_and_stays_fast():
    p = np.random.default_rng(1).random(100_000)
    p /= p.sum()
    draw = data.ClipDraw(p)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    assert [draw(r1) for _ in range(200)] == [int(r2.choice(len(p), p=p)) for _ in range(200)]


def test_dataset_av_offset_rebuilds_the_index_whose_flags_it_changes(corpus, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    assert not ci.read_index(copy).skip_training.any()  # processed with --av-offset 0
    assert main(["dataset", "av-offset", str(copy)]) == 0  # auto: too short to tell, so flagged
    assert f"{copy}: corpus index rebuilt" in capsys.readouterr().out
    assert ci.read_index(copy).skip_training.all()
