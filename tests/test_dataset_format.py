"""Dataset format round trip: `process_video` writes it, `Dataset` reads every part back."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from geneface.core import dataset as fmt
from geneface.core.dataset import Dataset, DatasetError
from geneface.errors import UsageError
from geneface.core.records import SAMPLE_RATE, Audio, AudioFeatures, Camera, Motion

N_FRAMES = 30


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    from test_process_media import astronaut_frames, speech, write_clip

    from geneface.app.process import process_video
    from geneface.registry import get_registry
    from geneface.processing import ProcessConfig

    root = tmp_path_factory.mktemp("fmt")
    clip = write_clip(root / "clip.mp4", astronaut_frames(N_FRAMES), speech(N_FRAMES / 25))
    result = process_video(clip, root / "ds", ProcessConfig(size=128, val_fraction=0.2), quiet=True, log=lambda m: None, registry=get_registry())
    return root, result


def test_folder_has_the_documented_files(made):
    root, _ = made
    ds_dir = root / "ds"
    for rel in (fmt.MANIFEST, fmt.BACKGROUND, fmt.BACKGROUND_SEEN, fmt.AUDIO, fmt.MESH, fmt.IMAGE68,
                fmt.CANONICAL68, fmt.STATS, fmt.C2W, fmt.POSE, "camera/camera.npz", fmt.TRACKING,
                "audio_features/mel.npy"):
        assert (ds_dir / rel).is_file(), rel
    assert len(list((ds_dir / fmt.FRAMES_DIR).glob("*.jpg"))) == N_FRAMES
    assert len(list((ds_dir / fmt.MASKS_DIR).glob("*.png"))) == N_FRAMES
    # Nothing of the work folder is left behind, and no hidden partial folder either.
    assert not any((ds_dir / name).exists() for name in ("state.json", "track.npz", "render.npz"))
    assert not list(root.glob(".ds.partial*"))


def test_no_array_needs_pickle(made):
    root, _ = made
    for path in (root / "ds").rglob("*.np[yz]"):
        loaded = np.load(path, allow_pickle=False)
        arrays = [loaded[k] for k in loaded.files] if hasattr(loaded, "files") else [loaded]
        assert all(a.dtype != object for a in arrays), path


def test_manifest_records_source_sizes_camera_splits_and_versions(made):
    root, result = made
    m = json.loads((root / "ds" / fmt.MANIFEST).read_text())
    assert m == result.manifest
    assert m["format"] == fmt.FORMAT_NAME and m["version"] == fmt.FORMAT_VERSION and m["complete"] is True
    assert m["source"]["name"] == "clip.mp4" and len(m["source"]["sha256"]) == 64
    assert m["fps"] == 25.0 and m["n_frames"] == N_FRAMES
    assert m["crop"]["size"] == 128 and m["crop"]["side"] > 0
    assert m["camera"]["focal"] == pytest.approx(128 / 2 / np.tan(np.radians(m["camera"]["fov_degrees"]) / 2), rel=1e-4)
    assert m["splits"] == {"train": [0, 24], "val": [24, 30]}
    assert m["tracker"]["name"] == "mediapipe" and m["tracker"]["points"] == 478
    assert m["versions"]["mediapipe"] and m["versions"]["geneface"]
    q = m["quality"]
    assert q["tracking_failures"] == 0 and q["reprojection_error_px"]["mean"] > 0
    assert set(m["timings"]) >= {"tracking", "render", "pose", "audio", "total", "fps"}


def test_loader_round_trip(made):
    root, result = made
    ds = Dataset(root / "ds")
    assert (ds.n_frames, ds.size, ds.fps) == (N_FRAMES, 128, 25.0)
    frame = ds.frame(3)
    assert frame.shape == (128, 128, 3) and frame.dtype == np.uint8
    mask = ds.mask(3)
    assert mask.shape == (128, 128) and set(np.unique(mask)) <= {0, fmt.HEAD, fmt.TORSO}
    assert (mask == fmt.HEAD).mean() > 0.05
    assert ds.background().shape == (128, 128, 3) and ds.background_seen().dtype == bool
    assert len(list(ds.frames([0, 1, 2]))) == 3
    with pytest.raises(IndexError):
        ds.frame(N_FRAMES)

    lm = ds.landmarks_image()
    assert lm.shape == (N_FRAMES, 68, 3) and lm.dtype == np.float32
    assert ds.landmarks_mesh().shape == (N_FRAMES, 478, 3)
    assert np.array_equal(lm, ds.landmarks_mesh()[:, fmt_mesh_to_68()])
    # Landmarks are in crop pixels: on the face, inside the head mask.
    x, y = np.round(lm[3, 30, :2]).astype(int)
    assert mask[y, x] == fmt.HEAD

    motion = ds.motion()
    assert isinstance(motion, Motion) and motion.n_frames == N_FRAMES
    mean, std = ds.landmark_stats()
    train = ds.split("train")
    assert np.allclose(mean, ds.landmarks_canonical()[train].mean(axis=0), atol=1e-5)
    assert np.allclose(motion.normalized().mean(axis=(0,)), ((ds.landmarks_canonical() - mean) / std).mean(axis=0), atol=1e-4)
    assert ds.motion(ds.split("val")).n_frames == 6

    camera = ds.camera()
    assert isinstance(camera, Camera) and camera.n_frames == N_FRAMES and camera.width == 128
    assert np.allclose(np.linalg.det(camera.c2w[:, :3, :3]), 1.0, atol=1e-4)

    audio = ds.audio()
    assert isinstance(audio, Audio) and audio.sample_rate == SAMPLE_RATE
    assert len(audio.samples) == N_FRAMES * SAMPLE_RATE // 25  # exactly as long as the frames
    feats = ds.audio_features("mel")
    assert isinstance(feats, AudioFeatures) and feats.n_frames == 2 * N_FRAMES and feats.width == 80
    with pytest.raises(DatasetError, match="hubert"):
        ds.audio_features("hubert")

    tracking = ds.tracking()
    for key in ("confidence", "n_faces", "flags", "reprojection_error", "head_coverage"):
        assert tracking[key].shape == (N_FRAMES,), key
    assert np.allclose(tracking["reprojection_error"].mean(), result.manifest["quality"]["reprojection_error_px"]["mean"], atol=1e-3)
    assert ds.summary()["n_frames"] == N_FRAMES


def test_the_camera_is_also_a_pose_file(made):
    from geneface.core.camera_io import POSE_FILE, load_camera

    root, _ = made
    ds = Dataset(root / "ds")
    pose = load_camera(root / "ds" / POSE_FILE)
    assert load_camera(root / "ds").n_frames == N_FRAMES  # a dataset folder reads as its pose file
    camera = ds.camera()
    assert (pose.focal, pose.width, pose.height) == pytest.approx((camera.focal, camera.width, camera.height))
    assert pose.principal_point == pytest.approx(camera.principal_point)
    assert np.allclose(pose.c2w, camera.c2w)


def fmt_mesh_to_68():
    from geneface.core.landmarks68 import MESH_TO_68

    return MESH_TO_68


def test_splits_follow_time_and_leave_out_failed_frames(made, tmp_path):
    root, _ = made
    copy = tmp_path / "ds"
    shutil.copytree(root / "ds", copy)
    ds = Dataset(copy)
    assert list(ds.split("train")) == list(range(24)) and list(ds.split("val")) == list(range(24, 30))
    # Mark frames 5-7 as failed: they leave the split unless asked for.
    tracking = dict(np.load(copy / fmt.TRACKING, allow_pickle=False))
    tracking["flags"][5:8] |= fmt.FLAG_FAILED
    np.savez(copy / fmt.TRACKING, **tracking)
    ds = Dataset(copy)
    assert 5 not in ds.split("train") and len(ds.split("train")) == 21
    assert len(ds.split("train", include_failed=True)) == 24
    with pytest.raises(DatasetError, match="no split"):
        ds.split("test")


def test_training_and_held_out_frames_are_those_every_trainer_rebuilt(made, tmp_path):
    """`Dataset.training_frames`, `held_out_frames`, `usable` give the indices the renderer
    task, the bench, post-processing and person data each computed for themselves."""
    root, _ = made
    copy = tmp_path / "ds"
    shutil.copytree(root / "ds", copy)
    tracking = dict(np.load(copy / fmt.TRACKING, allow_pickle=False))
    tracking["flags"][[3, 4, 22, 25]] |= fmt.FLAG_FAILED  # in the train split, and the val split
    tracking["flags"][10] |= fmt.FLAG_INTERPOLATED  # (from 24 of 30, --val-fraction 0.2); interpolated stays
    np.savez(copy / fmt.TRACKING, **tracking)
    ds = Dataset(copy)
    n, flags = ds.n_frames, ds.tracking()["flags"]
    start = ds.manifest["splits"]["val"][0]
    assert ds.held_out_range() == (start, n) == (24, 30)

    # The renderer task and `geneface bench renderers`: frames of any split, tracked.
    valid = np.zeros(n, bool)
    for name in ds.manifest["splits"]:
        valid[ds.split(name)] = True
    assert list(ds.training_frames()) == list(np.flatnonzero(valid[:start])) == [0, 1, 2, *range(5, 22), 23]
    assert list(ds.held_out_frames()) == list(np.flatnonzero(valid[start:]) + start) == [24, 26, 27, 28, 29]
    assert list(ds.usable()) == list(valid)

    # Post-processing and person data: tracked frames of the first n, the same held-out frames.
    for m in (n, 27, 22):  # person data stops where the audio features do
        good = (np.asarray(flags[:m]) & fmt.FLAG_FAILED) == 0
        cut = min(start, m)
        assert ds.held_out_range(m) == (cut, m)
        assert list(ds.training_frames(m)) == list(np.flatnonzero(good[:cut]))
        assert list(ds.held_out_frames(m)) == list(np.flatnonzero(good[cut:]) + cut)

    # Without tracking.npz (post-processing and person data always read such folders): every frame.
    (copy / fmt.TRACKING).unlink()
    ds = Dataset(copy)
    assert list(ds.training_frames()) == list(range(24)) and list(ds.held_out_frames()) == list(range(24, 30))
    # The camera of some frames only: one pose each.
    c2w = Dataset(root / "ds").camera().c2w
    assert np.array_equal(ds.camera([27, 29]).c2w, c2w[[27, 29]]) and ds.camera([27, 29]).focal == ds.camera().focal


def test_incomplete_or_foreign_folders_do_not_load(made, tmp_path):
    root, _ = made
    with pytest.raises(DatasetError, match="no such"):
        Dataset(tmp_path / "missing")
    partial = tmp_path / "partial"
    shutil.copytree(root / "ds", partial)
    (partial / fmt.MANIFEST).unlink()
    with pytest.raises(DatasetError, match="unfinished"):
        Dataset(partial)
    assert not fmt.is_dataset(partial)
    cases = (({"complete": False}, "incomplete"), ({"version": 99}, "version 99"), ({"format": "other"}, "not a"))
    for k, (change, message) in enumerate(cases):
        bad = tmp_path / f"bad{k}"
        shutil.copytree(root / "ds", bad)
        manifest = json.loads((bad / fmt.MANIFEST).read_text())
        manifest.update(change)
        (bad / fmt.MANIFEST).write_text(json.dumps(manifest))
        with pytest.raises(DatasetError, match=message):
            Dataset(bad)
    (partial / fmt.MANIFEST).write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable"):
        Dataset(partial)


def test_held_out_part_is_the_manifests_val_split_for_every_reader(made):
    """One rule for the held-out part: `process --val-fraction 0.2` writes it into the
    manifest, and the statistics, `Dataset` and the person-specific readers all take it from
    there (before, trainers held out the last 1/11 whatever the manifest said)."""
    from geneface.core.dataset import held_out_start
    from geneface.postprocess.person import read_person
    from geneface.training.person_data import load_person

    root, _ = made
    ds = Dataset(root / "ds")
    start = held_out_start(N_FRAMES, 0.2)
    assert start == 24 != held_out_start(N_FRAMES)  # 0.2 of 30 frames differs from 1/11
    assert ds.manifest["splits"] == {"train": [0, start], "val": [start, N_FRAMES]}
    assert ds.held_out_start == start and ds.held_out_range() == (start, N_FRAMES)
    assert ds.held_out_range(N_FRAMES - 1) == (start, N_FRAMES - 1)  # the same frames for a shorter n
    assert ds.training_frames().max() < start and ds.held_out_frames().min() >= start
    assert set(ds.training_frames()) | set(ds.held_out_frames()) == set(np.flatnonzero(ds.usable()))
    mean, _ = ds.landmark_stats()
    assert np.allclose(mean, ds.landmarks_canonical()[ds.training_frames()].mean(axis=0), atol=1e-5)
    person = load_person(root / "ds", min_train=10)
    assert (person.n_train, person.n_held_out) == (len(ds.training_frames()), len(ds.held_out_frames()))
    # Post-processing counts the same training frames (too few here for its one second).
    with pytest.raises(UsageError, match=f"{len(ds.training_frames())} usable training frames"):
        read_person(root / "ds")


def test_held_out_start_rounds_up_and_keeps_a_frame_to_train_on():
    from geneface.core.dataset import held_out_start

    assert [held_out_start(n) for n in (11, 12, 22, 23, 330)] == [10, 10, 20, 20, 300]
    assert held_out_start(30, 0.2) == 24 and held_out_start(10, 0.0) == 10
    assert held_out_start(1) == 1 and held_out_start(3, 0.99) == 1


def _damage(src, dest, manifest_text=None, remove=()):
    shutil.copytree(src, dest)
    if manifest_text is not None:
        (dest / fmt.MANIFEST).write_text(manifest_text)
    for rel in remove:
        (dest / rel).unlink()
    return dest


def test_missing_files_names_what_a_dataset_lacks_and_dataset_info_refuses_it(made, tmp_path, capsys):
    from geneface.cli import main

    root, _ = made
    assert fmt.missing_files(root / "ds") == []
    bad = _damage(root / "ds", tmp_path / "bad", remove=(fmt.CANONICAL68, "frames/000003.jpg", "frames/000007.jpg",
                                                         "audio_features/mel.npy"))
    assert fmt.missing_files(bad) == [fmt.CANONICAL68, f"frames/: 2 of {N_FRAMES} missing, first 000003.jpg",
                                      "audio_features/mel.npy"]
    assert main(["dataset", "info", str(root / "ds")]) == 0
    capsys.readouterr()
    assert main(["dataset", "info", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {bad}: damaged dataset, missing {fmt.CANONICAL68}; frames/: 2 of {N_FRAMES} missing, "
                   "first 000003.jpg; audio_features/mel.npy")


def test_dataset_preview_and_av_offset_refuse_a_damaged_dataset_before_any_work(made, tmp_path, capsys):
    """Before, both went on with exit 0 on a dataset without its canonical landmarks (av-offset
    flagging it in place), and preview of one without a frame failed late, after OpenCV's warning."""
    from geneface.cli import main

    root, _ = made
    for removed, named in ((fmt.CANONICAL68, fmt.CANONICAL68),
                           ("frames/000005.jpg", f"frames/: 1 of {N_FRAMES} missing, first 000005.jpg")):
        bad = _damage(root / "ds", tmp_path / f"bad{len(named)}", remove=(removed,))
        manifest = (bad / fmt.MANIFEST).read_bytes()
        for command in (["dataset", "preview", str(bad), "-o", str(tmp_path / "p.mp4"), "-q"],
                        ["dataset", "av-offset", str(bad)]):
            assert main(command) == 2, command
            out, err = capsys.readouterr()
            assert (out, err) == ("", f"error: {bad}: damaged dataset, missing {named}\n"), command
        assert not (tmp_path / "p.mp4").exists() and (bad / fmt.MANIFEST).read_bytes() == manifest

    # A corpus: every dataset checked before any is changed in place.
    corpus = tmp_path / "corpus"
    good = _damage(root / "ds", corpus / "a_good")
    bad = _damage(root / "ds", corpus / "b_bad", remove=(fmt.CANONICAL68,))
    before = (good / fmt.MANIFEST).read_bytes()
    assert main(["dataset", "av-offset", str(corpus)]) == 2
    assert capsys.readouterr().err == f"error: {bad}: damaged dataset, missing {fmt.CANONICAL68}\n"
    assert (good / fmt.MANIFEST).read_bytes() == before


def test_dataset_index_names_each_damaged_dataset_it_leaves_out(made, tmp_path, capsys):
    from geneface.cli import main
    from geneface.core.corpus_index import read_index

    root, _ = made
    corpus = tmp_path / "corpus"
    text = (root / "ds" / fmt.MANIFEST).read_text()
    _damage(root / "ds", corpus / "spk" / "good")
    _damage(root / "ds", corpus / "spk" / "cut", manifest_text=text[: len(text) // 2])
    _damage(root / "ds", corpus / "spk" / "v2", manifest_text=json.dumps({**json.loads(text), "version": 2}))
    _damage(root / "ds", corpus / "spk" / "nolm", remove=(fmt.CANONICAL68,))
    assert main(["dataset", "index", str(corpus), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "1 datasets" in out and read_index(corpus).dataset.tolist() == ["spk/good"]
    lines = err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("warning: left out of the index: ") for line in lines)
    assert f"{corpus / 'spk' / 'cut' / fmt.MANIFEST}: unreadable manifest" in lines[0]
    assert f"{corpus / 'spk' / 'nolm'}: damaged dataset, missing {fmt.CANONICAL68}" in lines[1]
    assert f"{corpus / 'spk' / 'v2'}: dataset format version 2" in lines[2]
