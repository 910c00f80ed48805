"""The audio-to-video offset step of `geneface process`, and the same on a finished dataset.

`offset_stage` runs after the pose (it needs the tracked mouth) and the audio: it estimates
the clip's offset (geneface.processing.av_offset), applies the `--av-offset` rule and, when
the audio is to move, writes audio.wav and every encoder's features again from the source's
audio moved by that many frames (from the source, so a resumed run never moves it twice).

`reestimate_dataset` (`geneface dataset av-offset`) does the same for a dataset processed
before the offset step existed, or with another mode: the audio is moved back to as recorded
(the shift it already holds undone), estimated, and moved by the new rule, in place; the
manifest is rewritten last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from geneface.core import dataset as fmt
from geneface.core.landmarks68 import mouth_openness
from geneface.core.media import read_audio
from geneface.core.records import Audio
from geneface.processing import av_offset as av
from geneface.processing.audio import source_audio, write_audio


def _moved(audio: Audio, frames: int) -> Audio:
    return Audio(av.shift_audio(audio.samples, frames), audio.sample_rate)


def offset_stage(work, source, mode: str, lm68: np.ndarray, usable: np.ndarray, encoders: Sequence,
                 audio_info: dict) -> tuple[dict, dict]:
    """(av_offset section, audio section) for the manifest; rewrites the audio when moved."""
    done = work.done("av_offset")
    if done:
        return done["section"], done["audio"]
    n = len(lm68)
    raw, _ = source_audio(source, n)
    estimate = av.estimate_offset(mouth_openness(lm68), raw.samples, usable)
    decision = av.decide(mode, estimate)
    info = dict(audio_info)
    if decision.applied_frames:
        info = {**write_audio(work.path, _moved(raw, decision.applied_frames), encoders, n),
                "padded_seconds": audio_info.get("padded_seconds", 0.0)}
    section = av.section(estimate, decision)
    work.mark("av_offset", {"section": section, "audio": info})
    return section, info


def _encoders_of(manifest: dict, registry) -> list:
    """The dataset's audio encoders with the configs its features were made with."""
    out = []
    for name, entry in manifest["audio"]["features"].items():
        cls = registry.get("audio_encoder", name, where=f"the dataset's features '{name}'").cls
        config = entry.get("config") or {}
        out.append(cls(cls.Config(**config)) if config and getattr(cls, "Config", None) else cls())
    return out


def reestimate_dataset(path: Path, mode: str = "auto", *, registry) -> dict:
    """Estimate (again) and apply `mode` to the finished dataset at `path`; its new manifest.
    `registry`: where the dataset's audio encoders come from (handed down by the caller)."""
    from geneface.core.lock import output_lock
    from geneface.errors import UsageError

    path = Path(path)
    mode = av.parse_mode(mode)
    manifest = fmt.read_manifest(path)
    if not manifest.get("audio"):
        raise UsageError(f"{path}: has no audio, so no audio-to-video offset")
    fmt.require_files(path, manifest)  # a damaged dataset is refused, not flagged in place
    with output_lock(path, "`geneface dataset av-offset` run"):
        lm68 = np.load(path / fmt.IMAGE68)
        with np.load(path / fmt.TRACKING) as tracking:
            usable = (tracking["flags"] & fmt.FLAG_FAILED) == 0
        had = int((manifest.get("av_offset") or {}).get("applied_frames", 0))
        recorded = _moved(read_audio(path / fmt.AUDIO), -had)  # as the source had it (edges aside)
        estimate = av.estimate_offset(mouth_openness(lm68), recorded.samples, usable)
        decision = av.decide(mode, estimate)
        audio = dict(manifest["audio"])
        if decision.applied_frames != had:
            moved = write_audio(path, _moved(recorded, decision.applied_frames), _encoders_of(manifest, registry), len(lm68))
            audio.update(moved)
        settings = {**manifest.get("settings", {}), "av_offset": mode}
        sections = {k: v for k, v in manifest.items() if k not in _OWN_FIELDS}
        sections.update(audio=audio, settings=settings, av_offset=av.section(estimate, decision))
        return fmt.write_manifest(path, n_frames=manifest["n_frames"],
                                  jpeg_quality=manifest["frames"].get("jpeg_quality", 95), **sections)


# write_manifest fills these itself
_OWN_FIELDS = ("format", "version", "complete", "created", "n_frames", "fps", "frames", "masks", "versions")


def offset_summary(manifest: dict) -> Optional[str]:
    """One line for `dataset info`: the estimate and what was done with it."""
    section = manifest.get("av_offset")
    if not section:
        return None
    if section["status"] == "ok":
        ms = 1000 * section["estimated_frames"] / fmt.VIDEO_FPS
        head = f"{section['estimated_frames']:+d} frames ({ms:+.0f} ms, audio {'late' if ms > 0 else 'early'})" \
            if section["estimated_frames"] else "0 frames (in sync)"
        head += f", peak correlation {section['peak']:.2f}"
    else:
        head = f"unknown: {section['reason']}"
    applied = section["applied_frames"]
    what = f"audio moved {abs(applied)} frames {'earlier' if applied > 0 else 'later'}" if applied else "not moved"
    if section["skip_training"]:
        what += "; flagged: training skips this clip"
    return f"{head}; mode {section['mode']}: {what}"
