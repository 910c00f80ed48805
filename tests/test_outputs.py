"""Outputs: one check before any work (exists, is an input, wrong type, not writable), then atomic writes."""

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from geneface.cli import main
from geneface.core.atomic import HOST, atomic_directory, atomic_output
from geneface.core.outputs import prepare_output, run_folder
from geneface.errors import UsageError


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder where creating a file really fails (root ignores permission bits)."""
    if os.geteuid() != 0:
        folder = tmp_path / "readonly"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    for folder in (Path("/sys"), Path("/proc")):
        try:
            fd, probe = tempfile.mkstemp(dir=folder)
        except OSError:
            return folder
        os.close(fd)
        os.unlink(probe)
    pytest.skip("no folder here refuses writes to root")


def leftovers(folder: Path) -> list:
    """Hidden temporary names the writers or the probe would leave behind."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


# -- the mechanism ------------------------------------------------------------------------


def test_existing_target_needs_overwrite(tmp_path):
    out = tmp_path / "out.npz"
    out.write_bytes(b"old")
    with pytest.raises(UsageError, match="already exists; pass --overwrite"):
        prepare_output(out)
    assert prepare_output(out, overwrite=True) == out
    assert out.read_bytes() == b"old" and leftovers(tmp_path) == []


def test_output_that_is_an_input_is_refused(tmp_path):
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"x")
    with pytest.raises(UsageError, match="is also an input"):
        prepare_output(src, overwrite=True, inputs=[None, src])
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    with pytest.raises(UsageError, match="is also an input"):  # the same file by another name
        prepare_output(link, overwrite=True, inputs=[src])
    # A folder output holding an input would delete it when replaced.
    (tmp_path / "data").mkdir()
    video = tmp_path / "data" / "v.mp4"
    video.write_bytes(b"x")
    with pytest.raises(UsageError, match="holds the input"):
        prepare_output(tmp_path / "data", kind="dir", overwrite=True, inputs=[video])


def test_wrong_types_are_refused(tmp_path):
    (tmp_path / "folder.mp4").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a folder; --output needs a file name"):
        prepare_output(tmp_path / "folder.mp4", overwrite=True)
    with pytest.raises(UsageError, match="is a file; --output needs a folder"):
        prepare_output(tmp_path / "file", kind="dir", overwrite=True)
    with pytest.raises(UsageError, match="is a file, not a folder"):
        prepare_output(tmp_path / "file" / "deeper" / "out.mp4")
    with pytest.raises(UsageError, match=r"must end in \.mp4"):
        prepare_output(tmp_path / "out.avi", suffixes=(".mp4",))


def test_unwritable_place_is_refused(tmp_path):
    folder = unwritable_folder(tmp_path)
    with pytest.raises(UsageError, match="cannot write --output in"):
        prepare_output(folder / "geneface-test" / "out.mp4")


def test_missing_parents_are_left_to_the_writer(tmp_path):
    out = tmp_path / "a" / "b" / "out.npz"
    assert prepare_output(out) == out
    assert not (tmp_path / "a").exists()  # nothing made before the work succeeds
    with atomic_output(out, overwrite=False) as tmp:
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new"


def test_overwrite_never_deletes_a_foreign_folder(tmp_path):
    mine, foreign = tmp_path / "run", tmp_path / "home"
    for folder in (mine, foreign):
        folder.mkdir()
        (folder / "notes.txt").write_text("keep")
    (mine / "run.json").write_text("{}")
    assert run_folder(mine, overwrite=True) == mine
    with pytest.raises(UsageError, match="not made by this command"):
        run_folder(foreign, overwrite=True)
    assert run_folder(foreign, resume=True) == foreign  # resuming writes into it, deletes nothing


def test_atomic_writers_keep_the_overwrite_decision(tmp_path):
    out = tmp_path / "out.txt"
    with pytest.raises(UsageError, match="appeared while"):
        with atomic_output(out, overwrite=False) as tmp:
            tmp.write_text("new")
            out.write_text("someone else's")  # appears while we write
    assert out.read_text() == "someone else's" and leftovers(tmp_path) == []
    folder = tmp_path / "clip"
    with pytest.raises(UsageError, match="appeared while"):
        with atomic_directory(folder) as tmp:
            (tmp / "a").write_text("x")
            folder.mkdir()
    assert list(folder.iterdir()) == [] and leftovers(tmp_path) == []


def test_partials_of_dead_owners_are_swept_before_any_work_and_live_ones_kept(tmp_path):
    """A partial says who owns it (host, pid); the next check of the same output removes those
    whose owner died (SIGKILL gave it no chance to clean up) and nothing else."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "60"])
    try:
        names = {
            "dead_file": f".out.partial-{HOST}-{dead.pid}-0123abcd.mp4",
            "dead_folder": f".out.mp4.partial-{HOST}-{dead.pid}-0123abcd",
            "live_file": f".out.partial-{HOST}-{live.pid}-0123abcd.mp4",
            "other_host": f".out.partial-{'0' * 6 if HOST != '0' * 6 else '1' * 6}-{dead.pid}-0123abcd.mp4",
            "older_naming": ".out.partial-0123abcd.mp4",
            "other_output": f".other.partial-{HOST}-{dead.pid}-0123abcd.mp4",
        }
        for key, name in names.items():
            if key == "dead_folder":
                (tmp_path / name).mkdir()
                (tmp_path / name / "frame.png").write_bytes(b"x")
            else:
                (tmp_path / name).write_bytes(b"x")
        prepare_output(tmp_path / "out.mp4")
        left = {p.name for p in tmp_path.iterdir()}
        assert left == {names[k] for k in ("live_file", "other_host", "older_naming", "other_output")}
        # A writer sweeps too, and names its own partial after its process.
        (tmp_path / names["dead_file"]).write_bytes(b"x")
        with atomic_output(tmp_path / "out.mp4") as tmp:
            assert not (tmp_path / names["dead_file"]).exists()
            assert tmp.name.startswith(f".out.partial-{HOST}-{os.getpid()}-") and tmp.suffix == ".mp4"
            tmp.write_bytes(b"done")
        with atomic_directory(tmp_path / "clip") as tmp:
            assert tmp.name.startswith(f".clip.partial-{HOST}-{os.getpid()}-")
    finally:
        live.kill()
        live.wait()


# -- the commands -------------------------------------------------------------------------


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    return code, out, err


@pytest.fixture
def enc_spec(tmp_path, wav_file):
    spec = tmp_path / "enc.yaml"
    spec.write_text(f"input: {{audio: {wav_file.name}}}\nstages: {{audio_encoder: mel}}\noutput: feats.npz\n")
    return spec


def no_work(monkeypatch):
    """Make the work itself fail loudly: a refusal must come before it."""
    import geneface.app.run as runner
    import geneface.speech as speech

    def boom(*_a, **_k):
        raise AssertionError("the work started before the output was checked")

    monkeypatch.setattr(runner, "Pipeline", boom)  # building the stages is where a run's work begins
    monkeypatch.setattr(speech, "synthesize", boom)


def test_run_refuses_to_overwrite_without_the_flag(tmp_path, enc_spec, capsys, monkeypatch):
    out = tmp_path / "feats.npz"
    assert cli(capsys, "run", enc_spec, "-q")[0] == 0
    before = out.stat().st_mtime_ns
    with monkeypatch.context() as m:
        no_work(m)
        code, _, err = cli(capsys, "run", enc_spec, "-q")
    assert code == 2 and "already exists; pass --overwrite" in err and str(out) in err
    assert out.stat().st_mtime_ns == before
    assert cli(capsys, "run", enc_spec, "-q", "--overwrite")[0] == 0
    with np.load(out) as data:
        assert data["values"].shape == (100, 80)


def test_run_output_equal_to_an_input_is_refused(tmp_path, enc_spec, wav_file, motion_file, capsys, monkeypatch):
    from geneface.core.media import write_video

    video = tmp_path / "clip.mp4"
    write_video(video, [np.zeros((32, 32, 3), np.uint8)] * 5)
    spec = tmp_path / "sketch.yaml"
    spec.write_text("input: {motion: motion.npz, audio: clip.mp4}\nstages: {renderer: landmark_sketch}\noutput: clip.mp4\n")
    no_work(monkeypatch)
    size = video.stat().st_size
    code, _, err = cli(capsys, "run", spec, "--overwrite", "-q")
    assert code == 2 and "is also an input" in err, err
    assert video.stat().st_size == size
    # The spec or the speech as the output of an encoder spec: refused (by its extension,
    # checked first with the spec), and both left as they were.
    spec_text, wav = enc_spec.read_text(), wav_file.read_bytes()
    for args in ((enc_spec, "-o", enc_spec, "--overwrite"), (enc_spec, "-o", wav_file)):
        assert cli(capsys, "run", *args, "-q")[0] == 2
    assert enc_spec.read_text() == spec_text and wav_file.read_bytes() == wav


@pytest.mark.parametrize("where, message", [
    ("folder.npz", "is a folder"),
    ("speech.wav/x.npz", "is a file, not a folder"),
    ("UNWRITABLE/geneface-test/x.npz", "cannot write --output in"),
])
def test_run_bad_output_places_fail_before_any_work(tmp_path, enc_spec, capsys, monkeypatch, where, message):
    (tmp_path / "folder.npz").mkdir()
    target = where.replace("UNWRITABLE", str(unwritable_folder(tmp_path)))
    no_work(monkeypatch)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = cli(capsys, "run", enc_spec, "-q", "-o", tmp_path / target)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no temporary file


def test_say_overwrite_formats_and_refusals(tmp_path, capsys, monkeypatch):
    import av

    wav = tmp_path / "s" / "hi.wav"
    assert cli(capsys, "say", "Hi", "-o", wav)[0] == 0
    assert wav.is_file() and (tmp_path / "s" / "hi.phonemes.json").is_file()
    mp3 = tmp_path / "s" / "hello.mp3"  # hi.mp3 would clash: its timings go to hi.phonemes.json too
    assert cli(capsys, "say", "Hi", "-o", mp3)[0] == 0
    with av.open(str(mp3)) as container:  # what the extension says, not a WAV renamed
        assert container.format.name == "mp3" and container.streams.audio
    with monkeypatch.context() as m:
        no_work(m)
        code, _, err = cli(capsys, "say", "Hi", "-o", wav)
        assert code == 2 and "already exists; pass --overwrite" in err
        code, _, err = cli(capsys, "say", "Hi", "-o", tmp_path / "hi.m4a")
        assert code == 2 and "cannot write" not in err and ".mp3" in err and ".wav" in err
        code, _, err = cli(capsys, "say", "Hi", "-o", tmp_path / "s")
        assert code == 2
        code, _, err = cli(capsys, "say", "Hi", "-o", tmp_path / "p.wav", "--phonemes", tmp_path / "p.wav")
        assert code == 2 and "same file" in err
    assert not (tmp_path / "hi.m4a").exists() and not (tmp_path / "p.wav").exists()
    assert cli(capsys, "say", "Hello", "-o", wav, "--overwrite")[0] == 0


def test_synth_and_preview_outputs_are_checked_first(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("keep")
    code, _, err = cli(capsys, "synth", "-o", tmp_path / "file", "--seconds", "1", "--size", "64", "-q", "--overwrite")
    assert code == 2 and "is a file" in err
    code, _, err = cli(capsys, "synth", "-o", tmp_path / "home", "--seconds", "1", "--size", "64", "-q", "--overwrite")
    assert code == 2 and "not made by this command" in err and (tmp_path / "home" / "notes.txt").exists()
    code, _, err = cli(capsys, "synth-corpus", tmp_path / "file", "--clips", "2")
    assert code == 2 and "is a file" in err
    code, _, err = cli(capsys, "process", tmp_path / "file", "-o", tmp_path / "file")
    assert code == 2
