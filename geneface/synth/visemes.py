"""Phonemes -> visemes -> smooth articulator tracks (jaw, lips), frame by frame.

Visemes are the 15 classes common in lip-sync tools (silence, PP, FF, TH, DD, kk, CH, SS,
nn, RR, aa, E, ih, oh, ou). Each phoneme sets targets for five articulators and how strongly
it insists on them; coarticulation follows Cohen & Massaro's dominance model: every phoneme
exerts an influence that decays exponentially away from its centre, and each articulator's
value is the dominance-weighted mean of the targets. So lips close fully for /p b m/ (high
dominance) while /k h/ take the lip shape of their neighbours (low dominance), and the
mouth moves smoothly instead of jumping from target to target.
"""

from __future__ import annotations

from typing import Sequence

import attrs
import numpy as np

from geneface.speech.records import Phoneme

VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")
VISEME_ID = {name: i for i, name in enumerate(VISEMES)}

#: Articulator channels, in the column order of `ArticulationTrack.values`.
CHANNELS = ("jaw", "spread", "round", "closure", "tuck")

# Targets per viseme: jaw opening 0..1, lip spread 0..1, lip rounding 0..1, lip closure
# 0..1 (bilabial seal), lower-lip tuck 0..1 (labiodental), then dominance per channel.
_T = {
    #        jaw   spr   rnd   clo   tck     dominance: jaw  spr  rnd  clo  tck
    "sil": ((0.00, 0.00, 0.00, 0.60, 0.00), (0.7, 0.4, 0.4, 0.5, 0.3)),
    "PP": ((0.10, 0.00, 0.05, 1.00, 0.00), (0.6, 0.3, 0.3, 4.0, 0.3)),
    "FF": ((0.12, 0.10, 0.00, 0.00, 1.00), (0.6, 0.4, 0.4, 1.0, 4.0)),
    "TH": ((0.22, 0.15, 0.00, 0.00, 0.00), (0.6, 0.4, 0.4, 1.0, 1.0)),
    "DD": ((0.20, 0.10, 0.00, 0.00, 0.00), (0.5, 0.3, 0.3, 1.0, 1.0)),
    "kk": ((0.25, 0.05, 0.00, 0.00, 0.00), (0.4, 0.15, 0.15, 1.0, 1.0)),
    "CH": ((0.16, 0.00, 0.65, 0.00, 0.00), (0.6, 0.8, 1.2, 1.0, 1.0)),
    "SS": ((0.10, 0.45, 0.00, 0.00, 0.00), (0.7, 0.8, 0.6, 1.0, 1.0)),
    "nn": ((0.20, 0.05, 0.00, 0.00, 0.00), (0.5, 0.3, 0.3, 1.0, 1.0)),
    "RR": ((0.20, 0.00, 0.50, 0.00, 0.00), (0.5, 0.6, 0.9, 1.0, 1.0)),
    "aa": ((0.80, 0.10, 0.00, 0.00, 0.00), (1.0, 0.8, 0.8, 1.0, 1.0)),
    "E": ((0.50, 0.40, 0.00, 0.00, 0.00), (1.0, 0.8, 0.8, 1.0, 1.0)),
    "ih": ((0.30, 0.65, 0.00, 0.00, 0.00), (1.0, 0.9, 0.8, 1.0, 1.0)),
    "oh": ((0.60, 0.00, 0.70, 0.00, 0.00), (1.0, 0.8, 1.0, 1.0, 1.0)),
    "ou": ((0.28, 0.00, 1.00, 0.00, 0.00), (1.0, 0.9, 1.2, 1.0, 1.0)),
}
TARGETS = np.array([_T[v][0] for v in VISEMES], dtype=np.float64)
DOMINANCE = np.array([_T[v][1] for v in VISEMES], dtype=np.float64)

# eSpeak mnemonics (shared across its languages) -> viseme. Symbols are looked up whole,
# then without length/variant marks (":" ";" digits), then by their first letter.
_SYMBOLS = {
    "p": "PP", "b": "PP", "m": "PP", "m-": "PP",
    "f": "FF", "v": "FF", "pf": "FF",
    "T": "TH", "D": "TH",
    "t": "DD", "d": "DD", "t#": "DD", "d#": "DD", "?": "DD",
    "k": "kk", "g": "kk", "N": "kk", "h": "kk", "x": "kk", "G": "kk", "Q": "kk", "c": "kk", "J": "kk",
    "tS": "CH", "dZ": "CH", "S": "CH", "Z": "CH", "ts": "SS", "C": "CH", "tC": "CH",
    "s": "SS", "z": "SS",
    "n": "nn", "l": "nn", "L": "nn", "n-": "nn", "l-": "nn", "j": "ih", "n^": "nn", "l^": "nn",
    "r": "RR", "R": "RR", "r-": "RR", "*": "DD", "w": "ou", "W": "ou",
    "a": "aa", "A": "aa", "V": "aa", "a#": "aa", "&": "aa", "6": "aa", "A@": "aa", "aa": "aa",
    "E": "E", "e": "E", "@": "E", "3": "E", "@2": "E", "@5": "E", "@L": "E", "e@": "E", "a2": "E",
    "I": "ih", "i": "ih", "I2": "ih", "i@": "ih", "I#": "ih", "y": "ou", "Y": "E",
    "O": "oh", "0": "oh", "o": "oh", "O@": "oh", "o@": "oh", "9": "E", "2": "oh",
    "U": "ou", "u": "ou", "U@": "ou", "u#": "ou",
}
# Diphthongs glide from a first to a second viseme across their span.
_DIPHTHONGS = {
    "aI": ("aa", "ih"), "aU": ("aa", "ou"), "eI": ("E", "ih"), "OI": ("oh", "ih"),
    "oU": ("oh", "ou"), "aI@": ("aa", "E"), "aU@": ("aa", "E"), "@U": ("E", "ou"),
    "i@3": ("ih", "E"), "e@": ("E", "E"), "I@": ("ih", "E"), "U@": ("ou", "E"), "ai": ("aa", "ih"),
    "au": ("aa", "ou"), "ei": ("E", "ih"), "oi": ("oh", "ih"), "OY": ("oh", "ih"), "aY": ("aa", "ih"),
}
# Unstressed vowels are spoken with a smaller jaw opening than stressed ones.
_STRESS_JAW = {0: 0.8, 1: 0.95, 2: 1.1}
_VOWEL_VISEMES = {"aa", "E", "ih", "oh", "ou"}
_FAST = (CHANNELS.index("closure"), CHANNELS.index("tuck"))
_SUBSAMPLES = 4


def viseme_of(symbol: str) -> str:
    """The viseme class of one eSpeak phoneme mnemonic (diphthongs: their first part)."""
    if symbol.startswith("_") or not symbol:
        return "sil"
    if symbol in _DIPHTHONGS:
        return _DIPHTHONGS[symbol][0]
    if symbol in _SYMBOLS:
        return _SYMBOLS[symbol]
    bare = symbol.rstrip(":;0123456789")
    if bare in _DIPHTHONGS:
        return _DIPHTHONGS[bare][0]
    if bare in _SYMBOLS:
        return _SYMBOLS[bare]
    if symbol[0] in _SYMBOLS:
        return _SYMBOLS[symbol[0]]
    return "nn"  # unknown consonant-like symbol: a neutral, slightly open mouth


@attrs.frozen
class Segment:
    """A span of time with one viseme target (diphthongs give two segments)."""

    viseme: str
    start: float
    end: float
    jaw_gain: float = 1.0

    @property
    def centre(self) -> float:
        return 0.5 * (self.start + self.end)


def segments_from_phonemes(phonemes: Sequence[Phoneme]) -> list[Segment]:
    segments = []
    for ph in phonemes:
        if ph.end <= ph.start:
            continue
        vis = viseme_of(ph.symbol)
        gain = _STRESS_JAW[ph.stress] if vis in _VOWEL_VISEMES else 1.0
        bare = ph.symbol.rstrip(":;")
        pair = _DIPHTHONGS.get(ph.symbol) or _DIPHTHONGS.get(bare)
        if pair:
            mid = ph.start + 0.55 * (ph.end - ph.start)
            segments.append(Segment(pair[0], ph.start, mid, gain))
            segments.append(Segment(pair[1], mid, ph.end, gain * 0.9))
        else:
            segments.append(Segment(vis, ph.start, ph.end, gain))
    return segments


@attrs.frozen(eq=False)
class ArticulationTrack:
    """Per-frame articulator values (T x 5, columns `CHANNELS`) and the viseme shown."""

    values: np.ndarray
    viseme: np.ndarray  # T, int ids into VISEMES
    fps: float

    @property
    def n_frames(self) -> int:
        return int(self.values.shape[0])

    def channel(self, name: str) -> np.ndarray:
        return self.values[:, CHANNELS.index(name)]


def articulate(
    phonemes: Sequence[Phoneme],
    n_frames: int,
    fps: float,
    coarticulation: float = 1.0,
) -> ArticulationTrack:
    """Dominance-blended articulator targets sampled at frame centres (k + 0.5) / fps.

    Time outside every phoneme counts as silence. `coarticulation` widens (>1) or narrows
    (<1) every phoneme's influence.
    """
    times = (np.arange(n_frames) + 0.5) / fps
    # Each frame shows the articulators averaged over its 40 ms (4 instants), as a camera
    # exposure would; a phoneme shorter than a frame then cannot make a one-frame spike.
    sub = ((np.arange(n_frames)[:, None] + (np.arange(_SUBSAMPLES)[None, :] + 0.5) / _SUBSAMPLES) / fps).ravel()
    segments = segments_from_phonemes(phonemes)
    # Silence before the first and after the last phoneme, so the mouth rests there.
    first = segments[0].start if segments else 0.0
    last = segments[-1].end if segments else 0.0
    horizon = max(times[-1] if n_frames else 0.0, last) + 1.0
    segments = [Segment("sil", min(-1.0, first - 1.0), first)] + segments + [Segment("sil", last, horizon)]

    ids = np.array([VISEME_ID[s.viseme] for s in segments])
    centres = np.array([s.centre for s in segments])
    durations = np.array([max(s.end - s.start, 1e-3) for s in segments])
    targets = TARGETS[ids].copy()
    targets[:, 0] *= np.array([s.jaw_gain for s in segments])
    dominance = DOMINANCE[ids]

    # Influence decays with distance from the segment's centre, measured in units of its
    # half-length plus a fixed reach (short phonemes still reach their neighbours).
    reach = (0.5 * durations + 0.035) * coarticulation
    dist = np.abs(sub[:, None] - centres[None, :])  # (T * sub) x S
    inside = (sub[:, None] >= np.array([s.start for s in segments])[None, :]) & (
        sub[:, None] < np.array([s.end for s in segments])[None, :]
    )
    boost = 1.0 + 1.5 * inside  # a segment's own span counts most
    weight = np.exp(-dist / reach[None, :]) * boost
    # Lip seals (p b m, f v) are quick gestures: their influence reaches less far.
    fast_weight = np.exp(-dist / (0.75 * reach[None, :])) * boost
    values = np.empty((len(sub), len(CHANNELS)))
    for c in range(len(CHANNELS)):
        w = (weight if c not in _FAST else fast_weight) * dominance[None, :, c]
        values[:, c] = (w * targets[None, :, c]).sum(1) / np.maximum(w.sum(1), 1e-12)
    values = values.reshape(n_frames, _SUBSAMPLES, len(CHANNELS)).mean(1)
    # The viseme on screen: the segment whose span holds the frame centre.
    starts = np.array([s.start for s in segments])
    which = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, len(segments) - 1)
    return ArticulationTrack(values=values, viseme=ids[which].astype(np.int16), fps=fps)
