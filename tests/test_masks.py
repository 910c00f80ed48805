"""Head / torso split, face-hull coverage, background plate, and the real segmenter."""

from __future__ import annotations

import numpy as np
import pytest

from geneface.processing.background import BackgroundPlate
from geneface.processing.masks import BACKGROUND, HEAD, TORSO, hull_mask, jaw_line, split_person

H = W = 128


def face68(cx: float = 64.0, cy: float = 56.0, half_width: float = 24.0) -> np.ndarray:
    """A simple frontal 68-point face in pixels: U-shaped jaw, brows, eyes, nose, mouth."""
    lm = np.zeros((68, 3), np.float32)
    a = np.linspace(np.pi, 0, 17)  # jaw: from image-left ear (0) via chin (8) to image-right (16)
    lm[0:17, 0] = cx + half_width * np.cos(a)
    lm[0:17, 1] = cy - 4 + 1.2 * half_width * np.sin(a)
    lm[17:27, 0] = np.linspace(cx - 20, cx + 20, 10)
    lm[17:27, 1] = cy - 18
    lm[27:36, 0] = np.r_[np.full(4, cx), np.linspace(cx - 6, cx + 6, 5)]
    lm[27:36, 1] = np.r_[np.linspace(cy - 14, cy + 2, 4), np.full(5, cy + 4)]
    for start, ex in ((36, cx - 11), (42, cx + 11)):
        t = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        lm[start:start + 6, 0] = ex - 5 * np.cos(t)
        lm[start:start + 6, 1] = cy - 10 + 2 * np.sin(t)
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    lm[48:60, 0] = cx - 10 * np.cos(t)
    lm[48:60, 1] = cy + 13 + 4 * np.sin(t)
    t = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    lm[60:68, 0] = cx - 7 * np.cos(t)
    lm[60:68, 1] = cy + 13 + 2 * np.sin(t)
    return lm


def person_mask(lm: np.ndarray) -> np.ndarray:
    """Head ellipse (bigger than the face: hair) plus shoulders below."""
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    head = ((xx - 64) / 34) ** 2 + ((yy - 50) / 42) ** 2 < 1
    shoulders = yy > 95
    neck = (np.abs(xx - 64) < 14) & (yy > 70)
    return head | shoulders | neck


def test_jaw_line_follows_the_jaw_and_continues_at_ear_level():
    lm = face68()
    line = jaw_line(lm, W)
    assert line.shape == (W,)
    chin_col = int(lm[8, 0])
    assert line[chin_col] == pytest.approx(lm[8, 1], abs=0.5)
    # Beyond the jaw's ends the line stays at the level of points 3 and 13.
    assert line[2] == pytest.approx(lm[3, 1]) and line[W - 3] == pytest.approx(lm[13, 1])
    grown = jaw_line(lm, W, margin=4.0)
    assert np.all(grown >= line + 4.0)
    # The margin reaches sideways as well: each column is at least its neighbours' line.
    for c in range(4, W - 4):
        assert grown[c] >= line[c - 4:c + 5].max() + 4.0 - 1e-9


def test_split_puts_face_and_hair_in_head_and_neck_in_torso():
    lm = face68()
    person = person_mask(lm)
    labels, coverage = split_person(person, lm)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == {BACKGROUND, HEAD, TORSO}
    assert np.all(labels[~person & ~hull_mask(lm[:, :2], (H, W))] == BACKGROUND)
    assert labels[12, 64] == HEAD  # hair on top
    assert labels[int(lm[30, 1]), int(lm[30, 0])] == HEAD  # nose
    assert labels[int(lm[8, 1]) + 8, 64] == TORSO  # neck under the chin
    assert labels[120, 10] == TORSO and labels[120, 118] == TORSO  # shoulders
    assert coverage == pytest.approx(1.0)


def test_coverage_is_measured_before_the_hull_is_forced_into_the_head():
    lm = face68()
    person = person_mask(lm)
    hole = np.zeros_like(person)
    hole[45:60, 50:70] = True  # segmentation missed part of the face (a hand, a microphone)
    labels, coverage = split_person(person & ~hole, lm)
    hull = hull_mask(lm[:, :2], (H, W))
    expected = 1 - (hole & hull).sum() / hull.sum()
    assert coverage == pytest.approx(expected, abs=1e-6)
    assert coverage < 0.9
    assert np.all(labels[hull] == HEAD)  # ... yet the face is whole in the stored mask


def test_chin_is_not_cut_off_by_the_split():
    lm = face68()
    person = np.ones((H, W), bool)
    labels, coverage = split_person(person, lm)
    assert coverage == pytest.approx(1.0)
    chin_row = int(np.floor(lm[8, 1]))
    assert labels[chin_row, int(lm[8, 0])] == HEAD


def test_background_plate_recovers_the_seen_background_and_inpaints_the_rest():
    yy, xx = np.mgrid[0:H, 0:W]
    background = np.stack([xx * 2, yy * 2, np.full_like(xx, 90)], axis=-1).astype(np.uint8)
    plate = BackgroundPlate(n_frames=20, max_samples=10, grow_px=2)
    rng = np.random.default_rng(0)
    always = np.zeros((H, W), bool)
    always[60:80, 50:70] = True  # never uncovered
    for i in range(20):
        if not plate.wants(i):
            continue
        person = always.copy()
        x0 = 10 + 8 * i // 2
        person[20:50, x0:x0 + 20] = True  # a moving occluder
        frame = background.copy()
        frame[person] = rng.integers(0, 255, (person.sum(), 3), dtype=np.uint8)
        plate.add(frame, person)
    assert len(plate._frames) == 10  # every second frame was kept
    result, seen = plate.result()
    assert result.shape == (H, W, 3) and result.dtype == np.uint8
    assert not seen[always].any() and seen[5, 5] and seen[30, 100]
    assert np.array_equal(result[seen], background[seen])
    # The never-seen square is filled from its surroundings: a smooth gradient stays close.
    error = np.abs(result[always].astype(int) - background[always].astype(int))
    assert error.mean() < 12


@pytest.fixture(scope="module")
def segmenter():
    from geneface.processing.masks import Segmenter

    with Segmenter() as seg:
        yield seg


def test_segmenter_finds_the_person_around_the_face(segmenter):
    from test_process_media import astronaut_frames

    from geneface.core.landmarks68 import mesh_to_68
    from geneface.plugins.mediapipe_tracker import MediapipeTracker

    frame = astronaut_frames(1)[0]
    tracked = next(iter(MediapipeTracker().track(iter([frame]))))
    soft = segmenter.person(frame)
    assert soft.shape == frame.shape[:2] and soft.dtype == np.float32
    assert 0.0 <= soft.min() and soft.max() <= 1.0
    person = soft > 0.5
    labels, coverage = split_person(person, mesh_to_68(tracked.points), tracked.points[:, :2])
    assert coverage > 0.97
    assert 0.05 < person.mean() < 0.95  # a person, not the whole picture
    assert (labels == TORSO).any() and (labels == HEAD).any()
