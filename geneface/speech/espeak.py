"""eSpeak NG through ctypes: audio and timed phoneme events from one synthesis call.

Where the library comes from, first found wins:

1. `GENEFACE_ESPEAK_LIBRARY` (+ optional `GENEFACE_ESPEAK_DATA`): an explicit choice.
2. The `espeakng-loader` wheel: it carries libespeak-ng and its voice data, so speech works
   on a fresh machine with nothing but pip.
3. The system library, e.g. Debian's `libespeak-ng1` (installed with the `espeak-ng`
   package) and its `espeak-ng-data` folder.

The `espeak-ng` command itself is not used: it writes audio but cannot report when each
phoneme starts, and the timings are the point. The library under it is the same code.

eSpeak keeps one global state per process (voice, parameters, callback, and synthesis
state that outlives espeak_Terminate), so every call holds a lock and runs on a freshly
loaded copy of the library (see `Engine`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Optional

import attrs
import numpy as np

from geneface.core.records import SAMPLE_RATE, Audio
from geneface.core.text import did_you_mean
from geneface.errors import GenefaceError, UsageError
from geneface.speech.records import Phoneme, Speech, split_stress

# From speak_lib.h (stable ABI since espeak 1.48).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EV_LIST_TERMINATED = 0
_EV_PHONEME = 7
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4

RATE_RANGE = (80, 450)  # words per minute eSpeak accepts
PITCH_RANGE = (0, 99)



class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.POINTER(ctypes.c_char)),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class SpeechUnavailable(GenefaceError):
    """No usable eSpeak NG library or voice data on this machine."""


@attrs.frozen
class VoiceInfo:
    """A language voice: `code` is what `--voice` takes (e.g. "en-us")."""

    code: str
    name: str
    identifier: str
    gender: str
    languages: tuple


@attrs.frozen
class Backend:
    """Where the library and its data were found."""

    library: str
    data: str
    origin: str  # "env", "espeakng-loader" or "system"


def _system_data_dirs() -> list[Path]:
    return [
        Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data"),
        Path("/usr/lib/aarch64-linux-gnu/espeak-ng-data"),
        Path("/usr/share/espeak-ng-data"),
        Path("/usr/local/share/espeak-ng-data"),
        Path("/opt/homebrew/share/espeak-ng-data"),
    ]


def find_backends() -> list[Backend]:
    """Every library + data pair this machine offers, in order of preference."""
    found = []
    env_lib = os.environ.get("GENEFACE_ESPEAK_LIBRARY")
    if env_lib:
        data = os.environ.get("GENEFACE_ESPEAK_DATA", "")
        found.append(Backend(env_lib, data, "env"))
    try:
        import espeakng_loader

        lib, data = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
        if Path(lib).exists():
            found.append(Backend(lib, data, "espeakng-loader"))
    except (ImportError, RuntimeError):
        pass
    system_lib = ctypes.util.find_library("espeak-ng")
    if system_lib:
        data = next((str(d) for d in _system_data_dirs() if (d / "phontab").exists()), "")
        found.append(Backend(system_lib, data, "system"))
    return found


def _load(backend: Backend):
    """dlopen the library, declare the calls used here and initialise it."""
    try:
        lib = ctypes.CDLL(backend.library)
    except OSError as exc:
        raise SpeechUnavailable(f"cannot load eSpeak NG library {backend.library}: {exc}") from None
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    data = backend.data.encode() if backend.data else None
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
    if rate <= 0:
        _unload(lib)
        raise SpeechUnavailable(
            f"eSpeak NG failed to start (library {backend.library}, data {backend.data or 'built-in path'})"
        )
    return lib, int(rate)


def _unload(lib) -> None:
    import _ctypes

    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
    try:
        lib.espeak_Terminate()
    finally:
        if close is not None:
            close(lib._handle)


class Engine:
    """eSpeak NG from one backend. Use `get_engine()`.

    eSpeak keeps synthesis state in static variables that survive espeak_Terminate (the
    same text spoken twice comes out a few samples different, with the waveform shifted),
    so every synthesis loads the library afresh and unloads it after: about 10 ms, and the
    output then depends only on the text and the settings. (If something else in the
    process holds the same library open, unloading cannot happen and that guarantee lapses.)
    """

    def __init__(self, backend: Backend):
        self.backend = backend
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._on_audio)  # kept referenced: C holds the pointer
        lib, rate = _load(backend)
        try:
            self.native_rate = rate
            self.version = (lib.espeak_Info(None) or b"?").decode()
            self.voices = self._list_voices(lib)
        finally:
            _unload(lib)
        self.variants = self._list_variants()

    # --- voices -----------------------------------------------------------------------
    def _list_voices(self, lib) -> dict[str, VoiceInfo]:
        self._priority: dict[tuple, int] = {}
        array = lib.espeak_ListVoices(None)
        voices = {}
        i = 0
        while array[i]:
            v = array[i].contents
            ranked = _parse_languages(v.languages)
            languages = [name.lower() for _prio, name in ranked]
            if languages:
                code = languages[0]
                self._priority.update({(code, name.lower()): prio for prio, name in ranked})
                voices[code] = VoiceInfo(
                    code=code,
                    name=(v.name or b"").decode(errors="replace"),
                    identifier=(v.identifier or b"").decode(errors="replace"),
                    gender={1: "male", 2: "female"}.get(v.gender, ""),
                    languages=tuple(languages),
                )
            i += 1
        # Some builds list voices whose pronunciation dictionary they do not ship (the
        # wheel lacks fo, kaa and xex); such a voice would speak nothing useful.
        self.unusable = sorted(c for c, v in voices.items() if not self._has_dictionary(v))
        return dict(sorted((c, v) for c, v in voices.items() if c not in self.unusable))

    def _has_dictionary(self, voice: VoiceInfo) -> bool:
        if not self.backend.data:
            return True  # built-in data path: cannot check, trust it
        data = Path(self.backend.data)
        name = voice.code.split("-")[0]
        lang_file = data / "lang" / voice.identifier
        if lang_file.is_file():
            for line in lang_file.read_text(errors="replace").splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "dictionary":
                    name = parts[1]
        return (data / f"{name}_dict").is_file()

    def _list_variants(self) -> list[str]:
        data = Path(self.backend.data) if self.backend.data else None
        folder = data / "voices" / "!v" if data else None
        if folder is None or not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_file())

    def resolve_voice(self, spec: str) -> str:
        """Check "code[+variant]" against the installed voices; return its canonical form."""
        spec = (spec or "").strip()
        if not spec:
            raise UsageError("voice is empty (try en-us, or `geneface say --list-voices`)")
        base, _, variant = spec.partition("+")
        key = base.lower()
        by_identifier = {v.identifier.lower(): v.code for v in self.voices.values()}
        by_name = {v.name.lower(): v.code for v in self.voices.values()}
        # A bare language ("en") goes to the voice that ranks it highest (lowest number).
        by_language: dict[str, tuple] = {}
        for v in self.voices.values():
            for lang in v.languages:
                rank = (self._priority.get((v.code, lang), 99), v.code)
                by_language[lang] = min(by_language.get(lang, rank), rank)
        by_language = {lang: rank[1] for lang, rank in by_language.items()}
        if key in self.voices:
            code = key
        else:
            code = by_identifier.get(key) or by_name.get(key) or by_language.get(key)
        if code is None and key in self.unusable:
            raise UsageError(f"voice {base!r} is listed by eSpeak NG but its dictionary is missing from this installation")
        if code is None:
            hint = did_you_mean(key, self.voices, n=4)
            raise UsageError(f"unknown voice {base!r}{hint} (`geneface say --list-voices` lists all {len(self.voices)})")
        if variant:
            if self.variants and variant not in self.variants:
                hint = did_you_mean(variant, self.variants, n=4)
                raise UsageError(f"unknown voice variant {variant!r}{hint}")
            return f"{code}+{variant}"
        return code

    # --- synthesis --------------------------------------------------------------------
    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while True:
            ev = events[i]
            if ev.type == _EV_LIST_TERMINATED:
                break
            if ev.type == _EV_PHONEME:
                name = bytes(ev.id.string).split(b"\0", 1)[0].decode("utf-8", errors="replace")
                self._events.append((int(ev.sample), name))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, sample_rate: int = SAMPLE_RATE) -> Speech:
        text = check_text(text)
        check_rate_pitch(rate, pitch)
        voice = self.resolve_voice(voice)
        code, _, variant = voice.partition("+")
        # eSpeak finds voices by file identifier reliably; language codes such as "en-gb"
        # fail once a "+variant" is appended.
        ident = self.voices[code].identifier + (f"+{variant}" if variant else "")
        with self._lock:
            self._chunks, self._events = [], []
            lib, _rate = _load(self.backend)
            try:
                lib.espeak_SetSynthCallback(self._callback)
                if lib.espeak_SetVoiceByName(ident.encode()) != 0:
                    raise UsageError(f"eSpeak NG refused voice {voice!r}")
                lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
                lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
                lib.espeak_SetParameter(_PARAM_RANGE, 50, 0)
                lib.espeak_SetParameter(_PARAM_VOLUME, 100, 0)
                raw = text.encode("utf-8")
                if hasattr(lib, "espeak_ng_SetRandSeed"):
                    # Some variants (en-gb+f2, ...) add breath noise from eSpeak's own random
                    # numbers: a fixed seed per utterance makes the same text and voice speak
                    # the same samples (Debian's older library lacks the call).
                    lib.espeak_ng_SetRandSeed(ctypes.c_long(0))
                status = lib.espeak_Synth(raw, len(raw) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
                lib.espeak_Synchronize()
            finally:
                _unload(lib)
            chunks, events = self._chunks, self._events
            self._chunks, self._events = [], []
        if status != 0:
            raise GenefaceError(f"eSpeak NG synthesis failed (status {status}) for voice {voice!r}")
        native = np.concatenate(chunks).astype(np.float32) / 32768.0 if chunks else np.zeros(0, np.float32)
        if not np.any(native):
            raise GenefaceError(f"eSpeak NG produced no audio for {text[:40]!r} with voice {voice!r}")
        total = len(native) / self.native_rate
        phonemes = _events_to_phonemes(events, self.native_rate, total)
        samples = _resample(native, self.native_rate, sample_rate)
        return Speech(
            audio=Audio(np.clip(samples, -1.0, 1.0), sample_rate),
            phonemes=phonemes,
            text=text,
            voice=voice,
            rate=int(rate),
            pitch=int(pitch),
            backend=f"espeak-ng {self.version} ({self.backend.origin})",
        )


def _parse_languages(ptr) -> list[tuple[int, str]]:
    """eSpeak packs languages as (priority byte, NUL-terminated name) pairs, ending with 0."""
    out, j = [], 0
    while ptr[j] != b"\0":
        priority = ptr[j][0]
        j += 1
        name = bytearray()
        while ptr[j] != b"\0":
            name += ptr[j]
            j += 1
        j += 1
        out.append((priority, name.decode(errors="replace")))
    return out


def _events_to_phonemes(events: list[tuple[int, str]], rate: int, total: float) -> list[Phoneme]:
    """Each phoneme lasts until the next one starts; eSpeak ends the list with a pause."""
    phonemes = []
    for k, (sample, raw) in enumerate(events):
        symbol, stress = split_stress(raw)
        if not symbol:
            continue
        start = sample / rate
        end = events[k + 1][0] / rate if k + 1 < len(events) else total
        end = max(start, min(end, total))
        if phonemes and start < phonemes[-1].start:
            start = phonemes[-1].start
        phonemes.append(Phoneme(symbol, start, end, stress))
    # Drop zero-length markers (eSpeak's final "_") that carry no time.
    return [p for p in phonemes if p.end > p.start]


def _resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst:
        return x
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(src, dst)
    return resample_poly(x, dst // g, src // g).astype(np.float32)


def check_text(text: str) -> str:
    text = " ".join((text or "").split())
    if not text:
        raise UsageError("text is empty: give some words to speak")
    if not any(ch.isalnum() for ch in text):
        raise UsageError(f"text {text!r} has nothing to pronounce (no letters or digits)")
    return text


def check_rate_pitch(rate: int, pitch: int) -> None:
    if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        raise UsageError(f"rate {rate} words/min is outside {RATE_RANGE[0]}-{RATE_RANGE[1]}")
    if not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
        raise UsageError(f"pitch {pitch} is outside {PITCH_RANGE[0]}-{PITCH_RANGE[1]}")


_ENGINE_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _engine() -> Engine:
    backends = find_backends()
    if not backends:
        raise SpeechUnavailable(
            "no eSpeak NG found: `pip install espeakng-loader` (bundles it) or `apt-get install espeak-ng`"
        )
    errors = []
    for backend in backends:
        try:
            return Engine(backend)
        except SpeechUnavailable as exc:
            errors.append(str(exc))
    raise SpeechUnavailable("; ".join(errors))


def get_engine() -> Engine:
    """The process-wide eSpeak engine (loaded on first use)."""
    with _ENGINE_LOCK:
        return _engine()


def engine_info() -> Optional[dict]:
    """Version and origin of the engine, for provenance in meta files."""
    engine = get_engine()
    return {
        "engine": "espeak-ng",
        "version": engine.version,
        "origin": engine.backend.origin,
        "library": engine.backend.library,
        "native_sample_rate": engine.native_rate,
    }
