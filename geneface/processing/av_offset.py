"""The audio-to-video offset of a clip, from its own data, and the rule that acts on it.

A talking-face clip whose audio track is late or early teaches a lip-sync model the wrong
pairing. Many real clips are off by a few frames (a mux without the stream's start time,
an edit); the corpus's Obama and KristiNoem clips lag by 100-165 ms.

The estimate (`estimate_offset`): the mouth's opening (inner-lip gap over mouth width, from
the tracked 68 keypoints) against the speech's loudness (log RMS per 40 ms frame, band
300-3000 Hz, where the voice's energy is), both made zero-mean and unit-variance over the
usable frames, correlated at each lag in -MAX_LAG..MAX_LAG video frames. The mouth opens a
little before the sound it makes, so even a perfectly muxed clip peaks at a small lag of its
own: NATURAL_LAG, measured on the real corpus (docs/av-offset.md), is subtracted. The offset
is the peak's lag minus NATURAL_LAG; positive means the audio is late.

It is `unknown` (and never guessed) when the clip cannot tell: fewer than MIN_SECONDS of
usable frames, a peak correlation under MIN_PEAK, a peak on the edge of the search, or a
peak that stands less than MIN_MARGIN above the best lag more than 2 frames from it.

The rule (`decide`), for `--av-offset`:
- `auto` (default): an `ok` estimate of 2 or more frames is corrected (the audio is shifted,
  features recomputed); an `unknown` one is left as recorded and flagged, so that training
  can skip the clip (`skip_training`); 0 or 1 frame is within the estimate's own spread and
  left alone.
- `0`: recorded as is, nothing corrected or flagged (the estimate is still reported).
- `FRAMES` (an integer): that shift is applied, whatever the estimate.
"""

from __future__ import annotations

from typing import Optional

import attrs
import numpy as np

from geneface.core.records import SAMPLE_RATE, VIDEO_FPS

MAX_LAG = 10  # frames searched either way (400 ms)
NATURAL_LAG = 0  # the peak's lag on well-muxed real clips (docs/av-offset.md), subtracted
MIN_SECONDS = 3.0  # usable frames needed before a clip can tell its offset
MIN_PEAK = 0.2  # correlation the peak must reach
MIN_MARGIN = 0.04  # and its lead over the best lag more than 2 frames away
CORRECT_FROM = 2  # `auto` corrects |offset| of this many frames or more
HOP = int(round(SAMPLE_RATE / VIDEO_FPS))  # 640 samples: one video frame


@attrs.frozen
class OffsetEstimate:
    frames: Optional[int]  # audio late by this many frames (negative: early); None when unknown
    status: str  # "ok" or "unknown"
    reason: str  # why unknown; "" when ok
    peak: float  # correlation at the peak lag
    margin: float  # peak minus the best correlation more than 2 frames from it
    curve: tuple[float, ...]  # correlation at lags -MAX_LAG..MAX_LAG

    def to_json(self) -> dict:
        return {"estimated_frames": self.frames, "status": self.status, "reason": self.reason,
                "peak": round(self.peak, 4), "margin": round(self.margin, 4),
                "curve": [round(c, 4) for c in self.curve]}


def parse_mode(text: str) -> str:
    """`auto`, or an integer number of frames as text ('0', '-3'); ValueError otherwise."""
    text = str(text).strip()
    if text == "auto":
        return text
    try:
        return str(int(text))
    except ValueError:
        raise ValueError(f"--av-offset takes auto, 0 or a whole number of frames, not {text!r}") from None


def loudness(samples: np.ndarray, n_frames: int) -> np.ndarray:
    """Log RMS of the 300-3000 Hz band per video frame (n_frames values)."""
    from scipy.signal import butter, sosfiltfilt

    y = np.asarray(samples, np.float64)
    if len(y) > 30:
        sos = butter(4, [300, 3000], btype="band", fs=SAMPLE_RATE, output="sos")
        y = sosfiltfilt(sos, y)
    y = np.pad(y, (0, max(0, n_frames * HOP - len(y))))[: n_frames * HOP]
    rms = np.sqrt((y.reshape(n_frames, HOP) ** 2).mean(axis=1))
    return np.log(rms + 1e-4)


def _standard(x: np.ndarray, usable: np.ndarray) -> np.ndarray:
    z = np.zeros_like(x, dtype=np.float64)
    v = x[usable]
    z[usable] = (v - v.mean()) / max(v.std(), 1e-9)
    return z


def correlation_curve(mouth: np.ndarray, sound: np.ndarray, usable: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """Pearson correlation of mouth[t] with sound[t + lag] for lag in -max_lag..max_lag,
    over frames usable at both ends."""
    m, s = _standard(mouth, usable), _standard(sound, usable)
    n = len(m)
    out = []
    for lag in range(-max_lag, max_lag + 1):
        a = slice(max(0, -lag), min(n, n - lag))
        b = slice(max(0, lag), min(n, n + lag))
        both = usable[a] & usable[b]
        if both.sum() < 10:
            out.append(0.0)
            continue
        x, y = m[a][both], s[b][both]
        x, y = x - x.mean(), y - y.mean()
        out.append(float((x * y).sum() / max(np.sqrt((x * x).sum() * (y * y).sum()), 1e-12)))
    return np.asarray(out)


def estimate_offset(mouth: np.ndarray, samples: np.ndarray, usable: Optional[np.ndarray] = None,
                    natural_lag: int = NATURAL_LAG) -> OffsetEstimate:
    """The clip's offset from its mouth opening (n_frames) and its 16 kHz audio."""
    mouth = np.asarray(mouth, np.float64)
    n = len(mouth)
    usable = np.ones(n, bool) if usable is None else np.asarray(usable, bool) & np.isfinite(mouth)
    sound = loudness(samples, n)
    if usable.sum() < MIN_SECONDS * VIDEO_FPS:
        return OffsetEstimate(None, "unknown", f"only {usable.sum() / VIDEO_FPS:.1f} s of tracked frames "
                              f"(needs {MIN_SECONDS:g} s)", 0.0, 0.0, ())
    curve = correlation_curve(mouth, sound, usable)
    best = int(np.argmax(curve))
    lag = best - MAX_LAG
    far = np.abs(np.arange(len(curve)) - best) > 2
    margin = float(curve[best] - curve[far].max())
    peak = float(curve[best])
    reason = ""
    if peak < MIN_PEAK:
        reason = f"mouth and loudness barely correlate (peak {peak:.2f} < {MIN_PEAK})"
    elif abs(lag) == MAX_LAG:
        reason = f"the best lag is at the edge of the search (+-{MAX_LAG} frames)"
    elif margin < MIN_MARGIN:
        reason = f"no clear peak (it leads other lags by {margin:.3f} < {MIN_MARGIN})"
    if reason:
        return OffsetEstimate(None, "unknown", reason, peak, margin, tuple(curve))
    return OffsetEstimate(lag - natural_lag, "ok", "", peak, margin, tuple(curve))


@attrs.frozen
class OffsetDecision:
    mode: str
    applied_frames: int  # the audio was moved earlier by this many frames (negative: later)
    skip_training: bool


def decide(mode: str, estimate: OffsetEstimate) -> OffsetDecision:
    """The documented rule (module docstring) for one clip."""
    mode = parse_mode(mode)
    if mode != "auto":
        return OffsetDecision(mode, int(mode), False)
    if estimate.status != "ok":
        return OffsetDecision(mode, 0, True)
    frames = int(estimate.frames)
    return OffsetDecision(mode, frames if abs(frames) >= CORRECT_FROM else 0, False)


def shift_audio(samples: np.ndarray, frames: int) -> np.ndarray:
    """The audio moved `frames` video frames earlier (negative: later), same length, zero-filled."""
    y = np.asarray(samples)
    k = int(frames) * HOP
    if k == 0:
        return y.copy()
    out = np.zeros_like(y)
    if k > 0:
        out[: max(0, len(y) - k)] = y[k:]
    else:
        out[-k:] = y[: len(y) + k]
    return out


def section(estimate: OffsetEstimate, decision: OffsetDecision) -> dict:
    """The manifest's `av_offset` section."""
    return {"mode": decision.mode, **estimate.to_json(), "applied_frames": decision.applied_frames,
            "skip_training": decision.skip_training, "natural_lag": NATURAL_LAG}
