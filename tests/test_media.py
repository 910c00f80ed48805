import av
import numpy as np
import pytest

from geneface.core import media
from geneface.core.records import Audio
from geneface.errors import MediaError, UsageError

from conftest import speechlike
from test_process_media import write_av


def _frame(i: int, size=(64, 96)) -> np.ndarray:
    img = np.zeros((*size, 3), np.uint8)
    img[..., 0] = (i * 7) % 256  # the red level encodes the frame index
    return img


def test_roundtrip_video_with_audio_same_length(tmp_path):
    audio = Audio(speechlike(1.3), 16000)
    n = audio.n_video_frames
    out = tmp_path / "v.mp4"
    written = media.write_video(out, (_frame(i) for i in range(n)), 25.0, audio)
    assert written == n == 33
    info = media.probe_video(out)
    assert info.has_audio and info.codec == "h264" and (info.width, info.height) == (96, 64)
    assert abs(info.duration - n / 25) < 1 / 25
    back = media.read_audio(out)
    assert abs(back.duration - n / 25) < 1 / 25  # audio trimmed or padded to the video
    frames = media.read_video(out)
    assert frames.shape == (n, 64, 96, 3)
    reds = frames[:, 32, 48, 0].astype(int)
    assert np.all(np.abs(reds - (np.arange(n) * 7) % 256) < 6)
    assert not list(tmp_path.glob(".*partial*"))


def test_audio_shorter_than_video_is_padded(tmp_path):
    audio = Audio(speechlike(0.5), 16000)
    out = tmp_path / "v.mp4"
    media.write_video(out, (_frame(i) for i in range(25)), 25.0, audio)
    assert abs(media.read_audio(out).duration - 1.0) < 1 / 25


def test_variable_frame_rate_is_resampled_to_25fps(tmp_path):
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.uniform(0.02, 0.07, size=60))
    times -= times[0]
    path = tmp_path / "vfr.mp4"
    write_av(path, [_frame(i, (64, 64)) for i in range(len(times))], times)  # frames at irregular times
    info = media.probe_video(path)
    frames = list(media.iter_video_frames(path))
    assert len(frames) == info.n_frames(25.0)
    # Output frame k shows the source frame on screen at k/25 s.
    for k in range(0, len(frames), 5):
        src = int(np.searchsorted(times, k / 25 + 1e-6, side="right") - 1)
        assert abs(int(frames[k][32, 32, 0]) - (src * 7) % 256) < 6, k


def test_missing_and_bad_files(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        media.read_audio(tmp_path / "nope.wav")
    junk = tmp_path / "junk.mp4"
    junk.write_text("this is not a video")
    with pytest.raises(MediaError, match="junk.mp4"):
        media.probe_video(junk)


def test_truncated_video_is_a_clear_error(tmp_path):
    good = tmp_path / "good.mp4"
    media.write_video(good, (_frame(i) for i in range(20)), 25.0, None)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(MediaError, match="cut.mp4"):
        list(media.iter_video_frames(cut))


def test_audio_only_file_is_not_a_video(tmp_path, wav_file):
    with pytest.raises(MediaError, match="no video stream"):
        media.probe_video(wav_file)


def test_video_without_frames(tmp_path):
    path = tmp_path / "empty.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        c.start_encoding()  # header only, no frames
    with pytest.raises(MediaError, match="empty.mp4"):
        list(media.iter_video_frames(path))


def test_writer_rejects_odd_sizes_and_leaves_nothing(tmp_path):
    out = tmp_path / "odd.mp4"
    with pytest.raises(MediaError, match="even"):
        media.write_video(out, [np.zeros((63, 64, 3), np.uint8)])
    assert not out.exists() and not list(tmp_path.iterdir())


def test_read_audio_resamples_and_downmixes(tmp_path):
    import soundfile

    sr = 44100
    t = np.arange(sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    path = tmp_path / "st.wav"
    soundfile.write(str(path), stereo, sr)
    a = media.read_audio(path)
    assert a.sample_rate == 16000 and abs(a.duration - 1.0) < 0.01
    spectrum = np.abs(np.fft.rfft(a.samples))
    assert abs(np.argmax(spectrum) * 16000 / len(a.samples) - 440) < 3


@pytest.mark.skipif(not (__import__("conftest").SHARED_DATA / "video").is_dir(), reason="../shared/data absent")
def test_real_vfr_clip_resamples_to_25fps():
    path = __import__("conftest").SHARED_DATA / "video" / "speaker_a_6s.mp4"
    info = media.probe_video(path)
    n = sum(1 for _ in media.iter_video_frames(path))
    assert n == info.n_frames(25.0) == 152
    assert abs(media.read_audio(path).duration - n / 25) < 2 / 25
