"""The audio of a dataset: 16 kHz mono wav exactly as long as the frames, and each
AudioEncoder's features at 50 Hz, two rows per frame."""

from __future__ import annotations

import time
from typing import Optional, Sequence

import attrs
import numpy as np

from geneface.core import dataset as fmt
from geneface.core.arrays import fit_rows, save_npy
from geneface.core.config import unstructure
from geneface.core.media import read_audio, write_wav
from geneface.core.records import FEATURE_RATE, SAMPLE_RATE, VIDEO_FPS, Audio
from geneface.errors import GenefaceError
from geneface.processing.source import SourceInfo
from geneface.processing.work import WorkFolder


def source_audio(source: SourceInfo, n_frames: int) -> tuple[Audio, float]:
    """The source's audio at 16 kHz, exactly as long as the frames; (audio, seconds of silence added)."""
    audio = read_audio(source.info.path)
    target = int(round(n_frames / VIDEO_FPS * SAMPLE_RATE))
    padded = max(0, target - len(audio.samples)) / SAMPLE_RATE
    # An audio track that ends early gets silence to the last frame.
    return Audio(fit_rows(audio.samples, target, pad="zeros"), SAMPLE_RATE), padded


def write_audio(folder, audio: Audio, encoders: Sequence, n_frames: int) -> dict:
    """audio.wav and each encoder's features (2 rows per frame) into `folder`; the manifest's
    `audio` section (without padded_seconds)."""
    write_wav(folder / fmt.AUDIO, audio)
    features = {}
    for encoder in encoders:
        name = encoder.name
        encoded = encoder.encode(audio)
        if abs(encoded.frame_rate - FEATURE_RATE) > 1e-6:
            raise GenefaceError(
                f"audio encoder '{name}' gives features at {encoded.frame_rate:g} Hz; datasets store "
                f"{FEATURE_RATE:g} Hz (two per video frame), as the AudioEncoder contract asks"
            )
        values = fit_rows(np.asarray(encoded.values, np.float32), 2 * n_frames)
        rel = f"{fmt.FEATURES_DIR}/{name}.npy"
        save_npy(folder / rel, values)
        features[name] = {
            "file": rel,
            "width": int(values.shape[1]),
            "rate": float(encoded.frame_rate),
            "channels": list(encoded.channels),
            "config": unstructure(encoder.config) if attrs.has(type(encoder.config)) else {},
        }
    return {
        "file": fmt.AUDIO,
        "sample_rate": SAMPLE_RATE,
        "duration": round(len(audio.samples) / SAMPLE_RATE, 4),
        "features": features,
    }


def audio_stage(work: WorkFolder, source: SourceInfo, encoders: Sequence, n_frames: int) -> tuple[Optional[dict], float]:
    """Runs on a thread beside tracking (it needs only the frame count): (info, seconds).

    `encoders` are AudioEncoder instances; none means a dataset without audio (--no-audio).
    """
    started = time.perf_counter()
    if not encoders:
        return None, 0.0
    done = work.done("audio")
    if done:
        return done, 0.0
    audio, padded = source_audio(source, n_frames)
    info = write_audio(work.path, audio, encoders, n_frames)
    info["padded_seconds"] = round(padded, 3)
    work.mark("audio", info)
    return info, time.perf_counter() - started
