import librosa
import numpy as np
import pytest

from geneface.core.records import Audio
from geneface.plugins.mel import HOP, MelConfig, MelEncoder

from conftest import speechlike


def test_mel_matches_librosa_directly():
    y = speechlike(1.5)
    enc = MelEncoder()
    feats = enc.encode(Audio(y, 16000))
    ref = librosa.feature.melspectrogram(
        y=y, sr=16000, n_fft=1024, hop_length=320, win_length=640, n_mels=80,
        fmin=55.0, fmax=7600.0, power=2.0,
    )
    ref = np.log(np.maximum(ref, 1e-5)).T
    assert feats.values.shape == (76, 80)  # 1.5 s = 37.5 -> 38 video frames -> 76 feature frames
    n = feats.n_frames
    np.testing.assert_allclose(feats.values, ref[:n], rtol=1e-5, atol=1e-5)
    assert feats.frame_rate == 50.0 and feats.encoder == "mel"


@pytest.mark.parametrize("seconds", [0.5, 1.0, 2.04, 3.3])
def test_two_feature_frames_per_video_frame(seconds):
    a = Audio(speechlike(seconds), 16000)
    feats = MelEncoder().encode(a)
    assert feats.n_frames == 2 * a.n_video_frames
    assert HOP == 320


def test_pitch_and_energy_channels():
    a = Audio(speechlike(2.0), 16000)
    enc = MelEncoder(MelConfig(pitch=True, energy=True))
    feats = enc.encode(a)
    assert feats.width == enc.width == 82
    assert feats.channels[-2:] == ("log_f0", "log_energy")
    f0 = np.exp(feats.values[:, 80][feats.values[:, 80] > 0])
    # The generator glides f0 between 90 and 150 Hz; YIN should find it on voiced frames.
    assert 80 < np.median(f0) < 160
    energy = feats.values[:, 81]
    assert energy.max() - energy.min() > 3.0  # syllables vs gaps


def test_resamples_other_rates():
    y = speechlike(1.0, sr=8000)
    feats = MelEncoder().encode(Audio(y, 8000))
    assert feats.n_frames == 50


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="win_length"):
        MelConfig(win_length=2048, n_fft=1024)
    with pytest.raises(ValueError, match="fmax"):
        MelConfig(fmax=9000)
