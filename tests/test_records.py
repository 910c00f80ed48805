import numpy as np
import pytest

from geneface.core.records import Audio, AudioFeatures, Camera, Motion, frames_for_duration


def test_audio_must_be_mono_and_finite():
    with pytest.raises(ValueError, match="1-D"):
        Audio(np.zeros((10, 2)), 16000)
    with pytest.raises(ValueError, match="NaN"):
        Audio(np.array([0.0, np.nan]), 16000)
    a = Audio(np.zeros(16000 * 2), 16000)
    assert a.duration == 2.0 and a.n_video_frames == 50


def test_motion_shape_and_stats():
    with pytest.raises(ValueError, match="T x 68 x 3"):
        Motion(np.zeros((5, 67, 3)))
    with pytest.raises(ValueError, match="zero frames"):
        Motion(np.zeros((0, 68, 3)))
    with pytest.raises(ValueError, match="mean must be 68 x 3"):
        Motion(np.zeros((5, 68, 3)), mean=np.zeros(204))
    m = Motion(np.ones((5, 68, 3)), mean=np.ones((68, 3)), std=2 * np.ones((68, 3)))
    assert np.allclose(m.normalized(), 0.0)
    assert m.n_frames == 5 and m.duration == pytest.approx(0.2)


def test_features_and_camera_validate():
    with pytest.raises(ValueError, match="T x D"):
        AudioFeatures(np.zeros(10))
    with pytest.raises(ValueError, match="channel names"):
        AudioFeatures(np.zeros((4, 3)), channels=("a", "b"))
    with pytest.raises(ValueError, match="T x 4 x 4"):
        Camera(focal=500.0, width=512, height=512, c2w=np.zeros((3, 4, 4))[:, :3])
    cam = Camera(focal=500.0, width=512, height=256, c2w=np.tile(np.eye(4), (3, 1, 1)))
    assert cam.principal_point == (256.0, 128.0)
    assert cam.intrinsics()[0, 0] == 500.0


def test_frames_for_duration_rounds_to_nearest():
    assert frames_for_duration(1.0) == 25
    assert frames_for_duration(1.019) == 25
    assert frames_for_duration(1.021) == 26


def test_the_landmark_layout_has_one_home():
    """records names the 68-point regions for its users; landmarks68 defines them (issue 34)."""
    from geneface.core import landmarks68 as L68
    from geneface.core import records

    assert records.MOUTH is L68.MOUTH and records.EYES is L68.EYES and records.N_LANDMARKS == L68.N_68
