"""AudioEncoder `mel`: log-mel spectrogram at 50 Hz (librosa), with optional pitch and energy.

Needs no download, so it is the default encoder. One feature frame per 20 ms (hop 320 at
16 kHz), two per video frame; the count is trimmed or padded to exactly
2 x round(duration x 25) so features line up with video frames.

Streaming: every feature frame is one centred STFT window (`n_fft` samples; YIN's 1024 for
pitch), zero-padded only at the ends of the audio, so a video frame needs the audio a
window's half-width around its two feature frames: one video frame each side at the
defaults, exact (`stream_context`). Exact bit for bit, too: the projection onto the mel bank
runs in blocks of a fixed number of frames (`PROJECTION_BLOCK`), because a matrix product's
kernel, and so its rounding, changes with the number of columns when they are few. With
`pitch`, voicing is decided against the loudest frame of the whole audio, so streamed pitch
is only approximate.
"""

from __future__ import annotations

import attrs
import numpy as np

from geneface import hookimpl
from geneface.core.arrays import fit_rows
from geneface.core.records import FEATURE_RATE, SAMPLE_RATE, VIDEO_FPS, Audio, AudioFeatures
from geneface.core.stages import AudioEncoder, StreamContext


@attrs.define
class MelConfig:
    n_mels: int = attrs.field(default=80, validator=attrs.validators.gt(0))
    n_fft: int = 1024
    win_length: int = 640  # 40 ms: each window spans two 20 ms hops
    fmin: float = 55.0
    fmax: float = 7600.0
    pitch: bool = False  # add log-f0 (YIN), 0 where unvoiced/silent
    energy: bool = False  # add log RMS energy
    floor: float = 1e-5  # log floor of mel power (avoids -inf in silence)

    def __attrs_post_init__(self):
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})")
        if not 0 <= self.fmin < self.fmax <= SAMPLE_RATE / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= {SAMPLE_RATE // 2}, got {self.fmin}, {self.fmax}")


HOP = int(SAMPLE_RATE / FEATURE_RATE)  # 320 samples = 20 ms
FRAME_SAMPLES = int(SAMPLE_RATE / VIDEO_FPS)  # 640 samples = one video frame
YIN_FRAME = 1024  # librosa.yin's frame length below
PROJECTION_BLOCK = 64  # STFT frames projected onto the mel bank per matrix product (module doc)
PIECE_FRAMES = 3000  # 60 s of feature frames: `log_mel` on longer audio goes piece by piece


def project(basis: np.ndarray, power: np.ndarray) -> np.ndarray:
    """basis (M x F) @ power (F x T), in products of exactly PROJECTION_BLOCK columns (the last
    zero-padded), so each column's result does not depend on T."""
    out = np.empty((basis.shape[0], power.shape[1]), np.result_type(basis, power))
    for start in range(0, power.shape[1], PROJECTION_BLOCK):
        block = power[:, start:start + PROJECTION_BLOCK]
        width = block.shape[1]
        if width < PROJECTION_BLOCK:
            block = np.concatenate([block, np.zeros((block.shape[0], PROJECTION_BLOCK - width), block.dtype)], 1)
        out[:, start:start + width] = (basis @ block)[:, :width]
    return out


def features_length(n_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Feature frames for audio of `n_samples`: two per (rounded) 25 fps video frame."""
    from geneface.core.records import frames_for_duration

    return 2 * frames_for_duration(n_samples / sample_rate)


class MelEncoder(AudioEncoder):
    name = "mel"
    description = "Log-mel spectrogram (80 bins, 50 Hz) with optional pitch and energy; no download needed"
    Config = MelConfig

    @property
    def width(self) -> int:
        return self.config.n_mels + int(self.config.pitch) + int(self.config.energy)

    def channels(self) -> tuple[str, ...]:
        names = [f"mel{i}" for i in range(self.config.n_mels)]
        if self.config.pitch:
            names.append("log_f0")
        if self.config.energy:
            names.append("log_energy")
        return tuple(names)

    def stream_context(self) -> StreamContext:
        # Video frame t reads feature frames 2t and 2t + 1, centred on samples 640 t and
        # 640 t + 320, each seeing `half` samples either side.
        half = max(self.config.n_fft, YIN_FRAME if self.config.pitch else 0) // 2
        back = -(-half // FRAME_SAMPLES)
        ahead = max(0, -(-(half + HOP - FRAME_SAMPLES) // FRAME_SAMPLES))
        if self.config.pitch:
            return StreamContext(back, ahead, exact=False,
                                 why="pitch: voicing is judged against the loudest frame of the whole audio")
        return StreamContext(back, ahead)

    def log_mel(self, y: np.ndarray) -> np.ndarray:
        """(frames x n_mels) log-mel power: librosa's melspectrogram (Hann window, centred frames,
        zero padding, power 2), with the projection in fixed blocks (`project`).

        Long audio goes in pieces of PIECE_FRAMES frames, each cut from the audio with the
        samples its edge frames' windows reach, so the result equals the whole bit for bit (the
        streaming argument above) while the spectrogram held at once stays bounded: over two
        hours at once it took about 2.5 GB."""
        n = 1 + len(y) // HOP  # librosa's count of centred frames
        if n <= PIECE_FRAMES:
            return self._log_mel(y)
        margin = -(-(self.config.n_fft // 2) // HOP)  # frames of context a piece needs each side
        pieces = []
        for a in range(0, n, PIECE_FRAMES):
            b = min(n, a + PIECE_FRAMES)
            lo = max(0, a - margin)  # the piece starts on a frame centre: its frames are the run's frames
            part = self._log_mel(y[lo * HOP: (b - 1 + margin) * HOP + 1])
            pieces.append(part[a - lo: b - lo])
        return np.concatenate(pieces)

    def _log_mel(self, y: np.ndarray) -> np.ndarray:
        import librosa

        c = self.config
        power = np.abs(librosa.stft(y, n_fft=c.n_fft, hop_length=HOP, win_length=c.win_length, center=True)) ** 2
        basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)
        return np.log(np.maximum(project(basis, power), c.floor)).T

    def encode(self, audio: Audio) -> AudioFeatures:
        import librosa

        y = audio.samples_at(SAMPLE_RATE)
        if len(y) == 0:
            raise ValueError("cannot encode zero-length audio")
        n = features_length(len(y))
        columns = [self.log_mel(y)]
        if self.config.pitch or self.config.energy:
            rms = librosa.feature.rms(y=y, frame_length=self.config.win_length, hop_length=HOP, center=True)[0]
        if self.config.pitch:
            # YIN needs a frame longer than two periods of the lowest pitch (60 Hz -> 534 samples).
            f0 = librosa.yin(y, fmin=60.0, fmax=500.0, sr=SAMPLE_RATE, frame_length=YIN_FRAME, hop_length=HOP,
                             center=True)
            m = min(len(f0), len(rms))
            voiced = rms[:m] > max(1e-4, 0.05 * float(np.max(rms)) if len(rms) else 0.0)
            columns.append(np.where(voiced, np.log(f0[:m]), 0.0)[:, None])
        if self.config.energy:
            columns.append(np.log(np.maximum(rms, 1e-5))[:, None])
        m = min(len(col) for col in columns)
        values = np.concatenate([col[:m] for col in columns], axis=1)
        return AudioFeatures(fit_rows(values, n), FEATURE_RATE, self.name, self.channels())


@hookimpl
def register_audio_encoders(register):
    register(MelEncoder)
