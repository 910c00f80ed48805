"""geneface.metrics: PSNR / SSIM (full frame and face box), LPIPS from local weights, LMD."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA
from geneface.errors import CheckpointError, GenefaceError, UsageError, exit_status
from geneface.metrics import image as im
from geneface.metrics.landmarks import Tracked68, lmd, lmd_of_frames, mouth_distances, track68


def _images(seed: int = 0, shape=(48, 64, 3)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, shape), 0, 255).astype(np.uint8)
    return a, b


# ------------------------------------------------------------------------------ PSNR, SSIM
def test_psnr_identical_is_the_cap_and_noise_matches_the_formula():
    a, b = _images()
    assert im.psnr(a, a) == im.PSNR_MAX == 100.0
    mse = np.mean(((a.astype(float) - b.astype(float)) / 255.0) ** 2)
    assert im.psnr(a, b) == pytest.approx(10 * np.log10(1.0 / mse), abs=1e-9)
    # uint8 and its float copy in [0, 1] score the same; a constant error of 0.1 is 20 dB
    assert im.psnr(a / 255.0, b / 255.0) == pytest.approx(im.psnr(a, b), abs=1e-9)
    flat = np.full((16, 16, 3), 0.5)
    assert im.psnr(flat, flat + 0.1) == pytest.approx(20.0, abs=1e-9)


def test_psnr_refuses_bad_inputs():
    a, _ = _images()
    with pytest.raises(UsageError, match=r"\[0, 1\]"):
        im.psnr(a.astype(np.float32), a.astype(np.float32))  # 0-255 floats
    with pytest.raises(UsageError, match="differ in shape"):
        im.psnr(a, a[:-1])


def test_ssim_is_skimage_with_wang_settings_and_one_for_identical():
    from skimage.metrics import structural_similarity

    a, b = _images(1)
    expected = structural_similarity(
        a, b, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert im.ssim(a, b) == pytest.approx(expected, abs=1e-9)
    assert im.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert im.ssim(a, b) < 0.99


def test_face_box_from_landmarks_margin_and_clipping():
    pts = np.zeros((68, 3))
    pts[:, 0] = np.linspace(20, 60, 68)  # x from 20 to 60
    pts[:, 1] = np.linspace(30, 50, 68)  # y from 30 to 50
    assert im.face_box(pts, 100, margin=0.0) == (20, 30, 60, 50)
    assert im.face_box(pts[:, :2], 100, margin=0.25) == (10, 25, 70, 55)  # grows 10 px / 5 px a side
    assert im.face_box(pts, (52, 64), margin=0.25) == (10, 25, 64, 52)  # clipped to (height, width)
    with pytest.raises(UsageError, match="NaN"):
        im.face_box(np.full((68, 2), np.nan), 100)


def test_pair_scores_face_crop_and_running_mean():
    a, b = _images(2, (64, 64, 3))
    box = (10, 12, 50, 40)
    s = im.score_pair(a, b, box)
    assert s.psnr == im.psnr(a, b) and s.ssim == im.ssim(a, b)
    assert s.psnr_face == im.psnr(a[12:40, 10:50], b[12:40, 10:50])
    assert s.ssim_face == im.ssim(a[12:40, 10:50], b[12:40, 10:50])
    assert im.score_pair(a, b).psnr_face is None

    mean, n = im.score_sequence([a, a, b], [b, a, a], [box, None, box])
    assert n == 3
    assert mean.psnr == pytest.approx((s.psnr + 100.0 + s.psnr) / 3)
    assert mean.psnr_face == pytest.approx(s.psnr_face)  # averaged over the two frames with a box
    with pytest.raises(UsageError, match="ended at frame 1"):
        im.score_sequence([a, a], [a])


# ------------------------------------------------------------------------------ LPIPS
@pytest.fixture
def lpips_weights(tmp_path):
    from safetensors.torch import save_file

    from geneface.metrics.lpips import expected_shapes

    torch.manual_seed(0)
    state = {k: torch.randn(shape) * 0.1 for k, shape in expected_shapes().items()}
    state = {k: v.abs() if k.startswith("lin") else v for k, v in state.items()}  # lpips: lin >= 0
    path = tmp_path / "lpips_alex.safetensors"
    save_file(state, str(path))
    return path, state


def test_lpips_from_local_weights_zero_for_identical_symmetric(lpips_weights, tmp_path):
    from geneface.metrics.lpips import load_lpips

    path, state = lpips_weights
    judge = load_lpips(path)
    a, b = _images(3, (64, 64, 3))
    assert judge.score(a, a) == pytest.approx(0.0, abs=1e-7)
    d = judge.score(a, b)
    assert d > 0 and judge.score(b, a) == pytest.approx(d, rel=1e-5)
    # The same weights as two torch state dicts (alexnet's features + lpips's lins) agree.
    alex = tmp_path / "alexnet.pth"
    lins = tmp_path / "alex.pth"
    torch.save({k: v for k, v in state.items() if k.startswith("features.")} | {"classifier.1.weight": torch.zeros(2)}, alex)
    torch.save({k: v for k, v in state.items() if k.startswith("lin")}, lins)
    assert load_lpips(alex, lins).score(a, b) == pytest.approx(d, rel=1e-6)
    # ... and so does the lpips package's own state dict (alexnet under net.sliceK.N).
    slices = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}
    full = tmp_path / "lpips_full.pth"
    torch.save({(f"net.slice{slices[int(k.split('.')[1])]}.{k.split('.', 1)[1]}" if k.startswith("features.") else k): v
                for k, v in state.items()}, full)
    assert load_lpips(full).score(a, b) == pytest.approx(d, rel=1e-6)
    # the smallest input it takes, and a clear refusal below
    assert judge.score(a[:32, :32], b[:32, :32]) > 0
    with pytest.raises(UsageError, match="too small for LPIPS"):
        judge.score(a[:31], b[:31])


def _one_line(exc: GenefaceError) -> str:
    code, message = exit_status(exc)
    assert code == 2 and "\n" not in message
    return message


def test_lpips_weight_errors_are_one_line_naming_the_path(lpips_weights, tmp_path):
    from safetensors.torch import save_file

    from geneface.metrics.lpips import load_lpips

    path, state = lpips_weights
    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(UsageError) as err:
        load_lpips(missing)
    assert str(missing) in _one_line(err.value)

    wrong_keys = tmp_path / "wrong.safetensors"
    save_file({"conv.weight": torch.zeros(3)}, str(wrong_keys))
    with pytest.raises(CheckpointError, match="missing 15 of 15 keys") as err:
        load_lpips(wrong_keys)
    assert str(wrong_keys) in _one_line(err.value)

    wrong_shape = tmp_path / "shape.safetensors"
    save_file(state | {"lin2.model.1.weight": torch.zeros(1, 10, 1, 1)}, str(wrong_shape))
    with pytest.raises(CheckpointError, match=r"lin2.model.1.weight has shape \(1, 10, 1, 1\)") as err:
        load_lpips(wrong_shape)
    assert str(wrong_shape) in _one_line(err.value)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a weight file at all")
    with pytest.raises(CheckpointError) as err:
        load_lpips(garbage)
    assert str(garbage) in _one_line(err.value)


# ------------------------------------------------------------------------------ LMD
def _mouth_ring(radius: float, centre=(40.0, 60.0)) -> np.ndarray:
    """68 points whose mouth (48-67) is a regular 20-gon of `radius` around `centre`."""
    lm = np.random.default_rng(0).uniform(0, 100, (68, 3))
    angle = np.arange(20) * 2 * np.pi / 20
    lm[48:68, 0] = centre[0] + radius * np.cos(angle)
    lm[48:68, 1] = centre[1] + radius * np.sin(angle)
    return lm


def test_lmd_identical_translated_and_scaled():
    base = np.stack([_mouth_ring(10.0), _mouth_ring(6.0)])
    assert lmd(base, base) == 0.0
    moved = base + np.array([7.0, -3.0, 5.0])  # whole face moved: centring removes it
    assert lmd(base, moved) == pytest.approx(0.0, abs=1e-12)
    # each mouth scaled by k about any point: every centred point moves by |k - 1| r
    k = 1.3
    scaled = base.copy()
    scaled[:, 48:68, :2] = (base[:, 48:68, :2] - [5.0, 5.0]) * k + [5.0, 5.0]
    assert np.allclose(mouth_distances(base, scaled), [0.3 * 10.0, 0.3 * 6.0])
    assert lmd(base, scaled) == pytest.approx(0.3 * (10.0 + 6.0) / 2)
    # only the mouth counts
    other = base.copy()
    other[:, :48] += 50
    assert lmd(base, other) == 0.0


def test_lmd_errors_name_the_frame():
    base = np.stack([_mouth_ring(10.0)] * 3)
    holed = base.copy()
    holed[2, 50] = np.nan
    with pytest.raises(UsageError, match="at frame 2"):
        lmd(base, holed)
    with pytest.raises(UsageError, match="differ in length"):
        lmd(base, base[:2])


@pytest.fixture(scope="module")
def synth_clip():
    pytest.importorskip("mediapipe")
    from geneface.synth.clip import ClipSpec, generate

    return generate(ClipSpec(seconds=0.4, size=128, seed=1))


@pytest.fixture(scope="module")
def tracker():
    pytest.importorskip("mediapipe")
    from geneface.plugins.mediapipe_tracker import MediapipeTracker

    return MediapipeTracker()


def test_retracked_clip_against_itself_and_the_truth(synth_clip, tracker):
    frames = synth_clip.frames
    tracked = track68(iter(frames), tracker)
    assert tracked.points.shape == (len(frames), 68, 3) and len(tracked.missing) == 0
    result = lmd_of_frames(tracked, frames, tracker=tracker)  # one side tracked already, the other re-tracked
    assert result.n_scored == result.n_frames == len(frames)
    assert result.missing_rendered == result.missing_real == ()
    assert result.lmd < 0.05 and result.resolution == 128
    # measured at twice the resolution, a self-comparison stays ~0; the tracker's mouth
    # against the generator's true mouth is within a pixel or two at 128 px
    assert lmd_of_frames(frames, frames, resolution=256, tracker=tracker).lmd < 0.1
    assert lmd(tracked.points, synth_clip.ground_truth.landmarks68_image) < 2.0


def test_frames_without_a_face_are_reported_not_dropped(synth_clip, tracker):
    frames = synth_clip.frames.copy()
    frames[4] = 0  # a black frame: no face
    with pytest.raises(UsageError, match=r"no face found in 1 of 10 rendered frames \(frame 4\)"):
        lmd_of_frames(frames, synth_clip.frames, tracker=tracker)
    result = lmd_of_frames(frames, synth_clip.frames, allow_missing=True, tracker=tracker)
    assert result.missing_rendered == (4,) and result.n_scored == 9 and result.n_frames == 10
    assert np.isnan(result.per_frame[4]) and np.isfinite(np.delete(result.per_frame, 4)).all()
    with pytest.raises(UsageError, match="give the resolution"):
        lmd_of_frames(synth_clip.frames[:, :64, :64], synth_clip.frames, tracker=tracker)


VIDEO = SHARED_DATA / "video" / "may_5s.mp4"


@pytest.mark.skipif(not VIDEO.is_file(), reason="../shared/data/video/may_5s.mp4 not available")
def test_real_clip_retracked_against_a_recompressed_copy(tracker):
    import cv2

    from geneface.core.media import iter_video_frames

    frames = np.stack(list(itertools.islice(iter_video_frames(VIDEO), 8)))
    copy = np.stack(
        [cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_UNCHANGED) for f in frames]
    )
    real = track68(frames, tracker)
    assert isinstance(real, Tracked68) and len(real.missing) == 0
    assert lmd_of_frames(real, frames, tracker=tracker).lmd == pytest.approx(0.0, abs=0.05)
    assert lmd_of_frames(copy, real, tracker=tracker).lmd < 1.5
