"""The synthetic talking subject: shapes, determinism, ground truth, sync, variation, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from geneface.cli import main
from geneface.core.landmarks68 import mouth_openness
from geneface.errors import UsageError
from geneface.synth import clip as clipmod
from geneface.synth.clip import ClipSpec, GroundTruth, generate, get_rig, make_speech, plan_performance, render_frame
from geneface.synth.motion import blink_track, euler_to_matrix, head_motion, matrix_to_euler
from geneface.synth.photo import clear_cache
from geneface.synth.render import Rasterizer
from geneface.synth.variation import Identity, Style
from geneface.synth.visemes import VISEME_ID, articulate, viseme_of
from geneface.speech import Phoneme

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Papa bought a big blue map. Why are you so far away?"


@pytest.fixture(scope="module")
def clip():
    return generate(ClipSpec(text=TEXT, size=128, seed=3, style=Style(blink_rate=2.0)))


def _lag_corr(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    """Correlation of a[t] with b[t + lag]."""
    if lag >= 0:
        x, y = a[: len(a) - lag], b[lag:]
    else:
        x, y = a[-lag:], b[: len(b) + lag]
    return float(np.corrcoef(x, y)[0, 1])


def _energy_envelope(samples: np.ndarray, sr: int, n_frames: int, fps: float = 25.0) -> np.ndarray:
    """Log RMS over an 80 ms window centred on each frame centre."""
    hop = sr / fps
    out = np.empty(n_frames)
    for k in range(n_frames):
        c = (k + 0.5) * hop
        seg = samples[max(0, int(c - hop)): int(c + hop)]
        out[k] = np.log(np.sqrt(np.mean(np.square(seg, dtype=np.float64))) + 1e-4)
    return out


# --------------------------------------------------------------------------- shapes
def test_clip_shapes_and_ranges(clip):
    gt = clip.ground_truth
    T = len(clip.frames)
    assert clip.frames.shape == (T, 128, 128, 3) and clip.frames.dtype == np.uint8
    assert T == round(clip.speech.duration * 25)
    assert clip.audio.duration == pytest.approx(T / 25.0, abs=1e-3)
    assert gt.n_frames == T
    assert gt.rotation.shape == (T, 3, 3) and gt.translation.shape == (T, 3)
    assert gt.landmarks68_image.shape == (T, 68, 2)
    assert gt.landmarks68_camera.shape == (T, 68, 3)
    assert gt.landmarks68_canonical.shape == (T, 68, 3)
    assert gt.mouth_opening.shape == gt.mouth_openness.shape == gt.blink.shape == (T,)
    assert gt.viseme.shape == (T,) and gt.articulation.shape == (T, 5)
    assert gt.audio_offset_frames == 0
    # the face fills the frame sensibly and stays inside it
    lm = gt.landmarks68_image
    assert lm.min() > 0 and lm.max() < 128
    # the head moves a few degrees, slowly; mouth, blinks and visemes all happen
    assert 0.5 < np.ptp(gt.motion_euler_deg, axis=0).max() < 12
    assert np.abs(np.diff(gt.motion_euler_deg, axis=0)).max() < 0.5  # degrees per frame
    assert gt.mouth_opening.max() > 0.8 and gt.mouth_opening[:3].max() < 0.1  # cm; closed before speech
    assert gt.blink.max() > 0.9
    assert {VISEME_ID["PP"], VISEME_ID["aa"], VISEME_ID["sil"]} <= set(gt.viseme.tolist())


def test_same_seed_same_clip_other_seed_other_motion():
    spec = ClipSpec(text="Hello there.", size=64, seed=11)
    a = generate(spec)
    clear_cache()  # re-track the photo and rebuild the rig: nothing carried over
    clipmod._RIGS.clear()
    b = generate(spec)
    assert np.array_equal(a.frames, b.frames)
    assert np.array_equal(a.audio.audio.samples, b.audio.audio.samples)
    for name in ("rotation", "landmarks68_image", "mouth_opening", "blink", "viseme"):
        assert np.array_equal(getattr(a.ground_truth, name), getattr(b.ground_truth, name)), name
    c = generate(ClipSpec(text="Hello there.", size=64, seed=12))
    assert not np.allclose(a.ground_truth.motion_euler_deg, c.ground_truth.motion_euler_deg)
    # the seed moves the head and the lids; the speech and the mouth stay the same
    assert np.array_equal(a.ground_truth.viseme, c.ground_truth.viseme)
    assert np.allclose(a.ground_truth.articulation, c.ground_truth.articulation)


# ------------------------------------------------------------------- ground truth
def test_ground_truth_geometry_is_exact(clip):
    gt = clip.ground_truth
    R = gt.rotation.astype(np.float64)
    assert np.allclose(R @ np.transpose(R, (0, 2, 1)), np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.det(R), 1.0, atol=1e-5)
    cam = np.einsum("tij,tnj->tni", R, gt.landmarks68_canonical) + gt.translation[:, None]
    assert np.allclose(cam, gt.landmarks68_camera, atol=1e-3)
    proj = cam[..., :2] / cam[..., 2:] * gt.focal + np.array(gt.principal)
    assert np.allclose(proj, gt.landmarks68_image, atol=1e-2)
    assert np.allclose(euler_to_matrix(gt.euler_deg), R, atol=1e-5)
    assert np.allclose(mouth_openness(gt.landmarks68_canonical), gt.mouth_openness, atol=1e-5)
    # the head motion is what separates the pose of frame t from the photo's own pose
    R0 = np.einsum("ij,jk->ik", euler_to_matrix(gt.motion_euler_deg[0]).T, R[0])
    assert np.allclose(euler_to_matrix(gt.motion_euler_deg) @ R0, R, atol=1e-5)


def test_landmarks_sit_on_the_rendered_features(clip):
    """The pixel rendered at each projected landmark shows the photo's pixel of that
    landmark; moving the landmarks by 2 px makes the match much worse."""
    spec = clip.spec
    rig = get_rig(spec.identity, spec.size)
    tex = rig.texture.astype(np.float32)
    t68 = rig.tex68().astype(np.float32)
    expected = cv2.remap(tex, t68[None, :, 0], t68[None, :, 1], cv2.INTER_LINEAR)[0]
    frames = clip.frames.astype(np.float32)

    def error(offset):
        errs = []
        for k in range(len(frames)):
            p = (clip.ground_truth.landmarks68_image[k] + offset).astype(np.float32)
            got = cv2.remap(frames[k], p[None, :, 0], p[None, :, 1], cv2.INTER_LINEAR)[0]
            errs.append(np.abs(got - expected).mean(1))
        return np.array(errs)

    exact = error(np.zeros(2))
    assert exact.mean() < 8.0  # grey levels
    assert exact[:, 36:48].mean() < 8.0 and exact[:, 48:60].mean() < 10.0  # eyes, lips
    assert error(np.array([2.0, 0.0])).mean() > 2 * exact.mean()
    assert error(np.array([0.0, 2.0])).mean() > 2 * exact.mean()


def test_open_mouth_shows_the_interior_between_the_lip_landmarks(clip):
    """Where the ground truth says the lips are apart, the renderer draws the mouth
    interior between them; on the outer lip landmarks it draws the face."""
    spec = clip.spec
    rig = get_rig(spec.identity, spec.size)
    speech, _ = make_speech(spec)
    perf = plan_performance(speech, len(clip.frames), spec)
    raster = Rasterizer(rig.texture, rig.size)
    lm = clip.ground_truth.landmarks68_image
    gap = np.linalg.norm(lm[:, 62] - lm[:, 66], axis=-1)
    open_frames = np.flatnonzero(gap > 2.5)
    closed_frames = np.flatnonzero(gap < 0.3)
    assert len(open_frames) >= 5 and len(closed_frames) >= 3
    for k in np.r_[open_frames[::2], closed_frames[:3]]:
        frame, ids, _ = render_frame(rig, raster, perf, k, spec.style)
        assert np.array_equal(frame, clip.frames[k])
        interior = ids < rig.n_interior_triangles

        def at(points):
            xy = np.round(points).astype(int)
            return interior[xy[:, 1], xy[:, 0]]

        assert not at(lm[k, 48:60]).any()  # outer lip contour: lips
        if k in open_frames:
            assert at(0.5 * (lm[k, [62]] + lm[k, [66]])).all()
        else:
            assert not interior.any() or interior.sum() < 3  # lips shut: no mouth to see


def test_eyes_render_where_the_landmarks_say(clip):
    """Open eyes: the landmarks' eye polygon holds the dark iris, the skin below does not;
    shifted down by 3 px the polygon no longer finds it. Shut eyes: lids close in the GT."""
    gt, frames = clip.ground_truth, clip.frames.astype(np.float32)
    luma = frames @ np.array([0.299, 0.587, 0.114], np.float32)

    def p10(k, pts):
        mask = np.zeros(luma.shape[1:], np.uint8)
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 1, shift=4)
        return np.percentile(luma[k][mask > 0], 10) if mask.any() else np.nan

    open_frames = np.flatnonzero(gt.blink < 0.02)
    for eye in (slice(36, 42), slice(42, 48)):
        inside = np.array([p10(k, gt.landmarks68_image[k, eye]) for k in open_frames])
        height = gt.landmarks68_image[open_frames][:, eye, 1].ptp(axis=1)
        below = np.array([
            p10(k, gt.landmarks68_image[k, eye] + [0, 2 * h + 2]) for k, h in zip(open_frames, height)
        ])
        shifted = np.array([p10(k, gt.landmarks68_image[k, eye] + [0, 3]) for k in open_frames])
        assert np.mean(inside < 0.6 * below) > 0.95
        assert np.nanmean(shifted) > np.mean(inside) + 30
    shut = gt.blink > 0.9
    assert shut.any()
    assert gt.eye_openness[shut].max() < 0.3 * gt.eye_openness[gt.blink < 0.02].min()


def test_audio_and_mouth_agree_at_zero_lag():
    c = generate(ClipSpec(seconds=8.0, size=64, seed=5))
    env = _energy_envelope(c.audio.audio.samples, 16_000, len(c.frames))
    m = c.ground_truth.mouth_opening
    r = {lag: _lag_corr(m, env, lag) for lag in (-5, 0, 5)}
    assert r[0] > 0.45
    assert r[0] > r[5] + 0.2 and r[0] > r[-5] + 0.2


def test_lips_close_for_bilabials_and_open_for_open_vowels(clip):
    gt = clip.ground_truth
    pp = gt.mouth_opening[gt.viseme == VISEME_ID["PP"]]
    aa = gt.mouth_opening[gt.viseme == VISEME_ID["aa"]]
    assert pp.size and aa.size
    assert np.median(pp) < 0.35 * np.median(aa)
    # Coarticulation, not flicker: the jaw moves less than it would jumping from target to
    # target, and no single frame sticks out from both of its neighbours.
    from geneface.synth.visemes import TARGETS

    jaw = gt.articulation[:, 0]
    stepwise = TARGETS[gt.viseme, 0]
    assert np.abs(np.diff(jaw)).sum() < 0.7 * np.abs(np.diff(stepwise)).sum()
    m = gt.mouth_opening
    spike = np.abs(m[1:-1] - 0.5 * (m[:-2] + m[2:]))
    assert spike.max() < 0.4 * m.max()


def test_audio_offset_is_applied_and_recorded():
    base = generate(ClipSpec(text="Testing the offset.", size=64, seed=1))
    late = generate(ClipSpec(text="Testing the offset.", size=64, seed=1, audio_offset_frames=3))
    assert late.ground_truth.audio_offset_frames == 3
    n = 3 * 16_000 // 25
    a, b = base.audio.audio.samples, late.audio.audio.samples
    assert len(a) == len(b)
    assert not np.any(b[:n]) and np.array_equal(b[n:], a[: len(a) - n])
    assert np.array_equal(base.frames, late.frames)  # the picture does not move


# ------------------------------------------------------------------------ variation
def test_style_and_identity_change_measurably():
    text = "Ah, what a wonderful morning."
    base = generate(ClipSpec(text=text, size=64, seed=2))
    loud = generate(ClipSpec(text=text, size=64, seed=2, style=Style(mouth_amplitude=1.5)))
    ratio = loud.ground_truth.mouth_opening.max() / base.ground_truth.mouth_opening.max()
    assert 1.3 < ratio < 1.7
    still = generate(ClipSpec(text=text, size=64, seed=2, style=Style(motion_amplitude=0.0, blink_rate=0.0)))
    assert np.allclose(still.ground_truth.motion_euler_deg, 0) and still.ground_truth.blink.max() == 0

    wide = generate(ClipSpec(text=text, size=64, seed=2, identity=Identity(face_width=0.1, jaw_width=0.1)))
    jaw = lambda c: np.linalg.norm(c.ground_truth.landmarks68_canonical[:, 5] - c.ground_truth.landmarks68_canonical[:, 11], axis=-1)
    assert np.median(jaw(wide)) > 1.1 * np.median(jaw(base))
    big = generate(ClipSpec(text=text, size=64, seed=2, identity=Identity(scale=1.25)))
    span = lambda c: np.ptp(c.ground_truth.landmarks68_image[0], axis=0)
    assert span(big) / span(base) == pytest.approx(1.25, rel=0.03)
    tinted = generate(ClipSpec(text=text, size=64, seed=2, identity=Identity(hue_shift=40)))
    assert np.abs(tinted.frames.astype(int) - base.frames.astype(int)).mean() > 5
    assert np.allclose(tinted.ground_truth.landmarks68_image, base.ground_truth.landmarks68_image)
    drawn = Identity.random(np.random.default_rng(0))
    assert drawn != Identity() and drawn == Identity.random(np.random.default_rng(0))


def test_another_photo_can_be_the_subject():
    """Any RGB photo with a face works; here the astronaut mirrored, whose head roll (about
    3 degrees in the original) comes out with the opposite sign."""
    from geneface.synth.photo import astronaut, track_photo

    mirrored = track_photo(np.ascontiguousarray(astronaut()[:, ::-1]), "astronaut-mirrored")
    spec = ClipSpec(text="Ah, papa.", size=64, seed=0, style=Style(motion_amplitude=0.0))
    flipped = generate(spec, photo=mirrored).ground_truth
    original = generate(spec).ground_truth
    assert flipped.mouth_opening.max() > 0.8
    assert original.euler_deg[0, 2] > 1.5 and flipped.euler_deg[0, 2] < -1.0
    with pytest.raises(UsageError, match="no face"):
        track_photo(np.full((128, 128, 3), 200, np.uint8), "blank")


def test_visemes_and_coarticulation():
    assert viseme_of("p") == "PP" and viseme_of("m") == "PP" and viseme_of("f") == "FF"
    assert viseme_of("aI") == "aa" and viseme_of("u:") == "ou" and viseme_of("_:") == "sil"
    phonemes = [Phoneme("m", 0.40, 0.48), Phoneme("A:", 0.48, 0.70), Phoneme("p", 0.70, 0.78), Phoneme("A:", 0.78, 1.0)]
    art = articulate(phonemes, n_frames=40, fps=25.0)
    t = lambda s: int(s * 25)
    assert art.channel("jaw")[t(0.6)] > 0.5 > art.channel("jaw")[t(0.1)]
    assert art.channel("closure")[t(0.74)] > 0.8  # /p/ closes the lips
    assert art.channel("closure")[t(0.6)] < 0.3
    assert art.viseme[t(0.74)] == VISEME_ID["PP"] and art.viseme[t(0.1)] == VISEME_ID["sil"]
    wider = articulate(phonemes, n_frames=40, fps=25.0, coarticulation=3.0)
    assert np.abs(np.diff(wider.channel("jaw"))).max() < np.abs(np.diff(art.channel("jaw"))).max()


def test_motion_helpers():
    e = np.array([[3.0, -4.0, 2.0], [0.0, 0.0, 0.0], [-10.0, 20.0, 5.0]])
    assert np.allclose(matrix_to_euler(euler_to_matrix(e)), e, atol=1e-9)
    rng = np.random.default_rng(0)
    track = blink_track(25 * 60, 25.0, rng)
    starts = np.flatnonzero((track[1:] > 0.5) & (track[:-1] <= 0.5))
    assert 8 <= len(starts) <= 30  # people blink 10-20 times a minute
    euler, trans = head_motion(25 * 60, 25.0, np.random.default_rng(1), amplitude=2.0)
    assert 1.0 < euler[:, 1].std() < 8.0 and np.abs(euler).max() < 20
    assert np.allclose(head_motion(10, 25.0, np.random.default_rng(1), amplitude=0.0)[0], 0)


# ------------------------------------------------------------------- input checking
@pytest.mark.parametrize(
    "spec, message",
    [
        (ClipSpec(size=7), "size 7 px is impossible"),
        (ClipSpec(size=5000), "size 5000 px is impossible"),
        (ClipSpec(size=0), "impossible"),
        (ClipSpec(text="  "), "text is empty"),
        (ClipSpec(seconds=-1.0), "seconds"),
        (ClipSpec(audio_offset_frames=500), "offset"),
    ],
)
def test_bad_clip_specs(spec, message):
    with pytest.raises(UsageError, match=message):
        generate(spec)


def test_bad_voice_and_variation():
    with pytest.raises(UsageError, match="unknown voice 'xx-yy'"):
        generate(ClipSpec(text="Hi.", size=64, voice="xx-yy"))
    with pytest.raises(UsageError, match="scale"):
        Identity(scale=3.0)
    with pytest.raises(UsageError, match="mouth_amplitude"):
        Style(mouth_amplitude=-1)


def test_text_longer_than_seconds_is_cut():
    c = generate(ClipSpec(text="This sentence takes well over one second to say out loud.", seconds=1.0, size=64))
    assert c.truncated and len(c.frames) == 25 and c.audio.duration == pytest.approx(1.0)


# ------------------------------------------------------------------------ files, CLI
def test_synth_command_writes_a_complete_clip(tmp_path, capsys):
    from geneface.core.media import probe_video, read_audio, read_video

    out = tmp_path / "clip"
    args = ["synth", "-o", str(out), "--seconds", "2", "--size", "128", "--text", "Hello, my friend.",
            "--seed", "4", "--voice", "en-us+f2", "--mouth-amplitude", "1.2", "--face-width", "0.05", "-q"]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ground_truth.npz", "meta.json", "speech.wav", "video.mp4"]
    info = probe_video(out / "video.mp4")
    assert (info.width, info.height, info.has_audio) == (128, 128, True)
    frames = read_video(out / "video.mp4")
    assert frames.shape == (50, 128, 128, 3)
    assert read_audio(out / "speech.wav").duration == pytest.approx(2.0, abs=1e-3)
    gt = GroundTruth.load(out / "ground_truth.npz")
    assert gt.n_frames == 50 and gt.size == 128
    with np.load(out / "ground_truth.npz") as z:
        assert {"viseme_names", "intrinsics", "audio_offset_frames", "landmarks68_canonical"} <= set(z.files)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["spec"]["voice"] == "en-us+f2" and meta["spec"]["style"]["mouth_amplitude"] == 1.2
    assert meta["spec"]["identity"]["face_width"] == 0.05 and meta["frames"] == 50
    assert meta["phonemes"] and meta["versions"]["espeak_ng"].startswith("1.")
    # an existing folder is not replaced without --overwrite; bad input is exit code 2
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["synth", "-o", str(tmp_path / "bad"), "--size", "255"]) == 2
    assert main(["synth", "-o", str(tmp_path / "bad"), "--text", "hi", "--voice", "zz"]) == 2
    assert main(["synth", "-o", str(tmp_path / "bad"), "--skin-tone", "1,2"]) == 2
    assert not (tmp_path / "bad").exists()


def test_corpus_is_split_resumable_and_growable(tmp_path):
    out = tmp_path / "corpus"
    base = ["synth-corpus", str(out), "--size", "64", "--identities", "4", "--test-fraction", "0.5",
            "--voices", "en-us,en-gb+f3,en-us+m3,en-gb-x-rp", "-q"]
    assert main(base + ["--clips", "2"]) == 0
    manifest = json.loads((out / "corpus.json").read_text())
    splits = manifest["splits"]
    assert splits["train"]["clips"] == 1 and splits["test"]["clips"] == 1
    assert not set(splits["train"]["voices"]) & set(splits["test"]["voices"])
    assert not set(splits["train"]["identities"]) & set(splits["test"]["identities"])
    first = (out / "clip00000" / "video.mp4").stat().st_mtime_ns
    assert main(base + ["--clips", "3"]) == 0  # grows: clip00000-1 kept, clip00002 made
    assert (out / "clip00000" / "video.mp4").stat().st_mtime_ns == first
    manifest = json.loads((out / "corpus.json").read_text())
    assert [c["id"] for c in manifest["clips"]] == ["clip00000", "clip00001", "clip00002"]
    for entry in manifest["clips"]:
        meta = json.loads((out / entry["id"] / "meta.json").read_text())
        assert meta["voice_resolved"] == entry["voice"] and meta["frames"] == entry["frames"]
    assert main(base[:-1] + ["--clips", "3", "--seed", "9"]) == 2  # other settings: refused


def test_grid_picture(tmp_path, clip):
    from geneface.synth.grid import _grid

    sheet = _grid(clip.frames, clip.ground_truth, cols=3, rows=2, tile=64)
    assert sheet.shape == (128, 192, 3)
    doc_png = ROOT / "docs" / "img" / "synth_grid.png"
    assert doc_png.exists() and doc_png.stat().st_size < 300 * 1024


# ------------------------------------------------------------ tracker versus truth
def test_mediapipe_tracker_recovers_pose_and_mouth():
    """The tracker of `geneface process` on a synthetic clip, after a round trip through
    H.264: head rotation within 3 degrees of the truth, mouth opening correlation > 0.9."""
    pytest.importorskip("geneface.plugins.mediapipe_tracker")
    pytest.importorskip("geneface.processing.pose")
    from geneface.plugins.mediapipe_tracker import MediapipeTracker
    from geneface.synth.check import tracker_vs_truth

    result = tracker_vs_truth(MediapipeTracker(), seconds=4.0, seed=0)
    assert result["missing"] == 0
    assert result["pose_error_max_deg"] < 3.0
    assert result["mouth_corr"] > 0.9
