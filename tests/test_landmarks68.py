"""The 478 -> 68 index map: structure, and anatomy on a real face tracked by mediapipe."""

from __future__ import annotations

import numpy as np
import pytest

from geneface.core import landmarks68 as L68


def test_map_has_68_distinct_mesh_vertices_and_no_iris():
    idx = L68.MESH_TO_68
    assert idx.shape == (68,)
    assert len(set(idx.tolist())) == 68
    assert idx.min() >= 0 and idx.max() < 468  # 468-477 are the irises
    with pytest.raises(ValueError):
        idx[0] = 1  # read-only: nobody edits the shared map by accident


def test_regions_partition_the_68_points():
    regions = [L68.JAW, L68.BROWS, L68.NOSE, L68.EYES, L68.MOUTH]
    covered = np.concatenate([np.arange(68)[r] for r in regions])
    assert sorted(covered.tolist()) == list(range(68))
    assert (L68.EYES.start, L68.EYES.stop) == (36, 48)
    assert (L68.MOUTH.start, L68.MOUTH.stop) == (48, 68)
    assert np.array_equal(L68.EYES_IDX, np.arange(36, 48))
    assert np.array_equal(L68.MOUTH_IDX, np.arange(48, 68))
    # The stable set used for pose never touches lips or jaw.
    assert not set(L68.STABLE_68.tolist()) & (set(range(0, 17)) | set(range(48, 68)))
    jaw_and_lips = set(L68.MESH_TO_68[L68.JAW].tolist()) | set(L68.MESH_TO_68[L68.MOUTH].tolist())
    assert not set(L68.POSE_MESH.tolist()) & jaw_and_lips
    assert not set(L68.STABLE_MESH.tolist()) & set(L68.MESH_TO_68[L68.MOUTH].tolist())
    assert set(L68.POSE_MESH.tolist()) <= set(L68.STABLE_MESH.tolist())


def test_mesh_to_68_selects_and_batches():
    mesh = np.arange(478 * 3, dtype=np.float32).reshape(478, 3)
    out = L68.mesh_to_68(mesh)
    assert out.shape == (68, 3)
    assert np.array_equal(out[:, 0], L68.MESH_TO_68 * 3)
    batch = np.stack([mesh, mesh + 1, mesh + 2])[None]  # (1, 3, 478, 3)
    assert L68.mesh_to_68(batch).shape == (1, 3, 68, 3)
    assert np.array_equal(L68.mesh_to_68(batch)[0, 2], out + 2)
    with pytest.raises(ValueError):
        L68.mesh_to_68(np.zeros((68, 3)))


@pytest.fixture(scope="module")
def face68():
    from test_process_media import astronaut_frames

    from geneface.plugins.mediapipe_tracker import MediapipeTracker

    tracked = next(iter(MediapipeTracker().track(iter(astronaut_frames(1)))))
    return L68.mesh_to_68(tracked.points)


def test_layout_is_anatomical_on_a_real_face(face68):
    lm = face68
    x, y = lm[:, 0], lm[:, 1]
    # Jaw runs from the image-left side to the image-right side, lowest at the chin (8).
    assert x[0] < x[8] < x[16]
    assert np.argmax(y[0:17]) in (7, 8, 9)
    # Brows above eyes above nose tip above mouth above chin.
    assert y[17:27].mean() < y[36:48].mean() < y[30] < y[48:68].mean() < y[8]
    # Nose bridge descends from 27 to the tip 30.
    assert np.all(np.diff(y[27:31]) > 0)
    # Eyes: image-left eye left of the right eye; corners ordered outer -> inner -> inner -> outer.
    assert x[36] < x[39] < x[42] < x[45]
    # Upper lids above lower lids.
    assert y[37] < y[41] and y[38] < y[40] and y[43] < y[47] and y[44] < y[46]
    # Mouth: corners left/right, upper lip above lower lip, inner lips inside outer lips.
    assert x[48] < x[51] < x[54] and x[60] < x[64]
    assert y[51] < y[62] <= y[66] < y[57]
    # Brows: each runs outward-to-inward on its own side.
    assert x[17] < x[21] < x[22] < x[26]


def test_openness_helpers_follow_the_geometry(face68):
    lm = face68.copy()
    eyes = L68.eye_openness(lm)
    mouth = L68.mouth_openness(lm)
    assert eyes.shape == (2,) and np.all(eyes > 0.05)
    opened = lm.copy()
    opened[[65, 66, 67], 1] += 10.0  # drop the lower inner lip
    assert L68.mouth_openness(opened) > mouth + 0.1
    closed = lm.copy()
    closed[[41, 40]] = closed[[37, 38]]  # lower lid onto the upper lid
    assert L68.eye_openness(closed)[0] < 1e-6
    assert L68.eye_openness(np.stack([lm, closed])).shape == (2, 2)
