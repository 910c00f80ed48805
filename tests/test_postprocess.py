"""Post-processing (`person_postprocess` and geneface.postprocess): clamp, smoothing, the person's
blinks, a closed mouth on silence, the head path, and the stage inside a pipeline.

The target person is a small dataset folder built here from arrays (the real manifest writer,
hand-made landmarks and poses), so every number the steps should find is known: blinks at
known frames and intervals, a held-out last 1/11 that holds different blinks and an outlier
(neither may be used), a mouth that opens and closes, a jittery head path.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import yaml

from geneface import hookimpl
from geneface.cli import main
from geneface.core.camera_io import ping_pong, save_camera
from geneface.core.config import structure
from geneface.core.dataset import held_out_start, write_manifest
from geneface.core.landmarks68 import EYE_LID_PAIRS, mouth_openness
from geneface.core.motion_io import load_motion, save_motion
from geneface.core.records import Audio, Camera, Motion
from geneface.core.stages import Renderer, RunContext
from geneface.errors import UsageError
from geneface.plugins.person_postprocess import WHERE, PersonPostprocess
from geneface.postprocess import blinks, clamp, poses, silence, smooth
from geneface.registry import Origin, get_registry

from conftest import talking_motion

FPS = 25.0
TRAIN = 3000  # two minutes of training frames
N_PERSON = 3300  # held_out_start(3300) == 3000: the last 300 frames are held out
CLOSURE = np.array([0.0, 0.3, 0.7, 0.9, 0.8, 0.55, 0.3, 0.1, 0.0])  # lid closure over one test blink
INTERVALS = (60, 75, 90)  # frames between the person's blinks: 2.4, 3.0, 3.6 s (20 a minute)


def _add_blink(lm: np.ndarray, t: int, closure=CLOSURE) -> None:
    """Close the lids of `lm` (T x 68 x 3) in place from frame t: upper lid 85 %, lower 15 % of the gap."""
    c = closure[:, None]
    for upper, lower in EYE_LID_PAIRS:
        gap = lm[t:t + len(c), lower] - lm[t:t + len(c), upper]
        lm[t:t + len(c), upper] += 0.85 * c * gap
        lm[t:t + len(c), lower] -= 0.15 * c * gap


def _rotation(v: np.ndarray) -> np.ndarray:
    """Rodrigues: axis-angle vectors (T x 3) -> rotations (T x 3 x 3)."""
    theta = np.linalg.norm(v, axis=1)[:, None, None]
    k = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    K = np.zeros((len(v), 3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    K = K - K.transpose(0, 2, 1)
    return np.eye(3) + np.sin(theta) * K + (1 - np.cos(theta)) * K @ K


def _jittery_poses(n: int, seed: int = 0) -> np.ndarray:
    """A slow head path with tracker-like jitter on top, T x 4 x 4 (camera 0.5 in front)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FPS
    angles = np.stack([0.05 * np.sin(0.3 * t), 0.08 * np.sin(0.2 * t + 1), 0.02 * np.sin(0.5 * t)], 1)
    angles += 0.01 * rng.standard_normal(angles.shape)
    c2w = np.repeat(np.eye(4)[None], n, axis=0)
    c2w[:, :3, :3] = _rotation(angles)
    c2w[:, :3, 3] = np.stack([0.02 * np.sin(0.25 * t), 0.01 * np.cos(0.3 * t), np.full(n, 0.5)], 1)
    c2w[:, :3, 3] += 0.003 * rng.standard_normal((n, 3))
    return c2w


def _write_dataset(folder, landmarks: np.ndarray, c2w: np.ndarray, size: int = 64):
    """A dataset folder as `geneface process` writes it, the parts post-processing reads."""
    n = len(landmarks)
    (folder / "landmarks").mkdir(parents=True)
    (folder / "camera").mkdir()
    np.save(folder / "landmarks" / "canonical68.npy", landmarks.astype(np.float32))
    start = held_out_start(n)
    np.savez(folder / "landmarks" / "stats.npz", mean=landmarks[:start].mean(0), std=landmarks[:start].std(0))
    np.save(folder / "camera" / "c2w.npy", c2w.astype(np.float32))
    np.savez(folder / "tracking.npz", flags=np.zeros(n, np.int64), confidence=np.ones(n, np.float32))
    write_manifest(folder, n, source={"name": "test"}, crop={"size": size},
                   camera={"focal": 80.0, "cx": size / 2, "cy": size / 2},
                   splits={"train": [0, start], "val": [start, n]})
    return folder


def _blink_onsets(seed: int = 1) -> list[int]:
    rng = np.random.default_rng(seed)
    onsets, t = [], 30
    while t + len(CLOSURE) <= TRAIN:
        onsets.append(t)
        t += int(rng.choice(INTERVALS))
    return onsets


@pytest.fixture(scope="module")
def person(tmp_path_factory):
    """(dataset folder, its landmarks, the training blink onsets, its poses)."""
    lm = talking_motion(N_PERSON, seed=3).landmarks.astype(np.float64)
    onsets = _blink_onsets()
    for t in onsets:
        _add_blink(lm, t)
    for t in range(TRAIN + 5, N_PERSON - len(CLOSURE), 15):  # held out: blinks five times as often
        _add_blink(lm, t)
    lm[N_PERSON - 2, 30, 0] += 50.0  # a held-out outlier that must not widen the clamp
    c2w = _jittery_poses(N_PERSON)
    folder = _write_dataset(tmp_path_factory.mktemp("person") / "ds", lm, c2w)
    return folder, lm, onsets, c2w


def _stage(person_dir, **sections) -> PersonPostprocess:
    config = structure(PersonPostprocess.Config, {"person": str(person_dir), **sections}, WHERE)
    return PersonPostprocess(config)


OFF = {"enabled": False}


# -- clamp and smooth ---------------------------------------------------------------------------

def test_clamp_is_exact_outside_and_leaves_inside_alone():
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=(68, 3)), rng.uniform(0.5, 2.0, (68, 3))
    x = mean + std * rng.normal(scale=2.0, size=(200, 68, 3))
    low, high = clamp.clamp_bounds(mean, std, 2.5)
    out = clamp.clamp_landmarks(x, low, high)
    below, above = x < mean - 2.5 * std, x > mean + 2.5 * std
    assert below.any() and above.any()
    assert np.array_equal(out[below], np.broadcast_to(mean - 2.5 * std, x.shape)[below])
    assert np.array_equal(out[above], np.broadcast_to(mean + 2.5 * std, x.shape)[above])
    inside = ~(below | above)
    assert np.array_equal(out[inside], x[inside])


def test_smoothing_reduces_jitter_and_keeps_length():
    rng = np.random.default_rng(1)
    t = np.arange(100)
    clean = np.sin(2 * np.pi * t / 50)[:, None, None] * np.ones((1, 68, 3))
    noisy = clean + 0.1 * rng.standard_normal(clean.shape)
    out = smooth.smooth_landmarks(noisy, 1.0)
    assert out.shape == noisy.shape
    jitter = lambda x: np.abs(np.diff(x, 2, axis=0)).mean()  # noqa: E731  (second differences)
    assert jitter(out) < 0.3 * jitter(noisy)
    assert np.abs(out - clean).mean() < np.abs(noisy - clean).mean()
    const = np.full((7, 68, 3), 3.0)  # edges neither shrink nor shift
    assert np.allclose(smooth.smooth_landmarks(const, 1.0), 3.0)
    assert smooth.smooth_landmarks(noisy[:1], 1.0).shape == (1, 68, 3)


# -- blinks -----------------------------------------------------------------------------------

def test_blinks_of_the_person_are_found(person):
    folder, lm, onsets, _ = person
    stage = _stage(folder)
    profile = stage.blink_profile()
    assert not profile.synthetic
    assert profile.n_found == len(onsets)  # the held-out blinks are not counted
    assert profile.rate == pytest.approx(60.0 * len(onsets) / (TRAIN / FPS))
    assert sorted(set(np.round(profile.intervals * FPS).astype(int))) == list(INTERVALS)
    found = blinks.find_blinks(blinks.eye_openness(lm[:TRAIN]))
    assert [b.trough for b in found] == [t + int(np.argmax(CLOSURE)) for t in onsets]
    assert len(profile.bank) == len(onsets) and all(b.shape[1:] == (12, 3) for b in profile.bank)
    assert all(np.allclose(b[0], 0) and np.allclose(b[-1], 0) for b in profile.bank)  # no jump in or out


def test_injected_blinks_have_the_persons_rate_and_shape(person):
    folder, lm, onsets, _ = person
    profile = _stage(folder).blink_profile()
    motion = talking_motion(int(120 * FPS), seed=11).landmarks  # two minutes, no blinks
    assert blinks.find_blinks(blinks.eye_openness(motion)) == []
    out, injected = blinks.inject_blinks(motion, profile, seed=4)
    found = blinks.find_blinks(blinks.eye_openness(out))
    assert len(found) == len(injected)
    rate = 60.0 * len(found) / 120.0
    assert rate == pytest.approx(profile.rate, rel=0.15)
    assert np.median([b.depth for b in found]) == pytest.approx(profile.depth, abs=0.03)
    assert np.allclose(out[:, :36], motion[:, :36]) and np.allclose(out[:, 48:], motion[:, 48:])  # eyes only
    again, _ = blinks.inject_blinks(motion, profile, seed=4)
    assert np.array_equal(again, out)  # seeded


def test_no_blink_in_the_video_falls_back_with_one_warning(tmp_path, capsys):
    lm = talking_motion(300, seed=2).landmarks
    folder = _write_dataset(tmp_path / "still_eyes", lm, _jittery_poses(300))
    stage = _stage(folder, smooth=OFF, clamp=OFF)
    motion = talking_motion(1500, seed=12)
    out = stage.process(motion, RunContext())
    stage.process(motion, RunContext())
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "no blink" in err and "15.0 blinks/min" in err
    profile = stage.blink_profile()
    assert profile.synthetic and profile.rate == 15.0
    found = blinks.find_blinks(blinks.eye_openness(out.landmarks))
    assert 8 <= len(found) <= 22  # about 15 in a minute


# -- silence ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def speech_with_pause():
    from geneface.speech import concatenate, synthesize

    first, second = synthesize("Papa saw a big bear."), synthesize("Mama ran away quickly.")
    return first, concatenate([first, second], gap=1.5)


def test_speech_flags_find_the_pause(speech_with_pause):
    first, speech = speech_with_pause
    n = speech.audio.n_video_frames
    flags = silence.speech_flags(speech.audio, n)
    assert flags.shape == (n,)
    gap = slice(int((first.duration + 0.2) * FPS), int((first.duration + 1.3) * FPS))
    assert not flags[gap].any()
    spoken = [int((p.start + p.end) / 2 * FPS) for p in speech.spoken()]
    assert np.mean(flags[spoken]) > 0.9


def test_stage_closes_the_mouth_in_the_pause(person, speech_with_pause):
    folder, lm, _, _ = person
    first, speech = speech_with_pause
    n = speech.audio.n_video_frames
    motion = talking_motion(n, seed=7)
    stage = _stage(folder, clamp=OFF, smooth=OFF, blink=OFF)
    out = stage.process(motion, RunContext(audio=speech.audio))
    closed = mouth_openness(lm[:TRAIN])
    closed_level = np.sort(closed)[: TRAIN // 10].mean()
    gap = slice(int((first.duration + 0.4) * FPS), int((first.duration + 1.1) * FPS))
    opening = mouth_openness(out.landmarks)
    assert np.abs(opening[gap] - closed_level).max() < 0.01
    assert mouth_openness(motion.landmarks)[gap].mean() > closed_level + 0.04  # it was open before
    flags = silence.speech_flags(speech.audio, n)
    assert np.allclose(out.landmarks[flags], motion.landmarks[flags], atol=1e-5)  # speech untouched
    weights = stage.silence_weights(RunContext(audio=speech.audio), n, FPS)
    assert np.abs(np.diff(weights)).max() < 0.5  # ramps, no pop
    full = _stage(folder).process(motion, RunContext(audio=speech.audio))  # every step on
    assert np.abs(mouth_openness(full.landmarks)[gap] - closed_level).max() < 0.01


def test_audio_without_speech_keeps_the_mouth_closed(person, capsys):
    folder, lm, _, _ = person
    rng = np.random.default_rng(0)
    audio = Audio((1e-4 * rng.standard_normal(32000)).astype(np.float32))
    motion = talking_motion(50, seed=8)
    out = _stage(folder, blink=OFF).process(motion, RunContext(audio=audio))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no speech" in err
    closed_level = np.sort(mouth_openness(lm[:TRAIN]))[: TRAIN // 10].mean()
    assert np.abs(mouth_openness(out.landmarks) - closed_level).max() < 0.01


# -- poses ------------------------------------------------------------------------------------

def _step(c2w: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(c2w[:, :3, :], axis=0), axis=(1, 2)).mean())


def test_loop_camera_ping_pongs_the_smoothed_training_poses(person):
    folder, _, _, c2w = person
    camera = _stage(folder).head_path(7000)
    assert camera.n_frames == 7000 and camera.focal == 80.0 and camera.width == 64
    train = c2w[:TRAIN]  # the held-out poses are never used
    order = ping_pong(TRAIN, 7000)
    assert np.allclose(camera.c2w, poses.smooth_poses(train, 7)[order], atol=1e-6)
    assert np.abs(camera.c2w - train[order]).max() < 0.05  # follows the person's path
    assert _step(camera.c2w) < 0.5 * _step(train[order])
    rot = camera.c2w[:, :3, :3].astype(np.float64)
    assert np.allclose(rot @ rot.transpose(0, 2, 1), np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.det(rot), 1.0, atol=1e-5)


def test_still_camera_holds_the_pose_nearest_the_mean(person):
    folder, _, _, c2w = person
    camera = _stage(folder, pose={"mode": "still"}).head_path(40)
    assert camera.n_frames == 40 and np.all(camera.c2w == camera.c2w[0])
    index = poses.mean_pose_index(c2w[:TRAIN])
    assert np.allclose(camera.c2w[0], c2w[index], atol=1e-6)
    assert _stage(folder, pose={"mode": "off"}).head_path(40) is None
    assert _stage(folder, pose={"enabled": False}).head_path(40) is None


def test_pose_file_mode_and_a_bad_pose_file(person, tmp_path):
    folder, _, _, _ = person
    c2w = _jittery_poses(12, seed=5).astype(np.float32)
    save_camera(tmp_path / "cam.npz", Camera(focal=99.0, width=32, height=32, c2w=c2w))
    camera = _stage(folder, pose={"mode": "file", "pose_file": str(tmp_path / "cam.npz")}).head_path(12)
    assert camera.focal == 99.0 and np.array_equal(camera.c2w, c2w)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    for config in ({"mode": "file", "pose_file": str(tmp_path / "bad.npz")}, {"mode": "file"}):
        with pytest.raises(UsageError) as err:
            _stage(folder, pose=config)
        assert str(err.value).startswith(f"{WHERE}.pose.pose_file: ") and "\n" not in str(err.value)


def test_missing_or_wrong_person_is_one_line_naming_the_key(tmp_path):
    for config in ({}, {"person": str(tmp_path)}, {"person": str(tmp_path / "nowhere")}):
        with pytest.raises(UsageError) as err:
            PersonPostprocess(structure(PersonPostprocess.Config, config, WHERE))
        assert str(err.value).startswith("stages.post_processor.config.person: ") and "\n" not in str(err.value)


# -- the stage as a whole ---------------------------------------------------------------------

def test_stage_keeps_length_rate_and_statistics(person):
    folder, lm, _, _ = person
    base = talking_motion(100, seed=9)
    mean, std = base.landmarks.mean(0) + 0.01, base.landmarks.std(0) * 1.3 + 1e-3  # another model's units
    motion = Motion(base.landmarks, FPS, mean, std)
    out = _stage(folder).process(motion, RunContext())
    assert out.n_frames == 100 and out.fps == FPS
    assert np.array_equal(out.mean, mean) and np.array_equal(out.std, std)
    # Every step off: the round trip through the person's units gives the motion back.
    off = {k: OFF for k in ("clamp", "smooth", "blink", "silence", "pose")}
    same = _stage(folder, **off).process(motion, RunContext())
    assert np.allclose(same.landmarks, motion.landmarks, atol=1e-5)
    # The clamp uses the training frames only (a held-out outlier at point 30 does not widen it).
    far = base.landmarks.copy()
    far[:, 30, 0] += 1.0
    clamped = _stage(folder, smooth=OFF, blink=OFF).process(Motion(far, FPS), RunContext())
    train = lm[:TRAIN]
    bound = train[:, 30, 0].mean() + 2.5 * (train[:, 30, 0].std() + 1e-6)
    assert clamped.landmarks[:, 30, 0].max() == pytest.approx(bound, abs=1e-5)


SEEN: list = []


class _CameraRecorder(Renderer):
    name = "pp_camera_recorder"
    needs_camera = True

    def frame_size(self):
        return (32, 32)

    def render(self, motion, camera=None):
        SEEN.append((motion, camera))
        for _ in range(motion.n_frames):
            yield np.zeros((32, 32, 3), np.uint8)


def test_plugin_is_listed_and_runs_in_a_pipeline(person, tmp_path, capsys):
    folder, _, _, _ = person
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["plugins"]
    assert {"kind": "post_processor", "name": "person_postprocess", "available": True}.items() <= \
        next(r for r in rows if r["name"] == "person_postprocess").items()

    save_motion(tmp_path / "m.npz", talking_motion(60, seed=10))
    spec = {"input": {"motion": "m.npz"},
            "stages": {"post_processor": {"plugin": "person_postprocess", "config": {"person": str(folder)}}},
            "output": "out.npz"}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", str(tmp_path / "spec.yaml"), "-q"]) == 0
    out = load_motion(tmp_path / "out.npz")
    assert out.n_frames == 60 and not np.allclose(out.landmarks, talking_motion(60, seed=10).landmarks)

    # With a renderer: the post-processor's head path reaches it (no input.poses given).
    module = types.ModuleType("pp_test_plugins")

    @hookimpl
    def register_renderers(register):
        register(_CameraRecorder)

    module.register_renderers = register_renderers
    get_registry().register_module(module, Origin("pp-test", "0", "pp_test_plugins"))
    spec["stages"]["renderer"] = "pp_camera_recorder"
    spec["output"] = "out.mp4"
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    SEEN.clear()
    assert main(["run", str(tmp_path / "spec.yaml"), "-q"]) == 0
    (motion, camera), = SEEN
    expected = _stage(folder).head_path(60)
    assert camera.n_frames == 60 and np.allclose(camera.c2w, expected.c2w)
    assert (tmp_path / "out.mp4").is_file()

    spec["stages"]["post_processor"]["config"] = {}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", str(tmp_path / "spec.yaml"), "-q", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "stages.post_processor.config.person" in err
