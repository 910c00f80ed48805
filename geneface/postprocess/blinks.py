"""Blinks: find them in the person's video, learn how often and how, put them into new motion.

Generated motion barely blinks (blinks do not follow the speech, so an audio-driven model
averages them away), and a face that never blinks looks dead. GeneFace copies blink
sequences from the training video (METHOD.md); here:

1. `eye_openness`: lid gap over eye width, both eyes averaged (points 36-47).
2. `find_blinks`: a blink is a dip below `threshold` x the local open level (a running median
   over about two seconds, so looking down or smiling for a while is not a blink) lasting at
   most `max_frames`; its window runs from an open frame before to an open frame after (the
   most open of the first three beyond the dip on each side; at most MAX_PAD + 3 frames).
3. `blink_profile`: the person's rate (blinks per minute of training video), the intervals
   between consecutive blinks (seconds, measured within contiguous runs), and a bank of
   their eye trajectories: offsets of points 36-47 from the open-eye shape, taken as the
   straight line between the window's first and last frames, so every offset is zero at
   both ends and adding it never makes the eyes jump.
4. `inject_blinks`: blinks scheduled at intervals drawn from the person's own (seeded), each
   a random blink from the bank added on top of the motion's eyes, scaled by how open the
   motion's eyes are against the person's open level (so lids close, never cross). The
   motion's own blinks, if any, are not removed: generated motion normally has none.

When the person's video shows no blink at all, `blink_profile` falls back to
`FALLBACK_RATE` blinks a minute and a synthetic blink (`synthetic_blink`: lids closing in
80 ms, shut 40 ms, reopening in 160 ms; the upper lid travelling 85 % of the gap, the lower
15 %), and says so in `synthetic`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import attrs
import numpy as np

from geneface.core.landmarks68 import EYE_LID_PAIRS
from geneface.core.landmarks68 import eye_openness as _per_eye_openness
from geneface.core.records import EYES, VIDEO_FPS

DEFAULT_THRESHOLD = 0.7  # a blink: openness below 70 % of the open level
DEFAULT_MAX_SECONDS = 0.5  # longer closures are eyes shut or looking down, not blinks
FALLBACK_RATE = 15.0  # blinks a minute: people blink 15-20 times a minute while talking
OPEN_WINDOW_SECONDS = 2.0  # the running median that defines "open" around each frame
RECOVERED = 0.9  # a frame at 90 % of the open level counts as open again
MAX_PAD = 5  # frames searched each side of a dip for the open frames that bound its window
EYE_POINTS = EYES.stop - EYES.start  # 12
# Synthetic blink timing (seconds), as the synthetic subject's (geneface.synth.motion).
_CLOSE, _HOLD, _OPEN = 0.08, 0.04, 0.16


@attrs.frozen
class Blink:
    """One blink in a sequence: window [start, end) (open frames at both ends when the
    sequence allows), `trough` the frame of least openness, `depth` its openness over the
    local open level (0 shut, 1 open)."""

    start: int
    end: int
    trough: int
    depth: float
    clean: bool  # both window ends are open: its trajectory may go into a bank


@attrs.frozen(eq=False)
class BlinkProfile:
    """How one person blinks."""

    rate: float  # blinks per minute of training video
    intervals: np.ndarray  # seconds between consecutive blinks (may be empty)
    bank: tuple = attrs.field(converter=tuple)  # each K x 12 x 3: offsets of points 36-47
    open_level: float  # median eye openness of the training frames
    depth: float  # median trough openness over the open level (nan when none was found)
    n_found: int  # blinks detected in the training frames
    seconds: float  # length of video they were found in
    synthetic: bool = False  # True: nothing found, FALLBACK_RATE and synthetic_blink in use


def eye_openness(landmarks: np.ndarray) -> np.ndarray:
    """T x 68 x 3 -> T: lid gap over eye width, the two eyes averaged."""
    return _per_eye_openness(np.asarray(landmarks)).mean(-1)


def open_level(openness: np.ndarray, fps: float = VIDEO_FPS) -> np.ndarray:
    """The open-eye level around each frame: a running median over OPEN_WINDOW_SECONDS
    (blinks fill a few per cent of frames, so the median ignores them)."""
    x = np.asarray(openness, np.float64)
    radius = max(1, int(round(OPEN_WINDOW_SECONDS * fps / 2)))
    if len(x) <= 2 * radius + 1:
        return np.full_like(x, np.median(x))
    padded = np.pad(x, radius, mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1)
    return np.median(windows, axis=1)


def find_blinks(openness: np.ndarray, threshold: float = DEFAULT_THRESHOLD, max_frames: int = 12,
                fps: float = VIDEO_FPS, level: Optional[np.ndarray] = None) -> list[Blink]:
    """The blinks in one contiguous openness sequence (T), in time order."""
    from geneface.core.arrays import true_runs

    x = np.asarray(openness, np.float64)
    if len(x) == 0:
        return []
    level = open_level(x, fps) if level is None else np.asarray(level, np.float64)
    ratio = x / np.maximum(level, 1e-12)
    runs = true_runs(ratio < threshold)
    # A one-frame flicker back above the threshold inside a blink is still one blink.
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] <= 1:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    found = []
    for a, b in merged:
        if b - a > max_frames:
            continue
        lo = a
        while lo > 0 and a - lo < MAX_PAD and ratio[lo - 1] < RECOVERED:
            lo -= 1
        hi = b
        while hi < len(x) and hi - b < MAX_PAD and ratio[hi] < RECOVERED:
            hi += 1
        lo, hi = max(lo - 1, 0), min(hi + 1, len(x))  # one open frame each side
        # The first frame back above RECOVERED may still be a little closed: end the window on
        # the most open of it and the next two outward, so the open-eye baseline is open.
        lo = max(0, lo - 2) + int(np.argmax(ratio[max(0, lo - 2):lo + 1]))
        hi = hi - 1 + int(np.argmax(ratio[hi - 1:hi + 2])) + 1
        clean = ratio[lo] >= RECOVERED and ratio[hi - 1] >= RECOVERED
        trough = a + int(np.argmin(ratio[a:b]))
        found.append(Blink(lo, hi, trough, float(ratio[trough]), bool(clean)))
    return found


def blink_offsets(landmarks: np.ndarray, blink: Blink) -> np.ndarray:
    """K x 12 x 3 offsets of points 36-47 over the blink's window from the open-eye shape (the
    line between the window's end frames): zero at both ends."""
    eyes = np.asarray(landmarks, np.float64)[blink.start:blink.end, EYES]
    s = np.linspace(0.0, 1.0, len(eyes))[:, None, None]
    return eyes - ((1 - s) * eyes[0] + s * eyes[-1])


def blink_closure(fps: float = VIDEO_FPS) -> np.ndarray:
    """Lid closure (0 open .. 1 shut) per frame of a synthetic blink, an open frame at each
    end; each frame averages five instants of its exposure so the short hold is not missed."""
    total = _CLOSE + _HOLD + _OPEN
    n = int(np.ceil(total * fps))
    t = (np.arange(n)[:, None] + (np.arange(5)[None, :] + 0.5) / 5) / fps
    c = np.zeros_like(t)
    closing = t < _CLOSE
    c[closing] = np.sin(0.5 * np.pi * t[closing] / _CLOSE) ** 2
    c[(t >= _CLOSE) & (t < _CLOSE + _HOLD)] = 1.0
    opening = (t >= _CLOSE + _HOLD) & (t < total)
    c[opening] = np.cos(0.5 * np.pi * (t[opening] - _CLOSE - _HOLD) / _OPEN) ** 2
    return np.r_[0.0, c.mean(1), 0.0]


def synthetic_blink(open_eyes: np.ndarray, fps: float = VIDEO_FPS) -> np.ndarray:
    """K x 12 x 3 offsets of a synthetic blink on an open-eye shape (12 x 3, points 36-47):
    each upper-lid point moves 85 % of the way to its lower partner, which moves 15 %."""
    eyes = np.asarray(open_eyes, np.float64).reshape(EYE_POINTS, 3)
    shut = np.zeros_like(eyes)
    for upper, lower in EYE_LID_PAIRS - EYES.start:
        gap = eyes[lower] - eyes[upper]
        shut[upper] = 0.85 * gap
        shut[lower] = -0.15 * gap
    return blink_closure(fps)[:, None, None] * shut[None]


def blink_profile(segments: Sequence[np.ndarray], fps: float = VIDEO_FPS, threshold: float = DEFAULT_THRESHOLD,
                  max_seconds: float = DEFAULT_MAX_SECONDS, fallback_rate: float = FALLBACK_RATE) -> BlinkProfile:
    """How a person blinks, from their landmark runs (each T_i x 68 x 3, contiguous frames)."""
    segments = [np.asarray(s, np.float64) for s in segments if len(s)]
    if not segments:
        raise ValueError("blink_profile needs at least one frame")
    max_frames = max(1, int(round(max_seconds * fps)))
    seconds = sum(len(s) for s in segments) / fps
    bank, intervals, depths, n_found = [], [], [], 0
    openings = []
    for seg in segments:
        openness = eye_openness(seg)
        level = open_level(openness, fps)
        openings.append(openness)
        blinks = find_blinks(openness, threshold, max_frames, fps, level)
        n_found += len(blinks)
        depths += [b.depth for b in blinks]
        intervals += list(np.diff([b.trough for b in blinks]) / fps)
        bank += [blink_offsets(seg, b) for b in blinks if b.clean]
    level = float(np.median(np.concatenate(openings)))
    if n_found == 0 or not bank:
        open_eyes = np.concatenate(segments)[:, EYES].mean(0)
        rate = 60.0 * n_found / seconds if n_found else fallback_rate
        return BlinkProfile(rate, np.asarray(intervals, np.float64), (synthetic_blink(open_eyes, fps),), level,
                            float(np.median(depths)) if depths else float("nan"), n_found, seconds, synthetic=True)
    return BlinkProfile(60.0 * n_found / seconds, np.asarray(intervals, np.float64), bank, level,
                        float(np.median(depths)), n_found, seconds)


def schedule_blinks(n_frames: int, profile: BlinkProfile, rng: np.random.Generator, fps: float = VIDEO_FPS,
                    length: int = 0) -> np.ndarray:
    """First frames of blinks over `n_frames`: the first at a random phase within one interval,
    the rest at intervals drawn from the person's own (with replacement); with fewer than one
    interval known, intervals of 60/rate x uniform(0.5, 1.5) seconds. Blinks `length` frames
    long never overlap or run past the end."""
    if profile.rate <= 0:
        return np.zeros(0, np.int64)

    def draw() -> float:
        if len(profile.intervals):
            seconds = float(rng.choice(profile.intervals))
        else:
            seconds = 60.0 / profile.rate * rng.uniform(0.5, 1.5)
        return max(seconds * fps, length + 1.0)

    onsets, t = [], rng.uniform(0.0, draw())
    while int(round(t)) + length <= n_frames:
        onsets.append(int(round(t)))
        t += draw()
    return np.asarray(onsets, np.int64)


def inject_blinks(landmarks: np.ndarray, profile: BlinkProfile, seed: int = 0,
                  fps: float = VIDEO_FPS, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(landmarks with blinks added, their first frames): see the module doc. A new array.

    `offset`: the run's frame the landmarks start at (a streamed window of a longer run). The
    blinks are then scheduled over the run's frames 0 .. offset + T from the seed, so they
    fall at the same frames whichever window asks, and those reaching this window are added
    (onsets are the run's frames). Only an approximation of the whole run: which blink of the
    bank each one is depends on how many were scheduled, and the eye level is this window's.
    """
    rng = np.random.default_rng(seed)
    out = np.array(landmarks, np.float64)
    longest = max(len(b) for b in profile.bank)
    onsets = schedule_blinks(offset + len(out), profile, rng, fps, longest)
    level = open_level(eye_openness(out), fps)
    for onset in onsets:
        offsets = profile.bank[int(rng.integers(len(profile.bank)))]  # drawn for every blink: same sequence
        local = int(onset) - offset
        a, b = max(local, 0), min(local + len(offsets), len(out))
        if a >= b:
            continue
        # Scale by how open the motion's eyes are (their running median, not one noisy frame)
        # against the person's open level: the same share of the gap closes, and lids never
        # cross on narrower eyes.
        scale = float(np.clip(level[a] / max(profile.open_level, 1e-12), 0.25, 1.5))
        out[a:b, EYES] += scale * offsets[a - local: b - local]
    return out, onsets
