"""Speech records: audio plus the phonemes the synthesiser spoke and when."""

from __future__ import annotations

from typing import Iterable

import attrs
import numpy as np

from geneface.core.arrays import fit_rows
from geneface.core.records import Audio

# espeak marks stress before a vowel: ' primary, , secondary. A pause phoneme is "_" or
# "_:" (longer); "_!" and similar are pause variants too.
STRESS_MARKS = {"'": 2, ",": 1}


@attrs.frozen
class Phoneme:
    """One phoneme: espeak mnemonic (stress mark removed), its time span and stress.

    `start` and `end` are seconds from the start of the audio; `stress` is 2 for primary,
    1 for secondary, 0 for none.
    """

    symbol: str
    start: float
    end: float
    stress: int = 0

    @property
    def is_pause(self) -> bool:
        return self.symbol.startswith("_")

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        return {"symbol": self.symbol, "start": round(self.start, 5), "end": round(self.end, 5), "stress": self.stress}

    @classmethod
    def from_dict(cls, d: dict) -> "Phoneme":
        return cls(str(d["symbol"]), float(d["start"]), float(d["end"]), int(d.get("stress", 0)))


def split_stress(raw: str) -> tuple[str, int]:
    """espeak's "'oU" -> ("oU", 2)."""
    stress = 0
    while raw and raw[0] in STRESS_MARKS:
        stress = max(stress, STRESS_MARKS[raw[0]])
        raw = raw[1:]
    return raw, stress


@attrs.frozen(eq=False)
class Speech:
    """Synthesised speech: the audio, the timed phonemes and how it was made."""

    audio: Audio
    phonemes: tuple = attrs.field(converter=tuple)
    text: str = ""
    voice: str = ""
    rate: int = 0
    pitch: int = 0
    backend: str = ""

    @phonemes.validator
    def _check(self, _attr, value):
        previous = 0.0
        for ph in value:
            if not isinstance(ph, Phoneme):
                raise TypeError(f"Speech.phonemes holds {type(ph).__name__}, expected Phoneme")
            if ph.end < ph.start or ph.start < previous - 1e-6:
                raise ValueError(f"Speech.phonemes out of order at {ph}")
            previous = ph.start

    @property
    def duration(self) -> float:
        return self.audio.duration

    def spoken(self) -> list[Phoneme]:
        """Phonemes that are not pauses."""
        return [p for p in self.phonemes if not p.is_pause]

    def shifted(self, seconds: float, total: float | None = None) -> "Speech":
        """Delay audio and phonemes by `seconds` (silence in front); pad or cut to `total`."""
        sr = self.audio.sample_rate
        lead = int(round(seconds * sr))
        samples = np.concatenate([np.zeros(max(lead, 0), np.float32), self.audio.samples[max(-lead, 0):]])
        phonemes = [attrs.evolve(p, start=p.start + seconds, end=p.end + seconds) for p in self.phonemes]
        if total is not None:
            n = int(round(total * sr))
            samples = fit_rows(samples, n, pad="zeros")
            phonemes = [attrs.evolve(p, end=min(p.end, total)) for p in phonemes if p.start < total]
        phonemes = [p for p in phonemes if p.end > 0]
        phonemes = [attrs.evolve(p, start=max(p.start, 0.0)) for p in phonemes]
        return attrs.evolve(self, audio=Audio(samples, sr), phonemes=phonemes)

    def phoneme_table(self) -> list[dict]:
        return [p.to_dict() for p in self.phonemes]


def concatenate(parts: Iterable[Speech], gap: float = 0.0) -> Speech:
    """Join utterances end to end with `gap` seconds of silence between them."""
    parts = list(parts)
    if not parts:
        raise ValueError("nothing to concatenate")
    sr = parts[0].audio.sample_rate
    chunks, phonemes, offset = [], [], 0.0
    for i, part in enumerate(parts):
        if part.audio.sample_rate != sr:
            raise ValueError("utterances differ in sample rate")
        if i and gap > 0:
            n_gap = int(round(gap * sr))
            chunks.append(np.zeros(n_gap, np.float32))
            phonemes.append(Phoneme("_", offset, offset + n_gap / sr))
            offset += n_gap / sr
        chunks.append(part.audio.samples)
        phonemes.extend(attrs.evolve(p, start=p.start + offset, end=p.end + offset) for p in part.phonemes)
        offset += len(part.audio.samples) / sr
    first = parts[0]
    return Speech(
        Audio(np.concatenate(chunks), sr),
        phonemes,
        text=" ".join(p.text for p in parts),
        voice=first.voice,
        rate=first.rate,
        pitch=first.pitch,
        backend=first.backend,
    )
