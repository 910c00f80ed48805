"""Gap filling, flags, time ranges, face size, crop box and source checks (no video needed)."""

from __future__ import annotations

import numpy as np
import pytest

from geneface.processing import tracking as trk
from geneface.processing.crop import CropBox, choose_crop


def points_at(values):
    """Per-frame 'mesh' of 4 points whose coordinates all equal the frame's value (None = lost)."""
    return [None if v is None else np.full((4, 3), float(v), np.float32) for v in values]


def fill(values, n_faces=None, **options):
    n = len(values)
    confidence = np.array([0.0 if v is None else 0.9 for v in values], np.float32)
    faces = np.array(n_faces if n_faces is not None else [0 if v is None else 1 for v in values], np.uint8)
    return trk.fill_gaps(points_at(values), confidence, faces, **options)


def test_short_gaps_are_interpolated_linearly_and_flagged():
    result = fill([0, 1, None, None, 4, 5])
    assert result.points[:, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert list(result.flags) == [0, 0, trk.INTERPOLATED, trk.INTERPOLATED, 0, 0]
    assert result.usable.tolist() == [True, True, False, False, True, True]


def test_gaps_at_the_ends_hold_the_nearest_face():
    result = fill([None, None, 2, 3, None])
    assert result.points[:, 0, 0].tolist() == [2, 2, 2, 3, 3]
    assert result.flags[0] & trk.INTERPOLATED and result.flags[4] & trk.INTERPOLATED


def test_long_gaps_fail_within_the_limit_and_stop_beyond_it():
    values = [0] * 40 + [None] * 8 + [0] * 52
    result = fill(values, max_gap=5, max_failed_share=0.1)
    assert (result.flags[40:48] & trk.FAILED).all() and not (result.flags[:40] & trk.FAILED).any()
    with pytest.raises(trk.TrackingError) as info:
        fill(values, max_gap=5, max_failed_share=0.05)
    message = str(info.value)
    assert "8 of 100 frames" in message and "0:01.60-0:01.92" in message and "--max-failed" in message


def test_no_face_at_all_gives_advice():
    with pytest.raises(trk.TrackingError, match="no face found in any of its 3 frames.*80 px"):
        fill([None, None, None])


def test_multi_face_and_low_confidence_are_flagged():
    values = [0, 1, 2]
    result = trk.fill_gaps(points_at(values), np.array([0.9, 0.2, 0.9], np.float32), np.array([1, 2, 1], np.uint8), min_confidence=0.5)
    assert list(result.flags) == [0, trk.MULTI_FACE | trk.LOW_CONFIDENCE, 0]


def test_runs_are_the_one_rule_of_core_arrays_and_time_formatting():
    from geneface.core.arrays import true_runs

    assert not hasattr(trk, "runs")  # processing keeps no copy of its own
    got = true_runs(np.array([0, 1, 1, 0, 1], bool))
    assert got == [(1, 3), (4, 5)] and all(type(v) is int for run in got for v in run)  # JSON-ready
    assert true_runs(np.zeros(3, bool)) == [] and true_runs(np.array([0, 2, 2, 0])) == [(1, 3)]
    assert trk.format_time(25 * 61 + 5) == "1:01.20"
    assert trk.format_ranges([(i, i + 1) for i in range(10)], limit=2).endswith("and 8 more")


def test_face_size_check():
    result = fill([0, 1])
    result.points[:, :, 0] = np.array([[0, 50, 10, 20]] * 2, np.float32)
    assert trk.check_face_size(result, 40) == 50
    with pytest.raises(trk.TrackingError, match="only about 50 px across"):
        trk.check_face_size(result, 80)


def test_collect_checks_the_point_count():
    from geneface.core.stages import TrackedFrame

    frames = [TrackedFrame(np.zeros((4, 3), np.float32), 0.9, 1), TrackedFrame(np.zeros((5, 3), np.float32), 0.9, 1)]
    with pytest.raises(Exception, match=r"\(5, 3\) points, expected \(4, 3\)"):
        trk.collect(iter(frames))


def face_track(cx, cy, half, n=10):
    """Square 'faces' (4 corner points) centred at (cx, cy) with half-size `half`."""
    corners = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], np.float32)
    return np.stack([corners * half + np.array([cx, cy, 0], np.float32)] * n)


def test_crop_is_square_around_the_face_and_inside_the_frame():
    points = face_track(300, 200, 50)  # a 100 px face in a 640 x 480 frame
    box = choose_crop(points, (480, 640), size=256, scale=2.0)
    assert box.side == 200 and box.size == 256
    assert box.x0 == 200 and box.y0 == round(200 + 0.05 * 200 - 100)
    # Near the border: shifted inside, never shrunk.
    box = choose_crop(face_track(620, 30, 50), (480, 640), size=256)
    assert box.x0 + box.side == 640 and box.y0 == 0 and box.side == 200
    # A face too big for the frame: the box is the whole short side.
    box = choose_crop(face_track(320, 240, 200), (480, 640), size=256)
    assert box.side == 480


def test_crop_maps_points_and_pixels_consistently():
    box = CropBox(x0=100, y0=50, side=200, size=100)
    frame = np.zeros((400, 400, 3), np.uint8)
    frame[150, 250] = 255  # source pixel (x 250, y 150), centre (250.5, 150.5)
    out = box.apply(frame)
    assert out.shape == (100, 100, 3)
    x, y, z = box.points_to_crop(np.array([[250.5, 150.5, 8.0]]))[0]
    assert (x, y, z) == (75.25, 50.25, 4.0)
    assert out[int(y), int(x)].max() > 0 and out.max(axis=-1).sum() == out[int(y), int(x)].max()
    assert CropBox.from_json(box.to_json()) == box
    with pytest.raises(Exception, match="even"):
        choose_crop(face_track(300, 200, 50), (480, 640), size=255)
