"""`geneface eval` and `geneface.app.eval`: the field's evaluation of one video.

Made here, once per module: a 3 s synthetic talking head with its speech (128 px), a tiny
SyncNet trained for a few seconds on a 4-clip synthetic corpus (mel features, the subject's
exact canonical landmarks; the clip judged is not among them), and the clip re-tracked once.
The library tests share that one tracking pass; the CLI tests run the whole command.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import attrs
import numpy as np
import pytest

from geneface.cli import main
from geneface.core.media import probe_video, read_audio, read_video, write_video, write_wav
from geneface.core.records import Audio, AudioFeatures, Motion
from geneface.errors import GenefaceError, UsageError
from geneface.metrics.image import PSNR_MAX
from geneface.metrics.sync import face_runs
from geneface.registry import Registry, get_registry
from geneface.app.eval import (
    AudioFacts,
    RunFacts,
    SyncScores,
    VideoEvaluation,
    canonical_landmarks,
    check_reference,
    evaluate_video,
    load_syncnet,
    run_facts,
    score_reference,
    score_sync,
    syncnet_encoder,
    track_video,
    video_facts,
)
from geneface.app.eval_report import FORMAT

from support.mel_models import mel_syncnet

SHIFT = 6  # frames the audio is delayed by in the "out of sync" case
MAX_OFFSET = 8


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("eval")


@pytest.fixture(scope="module")
def clip(root) -> Path:
    folder = root / "clip"
    assert main(["synth", "-o", str(folder), "--seconds", "3", "--size", "128", "--seed", "3", "-q"]) == 0
    return folder


@pytest.fixture(scope="module")
def syncnet(tmp_path_factory) -> Path:
    """A tiny SyncNet (mel) trained on four other synthetic clips, ~10 s (shared by the session)."""
    return mel_syncnet(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def tracker():
    from geneface.app.components import face_tracker

    return face_tracker(None, get_registry())


@pytest.fixture(scope="module")
def tracked(clip, tracker):
    return track_video(clip / "video.mp4", tracker)


@pytest.fixture(scope="module")
def shifted_wav(root, clip) -> Path:
    """The clip's speech delayed by SHIFT frames (silence in front), same length."""
    audio = read_audio(clip / "speech.wav")
    delay = np.zeros(SHIFT * audio.sample_rate // 25, np.float32)
    path = root / "shifted.wav"
    write_wav(path, Audio(np.concatenate([delay, audio.samples])[: len(audio.samples)], audio.sample_rate))
    return path


def _write(path: Path, frames, audio_path: Path) -> Path:
    write_video(path, frames, audio=read_audio(audio_path))
    return path


# -- against a reference ----------------------------------------------------------------------


def test_video_against_itself_scores_perfectly(clip, tracked, tracker):
    facts = video_facts(clip / "video.mp4")
    scores = score_reference(facts, facts, tracked, tracker)
    assert scores.frames == facts.frames == 75
    assert scores.psnr == scores.psnr_face == PSNR_MAX
    assert scores.ssim == pytest.approx(1.0) and scores.ssim_face == pytest.approx(1.0)
    assert scores.face_frames == 75 and scores.reference_missing == ()
    # The same tracker on the same frames: the same points, LMD exactly 0.
    assert scores.lmd == 0.0 and scores.lmd_frames == 75 and scores.resolution == 128
    assert scores.note is None


def test_degraded_reference_scores_worse(root, clip, tracked, tracker):
    import cv2

    frames = read_video(clip / "video.mp4")
    # Three frames late, blurred and moved 3 px: another mouth shape in most frames.
    late = np.concatenate([frames[:1].repeat(3, 0), frames[:-3]])
    worse = [np.roll(cv2.GaussianBlur(f, (5, 5), 1.5), 3, axis=1) for f in late]
    ref = _write(root / "worse.mp4", worse, clip / "speech.wav")
    scores = score_reference(video_facts(clip / "video.mp4"), video_facts(ref), tracked, tracker)
    assert scores.frames == 75
    assert 10.0 < scores.psnr < 35.0 and scores.psnr_face < 35.0
    assert scores.ssim < 0.95 and scores.ssim_face < 0.95
    assert scores.lmd > 0.3 and scores.lmd_frames > 60


def test_reference_size_and_length_checks(root, clip):
    facts = video_facts(clip / "video.mp4")
    # One or two frames apart (an encoder's rounding of the end): the common frames, said so.
    shorter = attrs.evolve(facts, path="ref.mp4", frames=facts.frames - 2)
    assert check_reference(facts, shorter) == (73, "the video is 2 frames longer (75 vs 73); scored the first 73 "
                                                    "frames of both")
    assert check_reference(facts, facts) == (75, None)
    # More is not the same footage: one line naming both files, before anything is tracked.
    frames = read_video(clip / "video.mp4")
    short = _write(root / "short.mp4", frames[:40], clip / "speech.wav")
    with pytest.raises(UsageError, match=r"video\.mp4 has 75 frames but the reference .*short\.mp4 has 40"):
        evaluate_video(clip / "video.mp4", clip / "speech.wav", get_registry(), reference=short)
    small = _write(root / "small.mp4", [f[::2, ::2] for f in frames], clip / "speech.wav")
    with pytest.raises(UsageError, match=r"128 x 128 px but the reference .*small\.mp4 is 64 x 64 px"):
        evaluate_video(clip / "video.mp4", clip / "speech.wav", get_registry(), reference=small)


# -- lip sync -----------------------------------------------------------------------------


def test_sync_in_sync_beats_shifted_audio(clip, syncnet, tracked, tracker, shifted_wav):
    scorer = load_syncnet(syncnet, get_registry())
    encoder = syncnet_encoder(scorer, get_registry(), syncnet)
    assert encoder.name == "mel"  # the checkpoint names the encoder it was trained on
    canonical = canonical_landmarks(tracked, tracker)
    assert canonical.shape == (75, 68, 3) and np.isfinite(canonical).all()
    own = score_sync(canonical, tracked.found, encoder.encode(read_audio(clip / "speech.wav")), scorer, MAX_OFFSET)
    late = score_sync(canonical, tracked.found, encoder.encode(read_audio(shifted_wav)), scorer, MAX_OFFSET)
    for result in (own, late):
        assert result.offsets == tuple(range(-MAX_OFFSET, MAX_OFFSET + 1)) and len(result.curve) == len(result.offsets)
        assert result.windows == 71 and result.frames_scored == 75 and result.segments == ((0, 75),)
        assert result.frames_left_out == () and result.encoder == "mel" and result.scorer == "syncnet"
    # In sync, the mouth matches its own audio better at offset 0 than when the audio is late ...
    assert own.confidence > late.confidence + 0.02
    assert own.score_at(0) > max(own.score_at(-5), own.score_at(5))
    assert abs(own.offset) <= 2  # a tiny SyncNet: the relative checks around it are the strict ones
    # ... and a delay of SHIFT frames moves the best offset by about SHIFT.
    assert SHIFT - 2 <= late.offset - own.offset <= SHIFT + 2
    assert late.score_at(SHIFT) > late.score_at(0)


def test_sync_leaves_out_windows_over_faceless_frames(clip, syncnet, tracked, tracker):
    scorer = load_syncnet(syncnet, get_registry())
    features = syncnet_encoder(scorer, get_registry()).encode(read_audio(clip / "speech.wav"))
    canonical = canonical_landmarks(tracked, tracker)
    found = tracked.found.copy()
    found[[30, 31, 62]] = False  # no face: 0-29, 32-61 and 63-74 are runs; 63-74 ...
    canonical[[30, 31, 62]] = np.nan  # ... whatever these rows hold is never read
    result = score_sync(canonical, found, features, scorer, MAX_OFFSET)
    assert result.segments == ((0, 30), (32, 62), (63, 75))
    assert result.frames_left_out == (30, 31, 62)
    assert result.windows == 26 + 26 + 8 and result.frames_scored == 72
    # The runs of 30 frames reach +-8 offsets; the 12-frame one only +-3 (offset 0 counts it).
    assert result.offsets == tuple(range(-MAX_OFFSET, MAX_OFFSET + 1))
    # Pooled as documented: offset 0 over every window, the curve over the runs reaching +-8,
    # each run scored by the scorer itself under one normalisation (the face frames' own).
    faces = canonical[found]
    parts = []
    for a, b in result.segments:
        motion = Motion(canonical[a:b], mean=faces.mean(0), std=faces.std(0))
        parts.append(scorer.score(motion, AudioFeatures(features.values[2 * a: 2 * b], encoder="mel"), MAX_OFFSET))
    assert [len(p.offsets) for p in parts] == [17, 17, 7]
    assert result.confidence == pytest.approx((26 * parts[0].confidence + 26 * parts[1].confidence
                                               + 8 * parts[2].confidence) / 60)
    curve = (np.asarray(parts[0].curve) + np.asarray(parts[1].curve)) / 2
    assert result.curve == pytest.approx(curve.tolist())
    assert result.offset == result.offsets[int(np.argmax(curve))]
    # A run shorter than one 5-frame window is left out too, and counted.
    runs, left = face_runs(np.r_[np.ones(4, bool), False, np.ones(10, bool)], 15, 5)
    assert runs == [(5, 15)] and left == [0, 1, 2, 3, 4]
    with pytest.raises(UsageError, match="at least 5 consecutive frames with a face"):
        score_sync(canonical, np.arange(75) % 4 != 0, features, scorer, MAX_OFFSET)


# -- the command --------------------------------------------------------------------------


def test_cli_json_with_sync_reference_sidecar_and_faceless_frames(root, clip, syncnet, capsys):
    frames = read_video(clip / "video.mp4")
    frames[40:43] = 128  # three grey frames: no face there
    video = _write(root / "talk.mp4", frames, clip / "speech.wav")
    (root / "talk.run.json").write_text(json.dumps({"fps": 31.5, "frames": 75, "seconds": 2.38, "device": "cpu"}))
    out = root / "scores.json"
    code = main(["eval", str(video), "--audio", str(clip / "speech.wav"), "--reference", str(clip / "video.mp4"),
                 "--syncnet", str(syncnet), "--max-offset", str(MAX_OFFSET), "--json", "--out", str(out), "-q"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    assert set(printed) == {"format", "video", "audio", "run", "faces", "sync", "reference", "notes"}
    assert printed["format"] == FORMAT
    assert printed["video"] == {"path": str(video), "frames": 75, "fps": 25.0, "duration": 3.0, "width": 128,
                                "height": 128, "has_audio": True, "codec": "h264"}
    assert printed["audio"]["frames"] == 75 and printed["audio"]["length_difference_frames"] == 0
    assert printed["run"]["fps"] == 31.5 and printed["run"]["device"] == "cpu"
    assert printed["run"]["sidecar"] == str(root / "talk.run.json")
    assert printed["faces"] == {"frames": 75, "missing": [40, 41, 42], "n_missing": 3}
    sync = printed["sync"]
    assert set(sync) == {"checkpoint", "scorer", "encoder", "max_offset", "confidence", "offset", "offset_confidence",
                         "offsets", "curve", "windows", "frames_scored", "segments", "frames_left_out"}
    assert sync["segments"] == [[0, 40], [43, 75]] and sync["frames_left_out"] == [40, 41, 42]
    assert sync["offsets"] == list(range(-MAX_OFFSET, MAX_OFFSET + 1)) and len(sync["curve"]) == 2 * MAX_OFFSET + 1
    assert sync["encoder"] == "mel" and sync["checkpoint"] == str(syncnet)
    ref = printed["reference"]
    assert set(ref) == {"path", "frames", "frames_video", "frames_reference", "psnr", "ssim", "psnr_face", "ssim_face",
                        "face_frames", "lmd", "lmd_frames", "resolution", "reference_missing", "note"}
    # Re-encoded (lossy) and three grey frames: below the cap; LMD only where both have a face.
    assert 20.0 < ref["psnr"] < PSNR_MAX and ref["lmd_frames"] == 72 and ref["lmd"] < 1.5
    assert ref["face_frames"] == 75 and ref["reference_missing"] == []
    assert any("no face found in 3 of 75 frames" in n for n in printed["notes"])


def test_cli_table_speed_unknown_and_audio_length(root, clip, capsys):
    video = root / "plain.mp4"
    shutil.copy(clip / "video.mp4", video)
    audio = read_audio(clip / "speech.wav")
    short = root / "short.wav"
    write_wav(short, Audio(audio.samples[: 16000 * 2], audio.sample_rate))  # 2 s of the 3 s
    assert main(["eval", str(video), "--audio", str(short)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^run speed +unknown$", text, re.M)
    assert re.search(r"^video - audio +\+25 frames$", text, re.M) and "the video is 25 frames longer" in text
    # Nothing asked that needs the face: nothing is tracked.
    assert "no face" not in text and "sync" not in text and "LMD" not in text


def test_run_facts_reads_the_sidecar(root, clip):
    video = root / "side.mp4"
    assert run_facts(video) == RunFacts(note="no side.run.json next to the video: speed unknown")
    (root / "side.run.json").write_text(json.dumps({"fps": 12.0, "frames": 75, "seconds": 6.25, "device": "cuda:0",
                                                    "renderer": "hashgrid_nerf"}))
    facts = run_facts(video)
    assert (facts.fps, facts.frames, facts.seconds, facts.device, facts.note) == (12.0, 75, 6.25, "cuda:0", None)
    (root / "side.run.json").write_text("{not json")
    broken = run_facts(video)
    assert broken.fps is None and "unreadable" in broken.note
    (root / "side.run.json").write_text(json.dumps({"fps": None, "frames": 75}))
    assert run_facts(video).fps is None and run_facts(video).frames == 75


def test_cli_one_line_errors(root, clip, capsys):
    from geneface.core.checkpoint import save_checkpoint, stage_checkpoint
    from geneface.registry import get_registry

    video, wav = str(clip / "video.mp4"), str(clip / "speech.wav")

    def fails(args, pattern):
        assert main(["eval", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        lines = [line for line in err if line.startswith("error:")]
        assert len(lines) == 1, err
        assert pattern in lines[0], lines[0]

    fails([str(root / "nope.mp4"), "--audio", wav], "nope.mp4: no such file")
    fails([video, "--audio", str(root / "nope.wav")], "nope.wav: no such file")
    fails([video, "--audio", wav, "--reference", str(root / "gone.mp4")], "gone.mp4: no such file")
    fails([video, "--audio", wav, "--syncnet", str(root / "none.safetensors")], "none.safetensors: no such file")
    adapter = root / "adapter.safetensors"
    save_checkpoint(adapter, stage_checkpoint(get_registry().get("domain_adapter", "identity").cls()))
    fails([video, "--audio", wav, "--syncnet", str(adapter)],
          f"--syncnet: {adapter}: holds a domain_adapter ('identity'), not a syncnet")
    fails([video, "--audio", wav, "--syncnet", video], "video.mp4: corrupt or truncated checkpoint")
    entry = get_registry().get("syncnet", "syncnet")
    anonymous = root / "anonymous.safetensors"  # a SyncNet whose checkpoint names no audio encoder
    save_checkpoint(anonymous, stage_checkpoint(entry.cls(entry.cls.Config(channels=(8, 8, 8), embed=8))))
    fails([video, "--audio", wav, "--syncnet", str(anonymous)], "does not name the audio encoder it was trained on")
    empty = root / "empty.mp4"
    empty.write_bytes(b"")
    fails([str(empty), "--audio", wav], "empty.mp4: cannot open as media")
    (root / "taken.json").write_text("{}")
    fails([video, "--audio", wav, "--out", str(root / "taken.json")], "taken.json: already exists")
    fails([video, "--audio", wav, "--max-offset", "-1"], "--max-offset must be >= 0")


def test_no_face_at_all_is_an_error(root, clip, syncnet, capsys):
    grey = _write(root / "grey.mp4", [np.full((128, 128, 3), 128, np.uint8)] * 12, clip / "speech.wav")
    assert probe_video(grey).n_frames() == 12
    with pytest.raises(GenefaceError, match="grey.mp4: no face found in any of its 12 frames") as info:
        evaluate_video(grey, clip / "speech.wav", get_registry(), reference=grey)
    assert info.value.exit_code == 2
    assert main(["eval", str(grey), "--audio", str(clip / "speech.wav"), "--syncnet", str(syncnet), "-q"]) == 2
    assert "grey.mp4: no face found in any of its 12 frames" in capsys.readouterr().err


def test_evaluation_record_as_json():
    sync = SyncScores(checkpoint="s.safetensors", scorer="syncnet", encoder="mel", max_offset=1, confidence=0.5,
                      offset=0, offset_confidence=float("nan"), offsets=(-1, 0, 1), curve=(0.1, 0.5, 0.2))
    ev = VideoEvaluation(video=_facts(), audio=AudioFacts("a.wav", 1.0, 25, 0),
                         run=RunFacts(), sync=sync, notes=["x"])
    data = json.loads(ev.to_json())
    assert data["sync"]["offset_confidence"] is None  # NaN is not JSON
    assert data["sync"]["offsets"] == [-1, 0, 1] and data["notes"] == ["x"]
    assert data["faces"] is None and data["reference"] is None
    assert sync.score_at(1) == 0.2 and sync.score_at(5) is None


def _facts():
    from geneface.app.eval import VideoFacts

    return VideoFacts("v.mp4", 25, 25.0, 1.0, 64, 64, True, "h264")


def test_a_video_too_short_for_lip_sync_is_our_line_alone(root, clip, syncnet, capsys, recwarn):
    """A 1-frame video: refused before the audio is encoded, so no library warns first (librosa
    of an n_fft longer than the signal)."""
    import warnings

    warnings.simplefilter("always")
    first = next(iter(read_video(clip / "video.mp4")))
    speech = read_audio(clip / "speech.wav")
    short = root / "one_frame.wav"
    write_wav(short, Audio(speech.samples[:640]))
    one = root / "one_frame.mp4"
    write_video(one, [first], audio=Audio(speech.samples[:640]))
    assert main(["eval", str(one), "--audio", str(short), "--syncnet", str(syncnet), "-q"]) == 2
    assert capsys.readouterr().err == (f"error: lip sync needs at least 5 consecutive frames with a face and audio; "
                                       f"{one} has 1 frames and {short} audio for 1\n")
    assert [str(w.message) for w in recwarn] == []


def test_the_evaluation_uses_the_registry_it_is_handed(root, clip, syncnet):
    """eval fetches no registry of its own: the tracker, the SyncNet and its encoder come from
    the one the command hands down (issue 34). An empty registry has none of them."""
    from geneface.errors import PluginError

    with pytest.raises(PluginError, match="syncnet"):
        evaluate_video(clip / "video.mp4", clip / "speech.wav", Registry(), syncnet=syncnet)
    with pytest.raises(PluginError, match="face_tracker"):
        evaluate_video(clip / "video.mp4", clip / "speech.wav", Registry(), reference=clip / "video.mp4")
