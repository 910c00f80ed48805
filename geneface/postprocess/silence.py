"""Silence: close the mouth where the driving audio has no speech.

A motion generator maps breath noise and room tone to small, random mouth movements; a
person who is not speaking keeps their lips together. GeneFace closes the mouth on silent
frames (METHOD.md). Here:

1. `speech_flags`: speech or not per 25 fps frame, from silero-vad's bundled model (it ships
   inside the `silero-vad` wheel and is loaded from there: nothing is ever downloaded). A
   frame is speech when any part of it overlaps a detected speech segment.
2. `silence_weights`: 1 on silent stretches at least `min_frames` long, ramping up from 0 over
   `ramp` frames after speech stops and back down before it starts (inside the silence, so
   speech frames are never touched); no ramp where a silence reaches the start or end.
3. `closed_mouth`: the person's closed-mouth shape, the mean of points 48-67 over their
   training frames with the smallest mouth opening (the lowest `fraction`).
4. `close_mouth`: points 48-67 blended towards that shape by the weights. Only the mouth
   points move (the jaw line 0-16 stays as the motion has it).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from geneface.core.landmarks68 import mouth_openness
from geneface.core.records import MOUTH, SAMPLE_RATE, VIDEO_FPS, Audio

DEFAULT_MIN_SILENCE = 0.3  # seconds: shorter pauses are part of speech (stops, breaths between words)
DEFAULT_RAMP = 3  # frames (120 ms) into and out of a closed mouth: no pop
DEFAULT_THRESHOLD = 0.5  # silero-vad's speech probability threshold (its own default)
DEFAULT_CLOSED_FRACTION = 0.1  # the person's least-open 10 % of frames make the closed mouth

_VAD = None  # the silero-vad model, loaded once per process


def _vad_model():
    global _VAD
    if _VAD is None:
        import torch

        threads = torch.get_num_threads()
        try:
            from silero_vad import load_silero_vad
        except ImportError as exc:
            from geneface.errors import UsageError

            raise UsageError(f"the silence step needs the silero-vad package ({exc}); install it, or set "
                             "stages.post_processor.config.silence.enabled: false") from None
        finally:
            torch.set_num_threads(threads)  # importing silero_vad sets torch to one thread, process-wide
        _VAD = load_silero_vad()  # the TorchScript model inside the wheel
    return _VAD


def speech_segments(audio: Audio, threshold: float = DEFAULT_THRESHOLD) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch of speech in `audio`, by silero-vad."""
    import torch

    model = _vad_model()  # first: it imports silero_vad without leaving torch on one thread
    from silero_vad import get_speech_timestamps

    samples = audio.samples_at(SAMPLE_RATE)
    if len(samples) == 0:
        return []
    with torch.no_grad():
        stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(samples, np.float32)), model,
                                       threshold=threshold, sampling_rate=SAMPLE_RATE)
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def flags_from_segments(segments, n_frames: int, fps: float = VIDEO_FPS) -> np.ndarray:
    """Per-frame speech flags (n_frames, bool): frame t spans [t/fps, (t+1)/fps) seconds and is
    speech when it overlaps any segment. Frames past the audio are silence."""
    flags = np.zeros(n_frames, bool)
    for start, end in segments:
        a = max(0, int(math.floor(start * fps)))
        b = min(n_frames, int(math.ceil(end * fps)))
        flags[a:b] = True
    return flags


def speech_flags(audio: Audio, n_frames: Optional[int] = None, fps: float = VIDEO_FPS,
                 threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Speech (True) or silence per video frame of `audio` (n_frames: the audio's own count)."""
    n = audio.n_video_frames if n_frames is None else int(n_frames)
    return flags_from_segments(speech_segments(audio, threshold), n, fps)


def silence_weights(flags: np.ndarray, min_frames: int, ramp: int = DEFAULT_RAMP) -> np.ndarray:
    """How closed the mouth should be per frame (0 as generated .. 1 the closed shape)."""
    from geneface.core.arrays import true_runs

    flags = np.asarray(flags, bool)
    n = len(flags)
    weights = np.zeros(n)
    for a, b in true_runs(~flags):
        if b - a < max(1, min_frames):
            continue
        k = np.arange(a, b)
        # Frames from the nearest edge that borders speech (1 = next to it); an edge at the
        # start or end of the audio borders nothing.
        to_start = k - a + 1 if a > 0 else np.full(len(k), np.inf)
        to_end = b - k if b < n else np.full(len(k), np.inf)
        u = np.clip(np.minimum(to_start, to_end) / (ramp + 1), 0.0, 1.0)
        weights[a:b] = u * u * (3 - 2 * u)  # smoothstep: no kink where the ramp meets the hold
    return weights


def closed_mouth(landmarks: np.ndarray, fraction: float = DEFAULT_CLOSED_FRACTION) -> np.ndarray:
    """20 x 3: mean of points 48-67 over the frames (N x 68 x 3) with the smallest mouth
    opening, the lowest `fraction` of them (at least one frame)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    lm = np.asarray(landmarks, np.float64)
    opening = mouth_openness(lm)
    k = max(1, int(round(fraction * len(lm))))
    closest = np.argsort(opening, kind="stable")[:k]
    return lm[closest][:, MOUTH].mean(0)


def close_mouth(landmarks: np.ndarray, weights: np.ndarray, closed: np.ndarray) -> np.ndarray:
    """T x 68 x 3 with points 48-67 blended towards `closed` (20 x 3) by `weights` (T); new array."""
    out = np.array(landmarks, np.float64)
    w = np.asarray(weights, np.float64)[:, None, None]
    out[:, MOUTH] = (1 - w) * out[:, MOUTH] + w * np.asarray(closed, np.float64)[None]
    return out
