"""Every person stage but the renderer on a person of several clips (`tests/support/people.py`):
no training window spans two clips, the offset rule for clips that cannot tell their own, and
audio2motion fine-tuning, landmark_projection, adversarial_postnet, person_postprocess and
paste-back each run on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from geneface.cli import main
from geneface.core.dataset import Dataset
from geneface.core.person import open_dataset, write_person_manifest
from geneface.plugins.mel import MelEncoder
from geneface.training.person_data import load_person
from tests.support.people import person_from_clips


@pytest.fixture(scope="module")
def person(tmp_path_factory):
    return person_from_clips(tmp_path_factory.getbasetemp() / "people")


def _clip_of(ds, piece) -> tuple[int, int]:
    """(clip, first frame within it) of a piece named PERSON/CLIP:START (START over the person)."""
    start = int(piece.name.rsplit(":", 1)[1])
    k = ds.clip_of(start)
    return k, start - ds.clips[k].start


def test_no_training_piece_crosses_a_clip_boundary(person):
    ds = open_dataset(person)
    data = load_person(person, MelEncoder())
    assert data.info()["clips"] == 2 and data.n_train == 100 and data.n_held_out == 50
    for piece in [*data.train, *data.held_out]:
        k, local = _clip_of(ds, piece)
        clip = ds.clip_dataset(k)
        assert local + piece.n_frames <= clip.n_frames  # the piece ends inside its clip
        assert piece.source == str(clip.path)
        # its frames and features are the clip's own, side by side
        np.testing.assert_allclose(data.denormalize(piece.landmarks),
                                   clip.landmarks_canonical()[local: local + piece.n_frames], atol=1e-5)
        np.testing.assert_array_equal(piece.features,
                                      clip.audio_features("mel").values[2 * local: 2 * (local + piece.n_frames)])
    # so every window a trainer draws from a piece stays in one clip
    assert {_clip_of(ds, p)[0] for p in data.held_out} == {2}


def _late_person(person: Path, root: Path, frames: int) -> Path:
    """A copy of `person` whose clips' audio (and features) come `frames` late."""
    from geneface.core.records import Audio
    from geneface.processing.audio import write_audio
    from geneface.processing.av_offset import shift_audio

    clips = []
    for c in open_dataset(person).clips:
        copy = root / "clips" / c.name
        shutil.copytree(c.path, copy)
        ds = Dataset(copy)
        audio = ds.audio()
        write_audio(copy, Audio(shift_audio(audio.samples, -frames), audio.sample_rate), [MelEncoder()], ds.n_frames)
        clips.append(copy)
    write_person_manifest(root, clips)
    return root


def test_clips_of_unknown_offset_are_estimated_together(person, tmp_path, capsys):
    # Every clip is 2 s: too short to tell its own offset, flagged skip_training...
    for c in open_dataset(person).clips:
        assert json.loads((c.path / "manifest.json").read_text())["av_offset"]["skip_training"]
    # ...together they tell: as recorded, all of them train
    assert load_person(person, MelEncoder()).n_train == 100
    assert "estimated together at +0 frames, read as recorded" in capsys.readouterr().err
    # audio 4 frames late in every clip: found together, each frame paired with the audio 4 frames on
    late = _late_person(person, tmp_path / "late", 4)
    data = load_person(late, MelEncoder())
    assert "estimated together at +4 frames" in capsys.readouterr().err
    ds = open_dataset(late)
    for piece in data.train:
        k, local = _clip_of(ds, piece)
        stored = ds.clip_dataset(k).audio_features("mel").values
        np.testing.assert_array_equal(piece.features, stored[2 * (local + 4): 2 * (local + 4 + piece.n_frames)])
    assert data.n_train == 100 - 2 * 4  # the last 4 frames of each training clip have no audio to pair with


def test_a_clip_that_cannot_tell_is_left_out_when_others_can(person, tmp_path, capsys):
    late = _late_person(person, tmp_path / "p", 0)
    for name in ("clip0", "clip2"):  # these two known (as `process` records a confident estimate)
        file = late / "clips" / name / "manifest.json"
        manifest = json.loads(file.read_text())
        manifest["av_offset"].update(status="ok", estimated_frames=0, skip_training=False)
        file.write_text(json.dumps(manifest))
    data = load_person(late, MelEncoder())
    assert "1 of its 3 clips have no audio-to-video offset, even estimated together" in capsys.readouterr().err
    assert [p.name for p in data.train] == ["p/clip0:0"] and data.n_train == 50
    assert load_person(late, min_train=10).n_train == 100  # landmarks alone need no audio: every clip


def test_person_postprocess_reads_every_training_clip_and_loops_one(person):
    import attrs

    from geneface.plugins.person_postprocess import PersonPostprocess
    from geneface.postprocess import blinks, poses

    stage = PersonPostprocess(PersonPostprocess.Config(person=person))
    frames = stage.person
    ds = open_dataset(person)
    # blinks are looked for in each training clip on its own (a run never spans two clips)
    assert [len(s) for s in frames.segments] == [50, 50]
    np.testing.assert_array_equal(frames.segments[1], ds.clip_dataset(1).landmarks_canonical())
    profile = stage.blink_profile()
    assert profile.seconds == 100 / 25
    again = blinks.blink_profile(frames.segments, 25.0)
    assert (profile.rate, profile.n_found, len(profile.bank)) == (again.rate, again.n_found, len(again.bank))
    # the head path loops one clip's poses (the longest training clip: clip0 here), never across clips
    path = stage.head_path(180)
    own = ds.clip_dataset(0).camera()
    np.testing.assert_allclose(path.c2w, poses.loop_camera(attrs.evolve(own, c2w=own.c2w), 180).c2w, atol=1e-6)
    jump = np.linalg.norm(ds.camera().c2w[50, :3, 3] - ds.camera().c2w[49, :3, 3])  # clip0 -> clip1
    steps = np.linalg.norm(np.diff(path.c2w[:, :3, 3], axis=0), axis=1)
    assert steps.max() < jump / 4


def test_paste_back_onto_a_clip_of_the_person(person, tmp_path_factory, tmp_path, monkeypatch, capsys):
    """Each clip has its own source video: output.clip names the one pasted onto (default the first)."""
    pytest.importorskip("geneface_nearest_frame")
    from geneface import registry
    from geneface.core import media
    from geneface.core.motion_io import save_motion

    monkeypatch.setenv("GENEFACE_PLUGINS", "geneface-landmark-viz,geneface-nearest-frame")
    registry._REGISTRY = None
    clip1 = person / "clips" / "clip1"
    model = tmp_path_factory.getbasetemp() / "person_nearest"  # a renderer of the person's 64 px crop
    if not (model / "model.safetensors").exists():
        assert main(["train", "renderer", "--plugin", "nearest_frame", "--data", str(clip1), "--out", str(model),
                     "--quiet"]) == 0
    motion = tmp_path / "motion.npz"
    save_motion(motion, Dataset(clip1).motion())

    def run(output: str, name: str) -> int:
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(f"input: {{motion: {motion}, audio: {clip1 / 'audio.wav'}}}\n"
                        f"stages: {{renderer: {{plugin: nearest_frame, checkpoint: {model / 'model.safetensors'}}}}}\n"
                        f"output: {{path: {name}.mp4, paste_back: true, dataset: {person}{output}}}\n")
        return main(["run", str(spec), "-q"])

    sizes = {c: json.loads((person / "clips" / c / "manifest.json").read_text())["source"]["width"]
             for c in ("clip0", "clip1")}
    assert sizes["clip0"] != sizes["clip1"]
    assert run(", clip: clip1", "named") == 0, capsys.readouterr().err
    assert media.probe_video(tmp_path / "named.mp4").width == sizes["clip1"]  # clip1's own source video
    assert json.loads((tmp_path / "named.run.json").read_text())["paste_back_clip"] == "clip1"
    assert run("", "first") == 0
    assert "onto clip 'clip0', the first of person" in capsys.readouterr().err
    assert media.probe_video(tmp_path / "first.mp4").width == sizes["clip0"]
    # a clip the person does not have, a clip of a one-video dataset: one line each, nothing written
    assert run(", clip: clip7", "bad") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no clip 'clip7'" in err and "did you mean 'clip" in err
    spec = tmp_path / "one.yaml"
    spec.write_text((tmp_path / "named.yaml").read_text().replace(f"dataset: {person}", f"dataset: {clip1}")
                    .replace("named.mp4", "one.mp4"))
    assert main(["run", str(spec), "-q"]) == 2
    assert "is one video, not a person of several clips" in capsys.readouterr().err
    assert not (tmp_path / "bad.mp4").exists() and not (tmp_path / "one.mp4").exists()


# -- the person trainers on the three-clip person ----------------------------------------

FINE_TUNE_YAML = """
train: {batch_size: 4, lr: 0.001, warmup: 2, decay_steps: 100, val_every: 3, ckpt_every: 1000, log_every: 50,
        keep_best: 1}
task: {segment: 32, val_clips: 2}
"""
POSTNET_YAML = """
model: {widths: [16, 16], kernel: 3}
task: {segment: 24, val_corpus_clips: 2}
"""


@pytest.fixture(scope="module")
def mel_models(tmp_path_factory):
    from tests.support.mel_models import mel_corpus, mel_syncnet, mel_vae

    base = tmp_path_factory.getbasetemp()
    return {"vae": mel_vae(base), "syncnet": mel_syncnet(base), "corpus": mel_corpus(base)}


def _data(out: Path) -> dict:
    run = json.loads((out / "run.json").read_text())
    return run.get("data", run)


def test_audio2motion_fine_tunes_on_the_person(person, mel_models, tmp_path, one_torch_thread):
    (tmp_path / "ft.yaml").write_text(FINE_TUNE_YAML)
    out = tmp_path / "ft"
    assert main(["train", "audio2motion", "--init", str(mel_models["vae"]), "--person", str(person), "--syncnet",
                 str(mel_models["syncnet"]), "--out", str(out), "--config", str(tmp_path / "ft.yaml"), "--steps", "6",
                 "--quiet", "--threads", "1"]) == 0
    data = _data(out)
    # both training clips, each split on its own (45 + 5 frames), the held-out clip never read
    assert (data["train_frames"], data["val_frames"], data["held_out_frames_unread"]) == (90, 10, 50)
    assert (out / "model.safetensors").exists()


def test_landmark_projection_fits_the_persons_training_clips(person, tmp_path):
    from geneface.core.checkpoint import read_checkpoint

    out = tmp_path / "proj"
    assert main(["train", "domain_adapter", "--plugin", "landmark_projection", "--person", str(person), "--out",
                 str(out), "--quiet"]) == 0
    info = _data(out)
    assert (info["train_frames"], info["held_out_frames"], info["clips"]) == (100, 50, 2)
    state = read_checkpoint(out / "model.safetensors").state
    assert max(len(v) for v in state.values()) == 100  # the two training clips' frames, no held-out one


def test_adversarial_postnet_trains_on_the_person(person, mel_models, tmp_path, one_torch_thread):
    (tmp_path / "postnet.yaml").write_text(POSTNET_YAML)
    out = tmp_path / "postnet"
    assert main(["train", "domain_adapter", "--plugin", "adversarial_postnet", "--person", str(person), "--corpus",
                 str(mel_models["corpus"]), "--motion-generator", str(mel_models["vae"]), "--syncnet",
                 str(mel_models["syncnet"]), "--out", str(out), "--config", str(tmp_path / "postnet.yaml"),
                 "--steps", "4", "--val-every", "2", "--batch-size", "4", "--quiet", "--threads", "1"]) == 0
    info = _data(out)
    assert (info["train_frames"], info["held_out_frames"], info["clips"]) == (100, 50, 2)
    assert [c["step"] for c in json.loads((out / "choice.json").read_text())["candidates"]] == [2, 4]


def test_bench_adapters_scores_the_persons_held_out_clip(person, mel_models, tmp_path, capsys, one_torch_thread):
    out = tmp_path / "bench"
    assert main(["bench", "adapters", "--person", str(person), "--motion-generator", str(mel_models["vae"]),
                 "--syncnet", str(mel_models["syncnet"]), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    result = json.loads((out / "adapters.json").read_text())
    assert result["settings"]["n_frames"] == 50  # the held-out clip, whole, with its own audio
    assert [c["clip"] for c in result["clips"]] == ["person/clip2:100"]


def test_an_unclear_peak_together_is_read_by_the_clips_of_known_offset(monkeypatch, capsys):
    """Short clips of one rhythm alias even together (GRID: two near-equal peaks, 5 frames apart);
    the person's clips of known offset say which peak is the person's own."""
    from types import SimpleNamespace

    from geneface.processing.av_offset import MAX_LAG, OffsetEstimate
    from geneface.training import person_offset

    def curve(*peaks):
        c = np.zeros(2 * MAX_LAG + 1)
        for lag, value in peaks:
            c[lag + MAX_LAG] = value
        return tuple(c)

    unclear = {0: OffsetEstimate(None, "unknown", "no clear peak", 0.58, 0.02, curve((-1, 0.58), (-6, 0.56))),
               -6: OffsetEstimate(None, "unknown", "no clear peak", 0.58, 0.02, curve((-6, 0.58), (-1, 0.56)))}
    known = OffsetEstimate(-1, "ok", "", 0.66, 0.17, curve((-1, 0.66)))
    flagged = SimpleNamespace(manifest={"av_offset": {"skip_training": True}})
    fine = SimpleNamespace(manifest={"av_offset": {"status": "ok", "skip_training": False}})
    for best, use in ((0, True), (-6, False)):
        monkeypatch.setattr(person_offset, "pooled_offset",
                            lambda ds, best=best: unclear[best] if ds[0] is flagged else known)
        offsets = person_offset.clip_offsets([fine, flagged, flagged], "p")
        assert [o.use for o in offsets] == [True, use, use] and all(o.frames == 0 for o in offsets)
    err = capsys.readouterr().err
    assert "best lag together (-1) is where the person's clips of known offset peak (-1): read as recorded" in err
    assert "left out of audio training" in err
