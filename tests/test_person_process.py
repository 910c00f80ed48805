"""`geneface process CLIP [CLIP ...] -o PERSON` (geneface.processing.person_process): several clips
into one person through the corpus pool, resumed, refused when a clip fails or shows another
person (geneface.processing.identity); `dataset info` and `dataset subset` on the person.

The synthetic subject's three clips (tests/support/people.py) are processed once at 64 px; the
other tests copy that person and run with --resume, so only the clips they change are processed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from geneface.cli import main
from geneface.core.dataset import Dataset, DatasetError
from geneface.core.person import PersonDataset, missing_files, open_dataset, require_files
from geneface.processing import identity as ident
from geneface.processing.person_process import clip_names, is_person_input, read_clip_list
from geneface.errors import UsageError
from tests.support.people import clip_videos, person_from_clips

SMALL = ["--size", "64", "--min-face", "20", "-q"]


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("people")


@pytest.fixture(scope="module")
def person(root):
    return person_from_clips(root)


@pytest.fixture(scope="module")
def videos(root, person):
    return clip_videos(root)


def copy_person(person: Path, to: Path) -> Path:
    shutil.copytree(person, to)
    return to


def test_several_clips_make_one_person(person, videos, capsys):
    ds = open_dataset(person)
    assert isinstance(ds, PersonDataset) and [c.name for c in ds.clips] == ["clip0", "clip1", "clip2"]
    m = json.loads((person / "manifest.json").read_text())
    assert m["held_out_clips"] == ["clip2"] and m["settings"]["size"] == 64
    # each clip is an ordinary dataset of its own video, in PERSON/clips/NAME
    for c, video in zip(ds.clips, videos):
        assert c.path == (person / "clips" / c.name).resolve()
        assert Dataset(c.path).manifest["source"]["name"] == video.name
    # the identity distances of every clip, all under the threshold
    distances = m["identity"]["distances"]
    assert set(distances) == {"clip0", "clip1", "clip2"} and m["identity"]["flagged"] == []
    assert all(0 < d < ident.THRESHOLD for d in distances.values())
    assert m["identity"]["threshold"] == ident.THRESHOLD
    # an existing person is refused without --resume or --overwrite, saying both
    code, _, err = run(capsys, "process", *videos, "-o", person, *SMALL)
    assert code == 2 and "already exists" in err and "--resume" in err and "--overwrite" in err


def test_only_a_person_is_continued_or_replaced(videos, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for flag in ("--resume", "--overwrite"):
        code, _, err = run(capsys, "process", *videos, "-o", mine, flag, *SMALL)
        assert code == 2 and "not" in err and "this command" in err, err
    assert (mine / "notes.txt").read_text() == "keep me"
    code, _, err = run(capsys, "process", *videos, "-o", tmp_path / "p", "--identity", "maybe", *SMALL)
    assert code == 2 and "--identity must be one of refuse, warn" in err and not (tmp_path / "p").exists()


def test_dataset_info_shows_the_clips_identity_and_usable_minutes(person, capsys):
    code, out, _ = run(capsys, "dataset", "info", person)
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  clip")}
    assert set(rows) == {"clip0", "clip1", "clip2"}
    assert "held out" in rows["clip2"] and "held out" not in rows["clip0"] and "clip0.mp4" in rows["clip0"]
    assert "identity 0.0" in rows["clip1"] and "failed 0" in rows["clip1"]
    ds = open_dataset(person)
    train_min = len(ds.training_frames()) / 25 / 60
    assert f"usable video: {train_min:.2f} min to train on" in out
    assert "warning: under 1 minute of training video" in out and "docs/person_length.md" in out
    code, out, _ = run(capsys, "dataset", "info", person, "--json")
    info = json.loads(out)
    assert code == 0 and [c["name"] for c in info["clips"]] == ["clip0", "clip1", "clip2"]
    assert [c["held_out"] for c in info["clips"]] == [False, False, True]
    assert info["usable_minutes"]["training"] == pytest.approx(train_min, abs=1e-3)
    assert info["usable_minutes"]["held_out"] == pytest.approx(len(ds.held_out_frames()) / 1500, abs=1e-3)
    assert info["length_advice"].startswith("under 1 minute") and set(info["identity"]["distances"]) == {
        "clip0", "clip1", "clip2"}


def test_missing_files_of_a_person_are_its_clips(person, tmp_path, capsys):
    copy = copy_person(person, tmp_path / "p")
    assert missing_files(copy) == []
    (copy / "clips" / "clip1" / "masks" / "000003.png").unlink()
    assert missing_files(copy) == ["clips/clip1/masks/: 1 of 50 missing, first 000003.png"]
    with pytest.raises(DatasetError, match="clip1/masks"):
        require_files(copy)
    code, _, err = run(capsys, "dataset", "info", copy)
    assert code == 2 and "clips/clip1/masks" in err


def test_a_failed_clip_is_named_no_person_is_written_and_resume_finishes(person, videos, tmp_path, capsys):
    # a run killed after two clips: the third clip's folder is gone, no manifest
    copy = copy_person(person, tmp_path / "p")
    (copy / "manifest.json").unlink()
    shutil.rmtree(copy / "clips" / "clip1")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    code, out, err = run(capsys, "process", videos[0], videos[1], bad, videos[2], "-o", copy, "--resume", *SMALL)
    assert code == 1 and "broken" in err and "no person written" in err
    assert not (copy / "manifest.json").exists()
    assert Dataset(copy / "clips" / "clip1").n_frames == 50  # the good clip was processed all the same
    # the run again without the broken clip: nothing processed, the person written
    code, out, err = run(capsys, "process", *videos, "-o", copy, "--resume", *SMALL)
    assert code == 0 and "0 processed, 3 already done" in out, out + err
    assert open_dataset(copy).n_clips == 3


def test_a_folder_and_a_clip_list_are_inputs(person, videos, tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    for v in videos:
        shutil.copyfile(v, folder / v.name)
    copy = copy_person(person, tmp_path / "by_folder")
    (copy / "manifest.json").unlink()
    code, out, err = run(capsys, "process", folder, "-o", copy, "--resume", *SMALL)
    assert code == 0 and "0 processed, 3 already done" in out, out + err
    assert [c.name for c in open_dataset(copy).clips] == ["clip0", "clip1", "clip2"]
    # a list: comments, blank lines, paths relative to the list's folder; its order is the person's
    listing = tmp_path / "lists" / "clips.txt"
    listing.parent.mkdir()
    listing.write_text(f"# the person\n\n../videos/clip1.mp4\n  {folder / 'clip0.mp4'}\n# last: held out\n"
                       "../videos/clip2.mp4\n")
    copy = copy_person(person, tmp_path / "by_list")
    code, out, err = run(capsys, "process", listing, "-o", copy, "--resume", *SMALL)
    assert code == 0, out + err
    assert [c.name for c in open_dataset(copy).clips] == ["clip1", "clip0", "clip2"]
    listing.write_text("../videos/clip1.mp4\n../videos/nowhere.mp4\n")
    code, _, err = run(capsys, "process", listing, "-o", tmp_path / "other", *SMALL)
    assert code == 2 and "clips.txt:2: ../videos/nowhere.mp4: no such video file" in err


def test_another_person_is_refused_or_with_warn_flagged(person, videos, root, tmp_path, capsys):
    other = root / "other"
    if not (other / "video.mp4").exists():
        assert main(["synth", "-o", str(other), "--seconds", "2", "--size", "128", "--seed", "4",
                     "--face-width=-0.15", "--face-length=0.15", "-q"]) == 0
    stranger = tmp_path / "stranger.mp4"
    shutil.copyfile(other / "video.mp4", stranger)
    copy = copy_person(person, tmp_path / "p")
    code, out, err = run(capsys, "process", *videos, stranger, "-o", copy, "--resume", *SMALL)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1, err
    assert "clip 'stranger'" in lines[0] and f"> threshold {ident.THRESHOLD:.4f}" in lines[0]
    assert "--identity warn" in lines[0]
    assert not (copy / "manifest.json").exists()
    code, out, err = run(capsys, "process", *videos, stranger, "-o", copy, "--resume", "--identity", "warn", *SMALL)
    assert code == 0 and "warning: clip 'stranger' looks like another person" in err, out + err
    m = json.loads((copy / "manifest.json").read_text())
    assert m["identity"]["flagged"] == ["stranger"] and m["identity"]["mode"] == "warn"
    assert m["identity"]["distances"]["stranger"] > ident.THRESHOLD
    assert all(m["identity"]["distances"][f"clip{k}"] < ident.THRESHOLD for k in range(3))
    assert any("stranger" in w for w in m["warnings"])
    # the benchmark behind the threshold says the same of these clips
    import subprocess
    import sys

    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_identity.py"
    done = subprocess.run([sys.executable, str(bench), "--person", f"subject={copy}/clips/clip*",
                           "--person", f"stranger={copy}/clips/stranger"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["rule"]["subject"]["flagged"] == 0 and result["intruders"]["subject"]["caught"] == 1
    assert result["intruders"]["subject"]["rows"]["stranger"]["intruder"] == pytest.approx(
        m["identity"]["distances"]["stranger"], abs=1e-4)


def test_subset_keeps_the_held_out_clips(person, tmp_path, capsys):
    code, out, _ = run(capsys, "dataset", "subset", person, "-o", tmp_path / "one", "--train-clips", "1")
    assert code == 0 and "usable video" in out
    one = open_dataset(tmp_path / "one")
    full = open_dataset(person)
    assert [c.name for c in one.clips] == ["clip0", "clip2"]
    assert [c.path for c in one.clips] == [full.clips[0].path, full.clips[2].path]  # the same folders, not copies
    assert not (tmp_path / "one" / "clips").exists()
    assert json.loads((tmp_path / "one" / "manifest.json").read_text())["held_out_clips"] == ["clip2"]
    np.testing.assert_array_equal(one.frame(one.held_out_range()[0]), full.frame(full.held_out_range()[0]))
    assert len(one.held_out_frames()) == len(full.held_out_frames())
    # by minutes: as few first training clips as hold them (each clip 2 s)
    code, out, _ = run(capsys, "dataset", "subset", person, "-o", tmp_path / "m", "--train-minutes", str(2.5 / 60))
    assert code == 0 and [c.name for c in open_dataset(tmp_path / "m").clips] == ["clip0", "clip1", "clip2"]
    code, _, err = run(capsys, "dataset", "subset", person, "-o", tmp_path / "x", "--train-minutes", "5")
    assert code == 2 and "fewer than the 5 asked for" in err and not (tmp_path / "x").exists()
    code, _, err = run(capsys, "dataset", "subset", person, "-o", tmp_path / "y")
    assert code == 2 and "--train-minutes" in err


def test_one_video_is_one_dataset_and_says_its_usable_minutes(videos, tmp_path, capsys):
    code, out, _ = run(capsys, "process", videos[0], "-o", tmp_path / "one", *SMALL)
    assert code == 0 and type(open_dataset(tmp_path / "one")) is Dataset
    assert "usable video: " in out and "warning: under 1 minute" in out


def test_clip_names_and_lists(tmp_path):
    a, b = tmp_path / "a" / "video.mp4", tmp_path / "b" / "video.mp4"
    for f in (a, b, tmp_path / "x.mp4"):
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"")
    assert clip_names([tmp_path / "x.mp4", a, b]) == ["x", "a_video", "b_video"]
    with pytest.raises(UsageError, match="named twice"):
        clip_names([a, tmp_path / "a" / ".." / "a" / "video.mp4"])
    with pytest.raises(UsageError, match="lists no clips"):
        (tmp_path / "empty.txt").write_text("# nothing\n\n")
        read_clip_list(tmp_path / "empty.txt")
    assert is_person_input([a, b]) and is_person_input([tmp_path]) and is_person_input([tmp_path / "l.txt"])
    assert not is_person_input([a])


def test_identity_rule_on_shapes():
    rng = np.random.default_rng(0)
    face = rng.normal(0, 0.03, (478, 3))
    same = [face + rng.normal(0, 0.0005, face.shape) for _ in range(4)]
    other = face.copy()
    other[:, 1] *= 1.1  # a longer face
    shapes = [ident.identity_shape(s) for s in same] + [ident.identity_shape(other)]
    d = ident.shape_distances(shapes)
    assert d[:4].max() < ident.THRESHOLD < d[4]
    # position does not count: the same face moved is the same shape
    np.testing.assert_allclose(ident.identity_shape(face + 0.1), ident.identity_shape(face), atol=1e-9)
    # two clips: their distance to each other, both
    pair = ident.shape_distances([shapes[0], shapes[4]])
    assert pair[0] == pair[1] == pytest.approx(ident.shape_distance(shapes[0], shapes[4]))
    # the refusal names the farthest clip first
    check = ident.IdentityCheck(("a", "b", "c"), (0.03, 0.05, 0.01), ident.THRESHOLD, "refuse")
    assert [n for n, _ in check.outliers] == ["b", "a"] and check.lines()[0].startswith("clip 'b'")
