"""The audio-to-video offset: its estimate, its rule, and `process` / `dataset av-offset`.

The synthetic subject's ground truth gives the mouth opening that its speech was made with,
so a known shift of the audio must come back from the estimate (within its one-frame spread).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from geneface.cli import main
from geneface.core.dataset import Dataset
from geneface.core.landmarks68 import mouth_openness
from geneface.processing import av_offset as av
from geneface.synth.clip import ClipSpec, generate, write_clip


@pytest.fixture(scope="module")
def talking():
    clip = generate(ClipSpec(seconds=6, size=64, seed=1))
    return clip.ground_truth.mouth_openness, clip.speech.audio.samples


@pytest.mark.parametrize("late", [-4, 0, 3, 7])
def test_a_known_shift_comes_back_within_a_frame(talking, late):
    mouth, samples = talking
    estimate = av.estimate_offset(mouth, av.shift_audio(samples, -late))
    assert estimate.status == "ok" and abs(estimate.frames - late) <= 1
    assert estimate.peak > 0.4 and len(estimate.curve) == 2 * av.MAX_LAG + 1


def test_a_clip_that_cannot_tell_is_unknown_never_guessed(talking):
    mouth, samples = talking
    short = av.estimate_offset(mouth[:50], samples[: 50 * av.HOP])
    assert short.status == "unknown" and short.frames is None and "needs 3 s" in short.reason
    noise = np.random.default_rng(0).normal(scale=0.1, size=len(samples))
    unrelated = av.estimate_offset(mouth, noise)
    assert unrelated.status == "unknown" and "barely correlate" in unrelated.reason
    # Frames without a face do not count towards the seconds a clip needs.
    usable = np.zeros(len(mouth), bool)
    usable[:60] = True
    assert av.estimate_offset(mouth, samples, usable).status == "unknown"


def test_the_rule():
    ok = lambda frames: av.OffsetEstimate(frames, "ok", "", 0.5, 0.2, ())  # noqa: E731
    unknown = av.OffsetEstimate(None, "unknown", "no clear peak", 0.3, 0.01, ())
    assert av.decide("auto", ok(4)) == av.OffsetDecision("auto", 4, False)
    assert av.decide("auto", ok(-2)) == av.OffsetDecision("auto", -2, False)
    assert av.decide("auto", ok(1)) == av.OffsetDecision("auto", 0, False)  # within the spread
    assert av.decide("auto", unknown) == av.OffsetDecision("auto", 0, True)
    assert av.decide("0", unknown) == av.OffsetDecision("0", 0, False)
    assert av.decide("-3", ok(5)) == av.OffsetDecision("-3", -3, False)
    assert av.parse_mode(" 2 ") == "2"
    with pytest.raises(ValueError, match="auto, 0 or a whole number"):
        av.parse_mode("1.5")


def test_shift_keeps_length_and_zero_fills():
    y = np.arange(1, 5 * av.HOP + 1, dtype=np.float32)
    early = av.shift_audio(y, 2)
    assert len(early) == len(y) and early[0] == y[2 * av.HOP] and not early[-2 * av.HOP:].any()
    late = av.shift_audio(y, -1)
    assert not late[: av.HOP].any() and late[av.HOP] == y[0]
    assert np.array_equal(av.shift_audio(y, 0), y)


@pytest.fixture(scope="module")
def late_clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("late")
    folder = write_clip(ClipSpec(seconds=6, size=256, seed=2, audio_offset_frames=4), root / "clip")
    out = root / "ds"
    assert main(["process", str(folder / "video.mp4"), "-o", str(out), "--size", "128", "--quiet"]) == 0
    return out


def _estimate_of(dataset: Dataset) -> av.OffsetEstimate:
    return av.estimate_offset(mouth_openness(dataset.landmarks_image()), dataset.audio().samples)


def test_process_corrects_a_late_audio_track(late_clip, capsys):
    ds = Dataset(late_clip)
    section = ds.manifest["av_offset"]
    assert section["mode"] == "auto" and section["status"] == "ok"
    assert abs(section["estimated_frames"] - 4) <= 1
    assert section["applied_frames"] == section["estimated_frames"] and not section["skip_training"]
    # The dataset's audio is the corrected one: it now estimates in sync.
    assert abs(_estimate_of(ds).frames) <= 1
    assert main(["dataset", "info", str(late_clip)]) == 0
    out = capsys.readouterr().out
    assert "av offset" in out and "audio late" in out and "moved" in out


def test_dataset_av_offset_reapplies_another_mode(late_clip, tmp_path, capsys):
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(late_clip, copy)
    mel_before = Dataset(copy).audio_features("mel").values.copy()
    # Mode 0: back to the audio as recorded (late by 4), features recomputed to match.
    assert main(["dataset", "av-offset", str(copy), "--av-offset", "0"]) == 0
    ds = Dataset(copy)
    assert ds.manifest["av_offset"]["applied_frames"] == 0 and ds.manifest["settings"]["av_offset"] == "0"
    assert abs(_estimate_of(ds).frames - 4) <= 1
    assert not np.allclose(ds.audio_features("mel").values, mel_before)
    # And auto again: the same correction as `process` made.
    assert main(["dataset", "av-offset", str(copy)]) == 0
    ds = Dataset(copy)
    again, first = ds.manifest["av_offset"], json.loads((late_clip / "manifest.json").read_text())["av_offset"]
    assert {k: v for k, v in again.items() if k != "curve"} == {k: v for k, v in first.items() if k != "curve"}
    # (the curve differs in the last decimal: undoing a shift zero-fills the edge it left)
    assert np.allclose(again["curve"], first["curve"], atol=0.01)
    # (process encodes the float audio, a rerun the 16-bit wav: log-mel within a few hundredths)
    assert np.abs(ds.audio_features("mel").values - mel_before).max() < 0.1
    capsys.readouterr()
    assert main(["dataset", "av-offset", str(copy), "--av-offset", "soon"]) == 2
    err = capsys.readouterr().err
    assert "--av-offset" in err and "soon" in err and "Traceback" not in err


def test_training_skips_a_clip_whose_offset_is_unknown(tmp_path, capsys):
    from support.toy import ToyEncoder, toy_clip, write_toy_dataset

    from geneface.training.data import read_dataset_clips

    for k in range(2):
        write_toy_dataset(tmp_path / f"c{k}", toy_clip(f"c{k}", 0, 60, 16, k))
    manifest = json.loads((tmp_path / "c1" / "manifest.json").read_text())
    manifest["av_offset"] = {"status": "unknown", "skip_training": True}
    (tmp_path / "c1" / "manifest.json").write_text(json.dumps(manifest))
    clips = read_dataset_clips(tmp_path, ToyEncoder())
    assert [c.source for c in clips] == [str(tmp_path / "c0")]
    assert "skipped 1 clips whose audio-to-video offset is unknown (c1" in capsys.readouterr().err


def test_a_person_without_the_encoders_features_gets_them_from_its_audio(late_clip):
    """Fine-tuning a whisper model on a person processed with mel alone: the features are
    computed from the dataset's audio.wav, not refused."""
    from geneface.plugins.mel import MelEncoder
    from geneface.training.person_data import load_person

    class Renamed(MelEncoder):
        name = "mel_again"  # stored under no such name in the dataset

    person = load_person(late_clip, Renamed())
    stored = Dataset(late_clip).audio_features("mel").values
    first = person.train[0]
    assert first.features.shape[1] == stored.shape[1]
    assert np.abs(first.features - stored[: len(first.features)]).max() < 0.1
