"""Long audio streams: 3 minutes of speech through the real audio-to-motion chain (mel ->
vae -> identity -> person_postprocess -> a renderer) peaks at the same memory as
30 seconds (within 10 %), and the video is exactly as long as the audio."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from geneface.core import media
from support.mel_models import mel_vae
from support.subject import subject_dataset


def _peak_rss_mb(spec, out) -> float:
    """Peak resident memory of `geneface run SPEC` in a process of its own, MiB."""
    code = textwrap.dedent(f"""
        import resource, sys
        from geneface.cli import main
        code = main(["run", {str(spec)!r}, "-o", {str(out)!r}, "-q", "--overwrite"])
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        sys.exit(code)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return float(r.stdout.strip().splitlines()[-1])


def test_three_minutes_of_audio_render_with_flat_memory(tmp_path_factory, tmp_path):
    pytest.importorskip("geneface_landmark_viz")
    base = tmp_path_factory.getbasetemp()
    person = subject_dataset(base / "subject_2s")  # shared with the renderer tests
    vae = mel_vae(base)
    speech = media.read_audio(person / "audio.wav")  # the subject's 2 s of speech, then a pause, repeated
    unit = np.concatenate([speech.samples, np.zeros(int(0.8 * speech.sample_rate), np.float32)])
    peaks = {}
    for seconds in (30, 180):
        n = seconds * speech.sample_rate
        wav = tmp_path / f"speech_{seconds}.wav"
        media.write_wav(wav, media.Audio(np.tile(unit, n // len(unit) + 1)[:n], speech.sample_rate))
        spec = tmp_path / f"long_{seconds}.yaml"
        spec.write_text(f"""
input: {{audio: {wav}}}
stages:
  audio_encoder: {{plugin: mel}}
  motion_generator: {{plugin: vae, checkpoint: {vae}}}
  domain_adapter: {{plugin: identity}}
  post_processor: {{plugin: person_postprocess, config: {{person: {person}}}}}
  renderer: {{plugin: landmark_sketch, config: {{size: 64}}}}
output: long.mp4
""")
        video = tmp_path / f"long_{seconds}.mp4"
        peaks[seconds] = _peak_rss_mb(spec, video)
        info = media.probe_video(video)
        assert info.has_audio and abs(info.n_frames() - seconds * 25) <= 1
    assert abs(peaks[180] - peaks[30]) <= 0.10 * peaks[30], peaks


def test_mel_of_long_audio_goes_in_pieces_equal_to_the_whole(monkeypatch):
    """The mel encoder's spectrogram is taken piece by piece: the same features bit for bit,
    whatever the piece, and memory that does not grow with the audio (it held the whole
    audio's complex STFT: 3.6 GB peaks on two hours)."""
    import tracemalloc

    import geneface.plugins.mel as mel
    from geneface.core.records import Audio

    rng = np.random.default_rng(0)
    y = rng.normal(0, 0.1, 16000 * 7 + 123).astype(np.float32)
    for config in (mel.MelConfig(), mel.MelConfig(n_fft=2048, win_length=1024, n_mels=40)):
        whole = mel.MelEncoder(config).log_mel(y)
        for piece in (64, 100, 349, 351):
            monkeypatch.setattr(mel, "PIECE_FRAMES", piece, raising=False)
            assert np.array_equal(mel.MelEncoder(config).log_mel(y), whole), (config, piece)
            monkeypatch.undo()

    long = Audio(rng.normal(0, 0.1, 16000 * 360).astype(np.float32))  # 6 minutes
    encoder = mel.MelEncoder()
    tracemalloc.start()
    try:
        features = encoder.encode(long)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert features.n_frames == 18000
    assert peak < 40, f"{peak:.0f} MiB"  # whole: about 105 MiB; a 60 s piece: about 20
