"""`geneface process`, `dataset info|preview` and `process-corpus` end to end, bad input included.

All clips are synthesised (see test_process_media); frames are kept small (256 px source,
128 px crop) so the whole module runs in well under a minute of CPU.
"""

from __future__ import annotations

import json
import os
import sys
import shutil

import numpy as np
import pytest
from test_process_media import astronaut_frames, speech, write_av, write_clip

from geneface.cli import main
from geneface.core import dataset as fmt
from geneface.core.dataset import Dataset, DatasetError

SMALL = ["--size", "128", "--quiet"]


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return write_clip(root / "talk.mp4", astronaut_frames(25), speech(1.0))


@pytest.fixture(scope="module")
def processed(clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "talk"
    assert main(["process", str(clip), "-o", str(out), *SMALL]) == 0
    return out


def test_process_writes_a_dataset_and_says_so(processed, clip, tmp_path, capsys):
    ds = Dataset(processed)
    assert ds.n_frames == 25 and ds.size == 128
    # A second run refuses to overwrite, a --resume run sees identical work and does nothing.
    code, _, err = run(capsys, "process", clip, "-o", processed, *SMALL)
    assert code == 2 and "already exists" in err and "--resume" in err
    code, out, _ = run(capsys, "process", clip, "-o", processed, "--resume", *SMALL)
    assert code == 0 and "nothing to do" in out
    # Other settings are not "the same work": --resume refuses, --overwrite replaces.
    copy = tmp_path / "copy"
    shutil.copytree(processed, copy)
    code, _, err = run(capsys, "process", clip, "-o", copy, "--resume", "--size", "96", "--quiet")
    assert code == 2 and "--overwrite" in err
    code, out, _ = run(capsys, "process", clip, "-o", copy, "--overwrite", "--size", "96", "--quiet")
    assert code == 0 and "wrote" in out and Dataset(copy).size == 96


def test_dataset_info_text_and_json(processed, capsys):
    code, out, _ = run(capsys, "dataset", "info", processed)
    assert code == 0 and "talk.mp4" in out and "25 at 25 fps" in out and "reproj" in out
    code, out, _ = run(capsys, "dataset", "info", processed, "--json")
    info = json.loads(out)
    assert code == 0 and info["n_frames"] == 25
    assert 0 < info["quality"]["reprojection_error_px"]["mean"] < 2.0
    assert info["quality"]["tracking_failures"] == 0
    assert info["timings"]["total"] > 0 and info["timings"]["fps"] > 0
    assert info["audio_features"] == ["mel"]


def test_dataset_info_on_a_non_dataset_is_a_usage_error(tmp_path, capsys):
    code, _, err = run(capsys, "dataset", "info", tmp_path)
    assert code == 2 and "not a dataset" in err


def test_preview_draws_on_every_frame(processed, tmp_path, capsys):
    from geneface.core.media import probe_video, read_video

    out = tmp_path / "preview.mp4"
    code, stdout, _ = run(capsys, "dataset", "preview", processed, "-o", out, "--limit", "10", "--quiet")
    assert code == 0 and "10 frames" in stdout
    video = read_video(out)
    assert video.shape == (10, 128, 128, 3) and probe_video(out).has_audio
    ds = Dataset(processed)
    # The overlay changes the picture where the landmarks are.
    diff = np.abs(video[0].astype(int) - ds.frame(0).astype(int)).sum(axis=-1)
    x, y = np.round(ds.landmarks_image()[0, 48, :2]).astype(int)
    assert diff[y - 1:y + 2, x - 1:x + 2].max() > 60


def test_no_audio_track(tmp_path, capsys):
    silent = write_clip(tmp_path / "silent.mp4", astronaut_frames(12))
    code, _, err = run(capsys, "process", silent, "-o", tmp_path / "ds", *SMALL)
    assert code == 2 and "no audio" in err and "--no-audio" in err
    assert not (tmp_path / "ds").exists()
    code, _, _ = run(capsys, "process", silent, "-o", tmp_path / "ds", "--no-audio", *SMALL)
    assert code == 0
    ds = Dataset(tmp_path / "ds")
    assert not ds.has_audio and ds.feature_names == []
    with pytest.raises(DatasetError, match="no-audio"):
        ds.audio()


def test_missing_corrupt_and_truncated_files(tmp_path, capsys):
    code, _, err = run(capsys, "process", tmp_path / "nope.mp4", "-o", tmp_path / "a", *SMALL)
    assert code == 2 and "no such file" in err
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    code, _, err = run(capsys, "process", junk, "-o", tmp_path / "b", *SMALL)
    assert code == 2 and "cannot open as media" in err
    # A faststart mp4 (index first) cut in half still opens: its data stop early.
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(50)]
    full = write_av(tmp_path / "full.mp4", frames, [i / 25 for i in range(50)], faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    code, _, err = run(capsys, "process", cut, "-o", tmp_path / "c", "--no-audio", *SMALL)
    assert code == 2 and "truncated" in err
    assert not any(p.name.startswith((".a", ".b", ".c")) for p in tmp_path.iterdir())


def test_a_short_faceless_gap_is_interpolated_and_flagged(tmp_path, capsys):
    clip = write_clip(tmp_path / "gap.mp4", astronaut_frames(25, blank=(10, 11, 12)), speech(1.0))
    code, _, _ = run(capsys, "process", clip, "-o", tmp_path / "ds", *SMALL)
    assert code == 0
    ds = Dataset(tmp_path / "ds")
    flags = ds.tracking()["flags"]
    assert list(np.flatnonzero(flags & fmt.FLAG_INTERPOLATED)) == [10, 11, 12]
    assert ds.manifest["quality"]["interpolated_frames"] == 3
    # Interpolated points lie between their neighbours.
    lm = ds.landmarks_image()
    assert np.all(np.isfinite(lm))
    assert np.allclose(lm[11], lm[9] + (lm[13] - lm[9]) / 2, atol=1e-3)


def test_long_faceless_stretches_stop_with_the_time_ranges(tmp_path, capsys):
    clip = write_clip(tmp_path / "noface.mp4", astronaut_frames(25, blank=range(10, 20)), speech(1.0))
    code, _, err = run(capsys, "process", clip, "-o", tmp_path / "ds", *SMALL)
    assert code == 2
    assert "no face found in 10 of 25 frames" in err and "0:00.40-0:00.80" in err and "--max-failed" in err
    assert not (tmp_path / "ds").exists() and not list(tmp_path.glob(".ds.partial*"))
    # Allowed with a higher limit: the frames are kept for continuity, flagged, out of splits.
    code, _, err = run(capsys, "process", clip, "-o", tmp_path / "ds", "--max-failed", "0.5", *SMALL)
    assert code == 0 and "warning" in err and "0:00.40-0:00.80" in err
    ds = Dataset(tmp_path / "ds")
    assert ds.manifest["quality"]["tracking_failures"] == 10
    assert ds.manifest["quality"]["failed_ranges"] == [["0:00.40", "0:00.80"]]
    assert not set(range(10, 20)) & set(ds.split("train").tolist())


def test_several_faces_keep_the_tracked_one_and_flag_it(tmp_path, capsys):
    clip = write_clip(tmp_path / "two.mp4", astronaut_frames(15, two_faces=True), speech(0.6))
    code, _, err = run(capsys, "process", clip, "-o", tmp_path / "ds", *SMALL)
    assert code == 0 and "more than one face" in err
    ds = Dataset(tmp_path / "ds")
    assert ds.manifest["quality"]["multi_face_frames"] == 15
    assert np.all(ds.tracking()["flags"] & fmt.FLAG_MULTI_FACE)
    # One face followed throughout: the crop holds one head, not the space between two.
    centre_x = ds.landmarks_image()[:, :, 0].mean(axis=1)
    assert np.ptp(centre_x) < 20


def test_a_face_too_small_is_refused_with_advice(tmp_path, capsys):
    clip = write_clip(tmp_path / "far.mp4", astronaut_frames(10, size=160, face_px=50), speech(0.4))
    code, _, err = run(capsys, "process", clip, "-o", tmp_path / "ds", *SMALL)
    assert code == 2
    assert "px across" in err and "at least 80 px" in err and "higher-resolution" in err


def test_variable_frame_rate_is_resampled_to_25_fps(tmp_path, capsys):
    rng = np.random.default_rng(2)
    gaps = rng.uniform(1 / 40, 1 / 15, 30)  # 15 to 40 fps, frame by frame
    times = np.r_[0.0, np.cumsum(gaps)[:-1]]
    duration = float(times[-1] + gaps[-1])
    clip = write_av(tmp_path / "vfr.mp4", astronaut_frames(30), times, audio=speech(duration))
    code, _, _ = run(capsys, "process", clip, "-o", tmp_path / "ds", *SMALL)
    assert code == 0
    ds = Dataset(tmp_path / "ds")
    from geneface.core.media import probe_video

    assert ds.n_frames == probe_video(clip).n_frames(25.0)
    assert abs(ds.n_frames - duration * 25) <= 1.5
    assert len(ds.audio().samples) == ds.n_frames * 640  # audio exactly as long as the frames
    assert ds.audio_features("mel").n_frames == 2 * ds.n_frames


def test_interrupt_leaves_no_dataset_and_resume_finishes_without_retracking(clip, tmp_path, capsys, monkeypatch):
    from geneface.processing import process, tracking

    out = tmp_path / "ds"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(process, "render_stage", interrupted)
    code, _, err = run(capsys, "process", clip, "-o", out, *SMALL)
    assert code == 130
    assert not out.exists()
    partial = out.with_name(".ds.partial")
    assert partial.is_dir() and not fmt.is_dataset(partial)
    state = json.loads((partial / "state.json").read_text())
    assert "track" in state["done"]

    monkeypatch.undo()

    def no_tracking(*args, **kwargs):
        raise AssertionError("tracking ran again")

    monkeypatch.setattr(tracking, "collect", no_tracking)
    code, out_text, err = run(capsys, "process", clip, "-o", out, "--resume", *SMALL)
    assert code == 0 and "resuming" in err and "wrote" in out_text
    assert Dataset(out).n_frames == 25 and not partial.exists()


def test_a_crash_without_resume_starts_over(clip, tmp_path, capsys):
    out = tmp_path / "ds"
    stale = out.with_name(".ds.partial")
    stale.mkdir()
    (stale / "state.json").write_text("{}")
    (stale / "junk").write_text("left by a crash")
    code, _, _ = run(capsys, "process", clip, "-o", out, *SMALL)
    assert code == 0 and not (out / "junk").exists() and not stale.exists()


def test_bad_options_are_usage_errors(clip, tmp_path, capsys):
    code, _, err = run(capsys, "process", clip, "-o", tmp_path / "x", "--size", "127")
    assert code == 2 and "even" in err
    code, _, err = run(capsys, "process", clip, "-o", tmp_path / "x", "--val-fraction", "1.5")
    assert code == 2 and "val_fraction" in err
    code, _, err = run(capsys, "process", clip, "-o", tmp_path / "x", "--audio-encoder", "mell", *SMALL)
    assert code == 2 and "did you mean 'mel'" in err
    assert not (tmp_path / "x").exists()


def test_process_corpus_survives_a_bad_clip_and_skips_finished_ones(clip, tmp_path, capsys):
    src = tmp_path / "in"
    (src / "spk1").mkdir(parents=True)
    (src / "spk2").mkdir()
    shutil.copy(clip, src / "spk1" / "a.mp4")
    write_clip(src / "spk2" / "b.mp4", astronaut_frames(12, seed=3), speech(0.48))
    (src / "spk2" / "broken.mp4").write_bytes(b"\x00" * 2048)
    (src / "notes.txt").write_text("not a video")
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "process-corpus", src, out, "--workers", "2", *SMALL)
    assert code == 1 and "1 of 3 clips failed" in err
    assert "2 processed, 0 already done, 1 failed" in stdout and "spk2/broken.mp4" in stdout
    assert Dataset(out / "spk1" / "a").n_frames == 25 and Dataset(out / "spk2" / "b").n_frames == 12
    assert not (out / "spk2" / "broken").exists()
    report = json.loads((out / "corpus_report.json").read_text())
    assert report["counts"] == {"done": 2, "skipped": 0, "failed": 1}
    failed = [c for c in report["clips"] if c["status"] == "failed"]
    assert failed[0]["clip"] == os.path.join("spk2", "broken.mp4") and "cannot open" in failed[0]["error"]
    # A second run does no work on finished clips.
    before = {p: p.stat().st_mtime_ns for p in (out / "spk1" / "a").rglob("*")}
    code, stdout, _ = run(capsys, "process-corpus", src, out, "--workers", "2", *SMALL)
    assert "0 processed, 2 already done, 1 failed" in stdout
    assert {p: p.stat().st_mtime_ns for p in (out / "spk1" / "a").rglob("*")} == before


def test_overwrite_never_deletes_a_folder_that_is_not_a_dataset(clip, tmp_path, capsys):
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "holiday.jpg").write_bytes(b"not yours")
    code, _, err = run(capsys, "process", clip, "-o", precious, "--overwrite", *SMALL)
    assert code == 2 and "not a dataset" in err
    assert (precious / "holiday.jpg").read_bytes() == b"not yours"


def test_a_tracker_with_its_own_layout_works_through_the_contract(clip, tmp_path, capsys):
    """A third-party FaceTracker giving only 68 points (no stable_points) still processes."""
    import types

    from geneface import hookimpl
    from geneface.core.landmarks68 import mesh_to_68
    from geneface.plugins.mediapipe_tracker import MediapipeTracker
    from geneface.registry import Origin, get_registry

    class Only68(MediapipeTracker):
        name = "only68"
        n_points = 68
        stable_points = None

        def track(self, frames):
            for tracked in super().track(frames):
                points = None if tracked.points is None else mesh_to_68(tracked.points)
                yield type(tracked)(points=points, confidence=tracked.confidence, n_faces=tracked.n_faces)

        def to68(self, points):
            return points

    module = types.ModuleType("only68_plugin")
    module.register_face_trackers = hookimpl(lambda register: register(Only68))
    get_registry().register_module(module, Origin("test-only68", "0", "only68 = test"))
    code, _, err = run(capsys, "process", clip, "-o", tmp_path / "ds", "--tracker", "only68", *SMALL)
    assert code == 0, err
    ds = Dataset(tmp_path / "ds")
    assert ds.manifest["tracker"]["name"] == "only68" and ds.landmarks_mesh().shape == (25, 68, 3)
    assert np.array_equal(ds.landmarks_mesh(), ds.landmarks_image())
    assert ds.manifest["quality"]["reprojection_error_px"]["mean"] < 2.0


def test_process_and_process_corpus_take_their_shared_flags_from_one_declaration(tmp_path, capsys, monkeypatch):
    """Every flag of `cmd_process.PROCESS_FLAGS` reaches both commands' ProcessConfig alike;
    only `--max-failed`'s default differs (issue 34: one declaration, not two lists)."""
    from geneface.app import process as engine
    from geneface.cli.cmd_process import PROCESS_FLAGS
    from geneface.errors import UsageError

    seen = {}

    def fake_video(video, out, config, **kw):
        seen["process"] = config
        raise UsageError("stop here")

    def fake_corpus(in_dir, out_dir, config, **kw):
        seen["process-corpus"] = config
        return []

    monkeypatch.setattr(engine, "process_video", fake_video)
    monkeypatch.setattr(engine, "process_corpus", fake_corpus)
    (tmp_path / "in").mkdir()
    flags = {"size": ["--size", "96"], "crop_scale": ["--crop-scale", "2.5"], "val_fraction": ["--val-fraction", "0.2"],
             "audio_encoder": ["-e", "hubert", "-e", "mel"], "no_audio": ["--no-audio"], "tracker": ["--tracker", "x"],
             "max_failed": ["--max-failed", "0.3"], "max_gap": ["--max-gap", "3"], "min_face": ["--min-face", "40"],
             "fov": ["--fov", "20"], "av_offset": ["--av-offset", "0"]}
    assert set(flags) == set(PROCESS_FLAGS)
    every = [f for name in flags for f in flags[name]]
    assert run(capsys, "process", tmp_path / "v.mp4", "-o", tmp_path / "ds", *every)[0] == 2
    assert run(capsys, "process-corpus", tmp_path / "in", tmp_path / "out", *every)[0] == 0
    assert seen["process"] == seen["process-corpus"]
    config = seen["process"]
    assert (config.size, config.crop_scale, config.val_fraction, config.audio_encoders, config.no_audio) == (
        96, 2.5, 0.2, ("hubert", "mel"), True)
    assert (config.tracker, config.max_failed, config.max_gap, config.min_face_px, config.fov_degrees,
            config.av_offset) == ("x", 0.3, 3, 40.0, 20.0, "0")
    run(capsys, "process", tmp_path / "v.mp4", "-o", tmp_path / "ds")
    run(capsys, "process-corpus", tmp_path / "in", tmp_path / "out")
    assert (seen["process"].max_failed, seen["process-corpus"].max_failed) == (0.05, 0.5)


@pytest.mark.skipif(sys.platform.startswith("win"), reason="symbolic links")
def test_link_loops_and_folder_links_in_a_corpus_are_named_not_skipped_in_silence(tmp_path):
    from geneface.processing.corpus import find_clips

    src = tmp_path / "in"
    (src / "spk" / ".hidden").mkdir(parents=True)
    (src / "spk" / "a.mp4").write_bytes(b"")
    (src / "spk" / ".hidden" / "b.mp4").write_bytes(b"")
    (src / "spk" / "up").symlink_to("..")  # back to IN: walked for ever if followed
    (src / "spk" / "me").symlink_to("../spk")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "c.mp4").write_bytes(b"")
    (src / "more").symlink_to(tmp_path / "elsewhere")
    lines: list = []
    assert find_clips(src, lines.append) == [src / "spk" / "a.mp4"]
    assert lines == [f"skipped {src / 'spk' / 'me'}: a link loop (it leads back to a folder that contains it)",
                     f"skipped {src / 'spk' / 'up'}: a link loop (it leads back to a folder that contains it)",
                     f"skipped 1 link(s) to folders, not followed (first: {src / 'more'}); link the videos, "
                     "or copy the folders, to include them"]


def test_a_run_whose_runner_cannot_start_leaves_no_out_folder(tmp_path):
    """`--ray HOST:PORT` that cannot be reached: the one-line error, and no empty OUT left."""
    from geneface.errors import UsageError
    from geneface.processing.corpus import process_corpus

    class Unreachable:
        def describe(self) -> str:
            return "a cluster nobody answers at"

        def run(self, config, jobs):
            raise UsageError("--ray 192.0.2.1:6379: cannot start or reach Ray")
            yield

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.mp4").write_bytes(b"")
    (tmp_path / "kept").mkdir()
    for out, left in ((tmp_path / "new" / "out", False), (tmp_path / "kept", True)):
        with pytest.raises(UsageError, match="cannot start or reach Ray"):
            process_corpus(tmp_path / "in", out, quiet=True, log=lambda m: None, runner=Unreachable())
        assert out.exists() == left  # a folder that was there before is kept
