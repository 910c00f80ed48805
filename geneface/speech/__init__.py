"""Offline speech from text (eSpeak NG) with the time of every phoneme.

    from geneface.speech import synthesize
    speech = synthesize("Hello there.", voice="en-us+f3", rate=160, pitch=50)
    speech.audio        # Audio, mono float32 at 16 kHz
    speech.phonemes     # (Phoneme(symbol, start, end, stress), ...)

Voices are eSpeak NG language codes ("en-us", "en-gb-x-rp", "de", ...) with an optional
"+variant" ("en-us+f3", "de+m2"): `list_voices()` and `list_variants()` say what is there.

Modules: `espeak` (eSpeak NG through ctypes: the engine, voices, phoneme events),
`records` (`Speech`, `Phoneme`).
"""

from __future__ import annotations

from geneface.core.records import SAMPLE_RATE
from geneface.speech.espeak import (
    PITCH_RANGE,
    RATE_RANGE,
    SpeechUnavailable,
    VoiceInfo,
    engine_info,
    get_engine,
)
from geneface.speech.records import Phoneme, Speech, concatenate

DEFAULT_VOICE = "en-us"
DEFAULT_RATE = 160
DEFAULT_PITCH = 50


def synthesize(
    text: str,
    voice: str = DEFAULT_VOICE,
    rate: int = DEFAULT_RATE,
    pitch: int = DEFAULT_PITCH,
    sample_rate: int = SAMPLE_RATE,
) -> Speech:
    """Speak `text`; raises UsageError for empty text, unknown voice, rate or pitch out of range."""
    return get_engine().synthesize(text, voice, rate, pitch, sample_rate)


def list_voices() -> list[VoiceInfo]:
    return list(get_engine().voices.values())


def list_variants() -> list[str]:
    return list(get_engine().variants)


def resolve_voice(spec: str) -> str:
    """Canonical "code[+variant]" for `spec`, or a UsageError naming close matches."""
    return get_engine().resolve_voice(spec)


__all__ = [
    "DEFAULT_PITCH",
    "DEFAULT_RATE",
    "DEFAULT_VOICE",
    "PITCH_RANGE",
    "RATE_RANGE",
    "Phoneme",
    "Speech",
    "SpeechUnavailable",
    "VoiceInfo",
    "concatenate",
    "engine_info",
    "list_variants",
    "list_voices",
    "resolve_voice",
    "synthesize",
]
