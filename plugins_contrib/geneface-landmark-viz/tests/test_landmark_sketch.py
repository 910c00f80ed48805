"""Tests of the landmark_sketch renderer, on the package's parametric face (synthetic.py)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import geneface.registry as registry_mod
from geneface.core.config import structure
from geneface.core.records import Audio, Motion
from geneface.errors import SpecError
from geneface_landmark_viz import LandmarkSketch, SketchConfig, fit_panels, y_points_up
from geneface_landmark_viz.synthetic import mouth_motion, neutral_face, talking_motion

DIST = "geneface-landmark-viz"
# ../shared/data beside the geneface checkout (real clips; absent outside development).
SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def render(motion: Motion, **config) -> list[np.ndarray]:
    return list(LandmarkSketch(SketchConfig(**config)).render(motion))


def mouth_mask(frame: np.ndarray) -> np.ndarray:
    """Pixels in the default mouth colour (red), anti-aliased edges included."""
    rgb = frame.astype(np.int16)
    return (rgb[..., 0] - rgb[..., 1] > 60) & (rgb[..., 0] - rgb[..., 2] > 60)


def rows_cols(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(mask)
    assert rows.size, "no mouth-coloured pixels"
    return rows, cols


# -- discovery ---------------------------------------------------------------------------


@pytest.fixture
def fresh_registry(monkeypatch):
    """A registry loaded from the installed entry points; the process-wide one is restored."""
    monkeypatch.setenv(registry_mod.ENV_ALLOW, DIST)
    monkeypatch.setattr(registry_mod, "_REGISTRY", None)
    return registry_mod.get_registry(reload=True)


def test_registers_as_renderer_from_its_distribution(fresh_registry):
    entry = fresh_registry.get("renderer", "landmark_sketch")
    assert entry.cls is LandmarkSketch
    assert entry.origin.dist == DIST
    assert entry.origin.version == "0.1.0"
    assert entry.unavailable_reason is None
    assert not [b for b in fresh_registry.broken if b.origin.dist == DIST]


def test_missing_cv2_marks_it_unavailable(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "cv2" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert "cv2" in LandmarkSketch.unavailable_reason()


# -- frames ------------------------------------------------------------------------------


@pytest.mark.parametrize("size, show_side, shape", [(256, True, (256, 512)), (64, False, (64, 64))])
def test_frame_size_dtype_and_count(size, show_side, shape):
    renderer = LandmarkSketch(SketchConfig(size=size, show_side=show_side))
    motion = talking_motion(37)
    frames = list(renderer.render(motion))
    assert renderer.frame_size() == shape
    assert len(frames) == motion.n_frames
    for frame in frames:
        assert frame.dtype == np.uint8 and frame.shape == (*shape, 3) and frame.flags.c_contiguous
    assert len({id(f) for f in frames}) == len(frames)  # each frame its own array


def test_background_colour_fills_the_frame():
    frame = render(talking_motion(1), background=(0, 0, 80), show_counter=False)[0]
    corners = frame[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == (0, 0, 80)).all()
    assert (frame != (0, 0, 80)).any(axis=2).mean() < 0.15  # a sketch, not a fill


def test_mouth_highlight_moves_down_when_the_mouth_opens():
    closed, opened = render(mouth_motion([0.0, 0.25]))
    size = 256
    c_rows, _ = rows_cols(mouth_mask(closed[:, :size]))
    o_rows, _ = rows_cols(mouth_mask(opened[:, :size]))
    assert o_rows.max() > c_rows.max() + 15  # lower lip drops
    assert abs(int(o_rows.min()) - int(c_rows.min())) <= 2  # upper lip stays
    # Side view: the lower lip goes down too.
    cs_rows, cs_cols = rows_cols(mouth_mask(closed[:, size:]))
    os_rows, _ = rows_cols(mouth_mask(opened[:, size:]))
    assert os_rows.max() > cs_rows.max() + 15
    # Nothing but the mouth is red: the highlight is the lips only.
    assert mouth_mask(closed[:, :size])[: size // 2].sum() == 0


def test_contours_are_joined_by_lines_in_their_colour():
    # Sample the middle of every edge between consecutive contour points, where only a line
    # (not a point's dot) can have put ink: jaw, brows, nose and eyes dark, lips red.
    motion = mouth_motion([0.15])
    frame = render(motion, show_counter=False)[0]
    front, _side = fit_panels(motion.landmarks, 256)
    chains = [(0, 17), (17, 22), (22, 27), (27, 31), (31, 36)]
    edges = [(i, i + 1) for start, stop in chains for i in range(start, stop - 1)]
    rings = [(36, 42), (42, 48), (48, 60), (60, 68)]
    edges += [(i, i + 1 if i + 1 < stop else start) for start, stop in rings for i in range(start, stop)]
    for a, b in edges:
        x, y = np.rint((front[0, a] + front[0, b]) / 2).astype(int)
        patch = frame[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3)
        if a >= 48:
            assert mouth_mask(patch[None]).any(), f"edge {a}-{b} not drawn in the mouth colour"
        else:
            assert (patch.max(axis=1) < 160).any(), f"edge {a}-{b} not drawn"


def test_mouth_colour_and_lines_follow_the_config():
    frame = render(mouth_motion([0.1]), mouth_color=(0, 200, 0), color=(0, 0, 255))[0]
    green = (frame[..., 1] > 150) & (frame[..., 0] < 80)
    blue = (frame[..., 2] > 150) & (frame[..., 0] < 80) & (frame[..., 1] < 80)
    assert green.sum() > 50 and blue.sum() > 200
    assert mouth_mask(frame).sum() == 0
    thin = (render(mouth_motion([0.1]), line_thickness=1)[0] < 128).any(axis=2).sum()
    thick = (render(mouth_motion([0.1]), line_thickness=3)[0] < 128).any(axis=2).sum()
    assert thick > 1.8 * thin


def test_frame_counter_is_the_only_change_on_a_still_face():
    still = mouth_motion(np.zeros(3))
    frames = render(still)
    changed = np.nonzero((frames[0] != frames[2]).any(axis=2))
    assert changed[0].size > 0  # the counter differs
    assert changed[0].min() > 256 * 0.8 and changed[1].max() < 256  # bottom-left of the front panel
    silent = render(still, show_counter=False)
    assert np.array_equal(silent[0], silent[2])


# -- geometry ----------------------------------------------------------------------------


def test_fit_is_fixed_over_the_motion_and_inside_the_margin():
    motion = talking_motion(50)
    front, side = fit_panels(motion.landmarks, 256, margin=0.1)
    # Brows, nose and eyes (17-47) do not move, so neither do their pixels: no jumping scale.
    assert np.ptp(front[:, 17:48], axis=0).max() < 1e-6
    assert np.ptp(side[:, 17:48], axis=0).max() < 1e-6
    assert np.ptp(front[:, 8, 1]) > 10  # while the chin does
    for panel in (front, side):
        assert panel.min() >= 0.1 * 256 - 1 and panel.max() <= 0.9 * 256
    # The largest extent fills the panel less the margins, exactly.
    extents = [np.ptp(p[..., k]) for p in (front, side) for k in (0, 1)]
    assert max(extents) == pytest.approx(0.8 * 256)


def test_scale_and_offset_of_the_data_do_not_change_the_picture():
    base = talking_motion(10)
    moved = base.with_landmarks(base.landmarks * 37.0 + np.array([5.0, -120.0, 900.0], np.float32))
    for a, b in zip(render(base), render(moved)):
        assert np.abs(a.astype(int) - b).max() <= 1


def test_y_up_data_is_detected_and_drawn_upright():
    down = talking_motion(5)
    up = down.with_landmarks(down.landmarks * np.array([1, -1, 1], np.float32))
    assert not y_points_up(down.landmarks) and y_points_up(up.landmarks)
    for a, b in zip(render(down), render(up)):
        assert np.abs(a.astype(int) - b).max() <= 1
    # Forcing the wrong convention turns the face upside down: the mouth in the top half.
    rows, _ = rows_cols(mouth_mask(render(up, flip_y=False)[0][:, :256]))
    assert rows.mean() < 128
    rows, _ = rows_cols(mouth_mask(render(down, flip_y=True)[0][:, :256]))
    assert rows.mean() < 128


def test_side_view_faces_left():
    # z points away from the camera: the nose tip (smallest z) is the leftmost point in profile.
    _front, side = fit_panels(neutral_face()[0], 256)
    assert side[0, :, 0].argmin() == 30


def test_degenerate_motion_renders():
    point = Motion(np.ones((2, 68, 3), np.float32))
    frames = render(point)
    assert len(frames) == 2 and frames[0].shape == (256, 512, 3)


# -- config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, message",
    [
        ({"size": 255}, "stages.renderer.config: size must be an even number"),
        ({"size": 16}, "size must be an even number of pixels >= 32"),
        ({"background": [0, 0, 300]}, "background must be three integers 0-255"),
        ({"line_thickness": 0}, "line_thickness must be an integer from 1 to 16"),
        ({"flip_y": "up"}, "flip_y: 'up' is not one of 'auto', True, False"),
        ({"margin": 0.5}, "margin must be a fraction in [0, 0.5)"),
        ({"sizee": 256}, "did you mean 'size'"),
    ],
)
def test_bad_config_is_a_clear_spec_error(config, message):
    with pytest.raises(SpecError) as info:
        structure(LandmarkSketch.Config, config, "stages.renderer.config")
    assert message in str(info.value)


def test_config_from_yaml_values():
    cfg = structure(SketchConfig, {"size": 128, "background": [10, 20, 30], "flip_y": True}, "config")
    assert cfg.background == (10, 20, 30) and cfg.flip_y is True
    assert LandmarkSketch(cfg).frame_size() == (128, 256)
    with pytest.raises(ValueError, match="even"):
        SketchConfig(size=101)


# -- with the rest of geneface -----------------------------------------------------------


def test_frames_mux_into_an_mp4_with_audio(tmp_path):
    pytest.importorskip("av")
    from geneface.core.media import probe_video, write_video

    motion = talking_motion(25)
    audio = Audio(0.1 * np.sin(np.linspace(0, 2000, 16000)).astype(np.float32))
    out = tmp_path / "sketch.mp4"
    n = write_video(out, LandmarkSketch(SketchConfig(size=128)).render(motion), fps=motion.fps, audio=audio)
    info = probe_video(out)
    assert n == 25 and (info.width, info.height) == (256, 128) and info.has_audio
    assert info.n_frames() == 25


def test_renders_well_above_real_time():
    # A loose floor (the measured rate is in the README): catches a per-frame refit or copy.
    motion = talking_motion(250)
    renderer = LandmarkSketch()
    start = time.perf_counter()
    n = sum(1 for _ in renderer.render(motion))
    assert n / (time.perf_counter() - start) > 50


def test_real_tracked_face_is_drawn_upright(fresh_registry):
    # Landmarks tracked from a real clip, in image pixels (y down, z away from the camera).
    clip = SHARED_DATA / "video" / "may_5s.mp4"
    if not clip.exists():
        pytest.skip(f"{clip} not present")
    from itertools import islice

    from geneface.core.media import iter_video_frames

    tracker_entry = fresh_registry.entries.get(("face_tracker", "mediapipe"), [None])[0]
    if tracker_entry is None or tracker_entry.unavailable_reason:
        pytest.skip("mediapipe face tracker not available")
    tracker = tracker_entry.cls()
    tracked = list(tracker.track(islice(iter_video_frames(clip), 25)))
    assert all(t.points is not None for t in tracked)
    motion = Motion(np.stack([tracker.to68(t.points) for t in tracked]))
    assert not y_points_up(motion.landmarks)

    frames = render(motion)
    assert len(frames) == 25
    front, side = fit_panels(motion.landmarks, 256)
    for frame, f, sd in zip(frames, front, side):
        rows, _ = rows_cols(mouth_mask(frame[:, :256]))
        eyes_y = f[36:48, 1].mean()
        assert eyes_y < rows.min() and rows.max() < f[8, 1] + 3  # lips between eyes and chin
        assert sd[:, 0].argmin() == 30  # in profile the nose tip leads: the face looks left
