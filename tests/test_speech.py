"""Offline speech: eSpeak NG through ctypes, phoneme timings, voices, bad input, `geneface say`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from geneface.cli import main
from geneface.errors import UsageError
from geneface.speech import (
    Phoneme,
    Speech,
    concatenate,
    list_variants,
    list_voices,
    resolve_voice,
    synthesize,
)
from geneface.speech import espeak
from geneface.speech.records import split_stress


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _f0(audio) -> float:
    """Median pitch (Hz) of the voiced 40 ms windows, by autocorrelation."""
    x, sr = audio.samples.astype(np.float64), audio.sample_rate
    n = int(0.04 * sr)
    lo, hi = int(sr / 400), int(sr / 60)
    found = []
    for start in range(0, len(x) - n, n // 2):
        w = x[start:start + n] - x[start:start + n].mean()
        if _rms(w) < 0.05:
            continue
        ac = np.correlate(w, w, "full")[n - 1:]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3 * ac[0]:
            found.append(sr / lag)
    return float(np.median(found))


def test_speech_is_audible_and_timed():
    speech = synthesize("Hello world, this is a test.")
    assert speech.audio.sample_rate == 16_000
    assert 0.8 < speech.duration < 4.0
    assert _rms(speech.audio.samples) > 0.02
    assert np.abs(speech.audio.samples).max() <= 1.0
    spoken = speech.spoken()
    assert len(spoken) >= 12
    starts = [p.start for p in speech.phonemes]
    assert starts == sorted(starts)
    assert all(0.0 <= p.start < p.end <= speech.duration + 1e-6 for p in speech.phonemes)
    # stress marks are split off the symbol: "'oU" -> "oU", stress 2
    assert any(p.stress == 2 for p in spoken)
    assert not any(p.symbol.startswith(("'", ",")) for p in speech.phonemes)
    assert speech.backend.startswith("espeak-ng 1.")


def test_phoneme_timings_match_the_audio():
    """Vowels are loud, the pause between sentences is silent: the timings are real."""
    speech = synthesize("Papa saw a big bear. Mama ran away.")
    x, sr = speech.audio.samples, speech.audio.sample_rate

    def energy(p: Phoneme) -> float:
        return _rms(x[int(p.start * sr): int(p.end * sr)])

    vowels = [p for p in speech.spoken() if p.symbol[0] in "aAeEiIoOuUV@3"]
    pauses = [p for p in speech.phonemes if p.is_pause and p.duration > 0.1]
    assert vowels and pauses
    assert np.median([energy(p) for p in vowels]) > 10 * max(energy(p) for p in pauses)


def test_duration_grows_with_text_and_falls_with_rate():
    short = synthesize("Hello.")
    long = synthesize("Hello. This sentence is a good deal longer than the first one was.")
    assert long.duration > 2.5 * short.duration
    assert len(long.spoken()) > 3 * len(short.spoken())
    slow = synthesize("The quick brown fox jumps over the lazy dog.", rate=120)
    fast = synthesize("The quick brown fox jumps over the lazy dog.", rate=240)
    assert fast.duration < 0.7 * slow.duration


def test_pitch_option_changes_voice_pitch():
    low = synthesize("Hello there, how are you today?", pitch=15)
    high = synthesize("Hello there, how are you today?", pitch=85)
    assert _f0(high.audio) > 1.3 * _f0(low.audio)


@pytest.mark.parametrize("voice", ["en-gb+f3", "en-gb+f2"])  # f2 breathes: eSpeak's random noise, seeded
def test_synthesis_is_deterministic(voice):
    a = synthesize("Determinism matters for tests.", voice=voice)
    b = synthesize("Determinism matters for tests.", voice=voice)
    assert np.array_equal(a.audio.samples, b.audio.samples)
    assert a.phonemes == b.phonemes


def test_synthesis_is_the_same_in_another_process():
    """eSpeak seeds its breath noise (the f2 variant's) per process unless told; corpora made in
    separate runs must hold the same audio."""
    import subprocess
    import sys

    code = ("import hashlib; from geneface.speech import synthesize; "
            "print(hashlib.sha256(synthesize('Help the woman get back to her feet.', voice='en-gb+f2').audio.samples.tobytes())"
            ".hexdigest())")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0].strip()) == 64


def test_voices_and_variants():
    codes = {v.code for v in list_voices()}
    assert {"en-us", "en-gb", "en-gb-x-rp", "de", "fr-fr", "es"} <= codes
    assert len(codes) > 100
    variants = set(list_variants())
    assert {"f1", "f3", "m1", "m7", "whisper"} <= variants
    assert resolve_voice("EN-US") == "en-us"
    assert resolve_voice("en") == "en-gb"  # eSpeak ranks en-gb first for plain "en"
    assert resolve_voice("English (America)") == "en-us"
    assert resolve_voice("en-gb+m4") == "en-gb+m4"
    female = synthesize("One two three.", voice="en-us+f3")
    male = synthesize("One two three.", voice="en-us+m3")
    assert _f0(female.audio) > 1.2 * _f0(male.audio)
    german = synthesize("Guten Tag, wie geht es Ihnen?", voice="de")
    assert german.voice == "de" and _rms(german.audio.samples) > 0.02


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(text=""), "text is empty"),
        (dict(text="   \n "), "text is empty"),
        (dict(text="?!... --"), "nothing to pronounce"),
        (dict(text="hi", voice="en-uss"), "did you mean 'en-us'"),
        (dict(text="hi", voice="klingonese"), "unknown voice"),
        (dict(text="hi", voice="en-us+nosuch"), "unknown voice variant"),
        (dict(text="hi", voice=""), "voice is empty"),
        (dict(text="hi", rate=10), "rate 10"),
        (dict(text="hi", pitch=150), "pitch 150"),
    ],
)
def test_bad_input_is_a_usage_error(kwargs, message):
    with pytest.raises(UsageError, match=message):
        synthesize(**kwargs)


def test_voice_without_dictionary_is_refused():
    engine = espeak.get_engine()
    if not engine.unusable:
        pytest.skip("this eSpeak NG installation ships every dictionary")
    with pytest.raises(UsageError, match="dictionary is missing"):
        resolve_voice(engine.unusable[0])


def test_backend_discovery_order(monkeypatch):
    import espeakng_loader

    monkeypatch.setenv("GENEFACE_ESPEAK_LIBRARY", espeakng_loader.get_library_path())
    monkeypatch.setenv("GENEFACE_ESPEAK_DATA", espeakng_loader.get_data_path())
    found = espeak.find_backends()
    assert found[0].origin == "env"
    assert found[1].origin == "espeakng-loader"
    # Without the wheel and without a system library there is nothing to use.
    monkeypatch.delenv("GENEFACE_ESPEAK_LIBRARY")
    monkeypatch.setitem(__import__("sys").modules, "espeakng_loader", None)
    monkeypatch.setattr(espeak.ctypes.util, "find_library", lambda name: None)
    assert espeak.find_backends() == []
    # With only a system library, it is found together with its data folder.
    monkeypatch.setattr(espeak.ctypes.util, "find_library", lambda name: "libespeak-ng.so.1")
    data = __import__("pathlib").Path(espeakng_loader.get_data_path())
    monkeypatch.setattr(espeak, "_system_data_dirs", lambda: [data])
    (system,) = espeak.find_backends()
    assert system.origin == "system" and system.data == str(data)


def test_speech_records_shift_and_concatenate():
    a = synthesize("One.")
    b = synthesize("Two.")
    both = concatenate([a, b], gap=0.25)
    assert both.duration == pytest.approx(a.duration + 0.25 + b.duration, abs=1e-3)
    assert both.phonemes[len(a.phonemes)].is_pause  # the gap
    assert both.phonemes[-1].end == pytest.approx(both.duration, abs=1e-3)
    late = a.shifted(0.5, total=a.duration + 1.0)
    assert late.duration == pytest.approx(a.duration + 1.0, abs=1e-3)
    assert late.phonemes[0].start == pytest.approx(a.phonemes[0].start + 0.5)
    n = int(0.5 * 16000)
    assert not np.any(late.audio.samples[:n])
    assert np.array_equal(late.audio.samples[n:n + len(a.audio.samples)], a.audio.samples)
    cut = a.shifted(0.0, total=0.2)
    assert cut.duration == pytest.approx(0.2) and all(p.end <= 0.2 + 1e-9 for p in cut.phonemes)
    assert split_stress(",aI") == ("aI", 1)
    with pytest.raises(ValueError):
        Speech(a.audio, [Phoneme("a", 0.5, 0.6), Phoneme("b", 0.1, 0.2)])


def test_say_command(tmp_path, capsys):
    out = tmp_path / "speech.wav"
    assert main(["say", "Good morning, everyone.", "-o", str(out), "--voice", "en-gb-x-rp", "--rate", "150"]) == 0
    samples, sr = soundfile.read(out)
    assert sr == 16_000 and len(samples) > 0.8 * sr and _rms(samples) > 0.02
    table = json.loads((tmp_path / "speech.phonemes.json").read_text())
    assert table["voice"] == "en-gb-x-rp" and table["rate"] == 150
    assert table["engine"]["engine"] == "espeak-ng"
    assert table["phonemes"][-1]["end"] <= table["duration"] + 1e-6
    assert main(["say", "x", "-o", str(tmp_path / "x.wav"), "--voice", "nope"]) == 2
    assert "unknown voice 'nope'" in capsys.readouterr().err
    assert main(["say", "", "-o", str(tmp_path / "y.wav")]) == 2
    assert not (tmp_path / "y.wav").exists()
    assert main(["say", "--list-voices"]) == 0
    listing = capsys.readouterr().out
    assert "en-us" in listing and "variants" in listing
