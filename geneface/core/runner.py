"""Build the stages a spec names and run them, checking every seam.

The pipeline owns no model logic: it instantiates plugins from the registry (config from the
spec, or from a checkpoint plus the spec's overrides), feeds each stage's output to the next
after asking the next stage whether it can take it (`Stage.check_input`), and writes the
final record: an mp4 with the driving audio muxed (frames are streamed, so memory does not
grow with the length of the audio) or an .npz of motion or features.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional

import attrs
import numpy as np

from geneface.core.checkpoint import read_checkpoint
from geneface.core.config import structure
from geneface.core.media import VideoWriter, read_audio
from geneface.core.motion_io import load_motion, save_motion
from geneface.core.records import Audio, AudioFeatures, Motion
from geneface.core.spec import PipelineSpec, validate_spec
from geneface.core.stages import Stage
from geneface.errors import GenefaceError, StageMismatchError, UsageError


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def check_audio(audio: Audio, path: Path) -> Audio:
    """Zero-length audio is an error; silence-only audio is worth a warning."""
    if len(audio.samples) == 0:
        raise UsageError(f"{path}: audio has zero length")
    peak = float(np.max(np.abs(audio.samples)))
    if peak < 1e-3:
        warn(f"{path}: audio is silent (peak {peak:.1e}); the face will barely move")
    return audio


def build_stage(stage_spec, registry) -> Stage:
    """Instantiate one stage: plugin from the registry, config from the spec or checkpoint."""
    where = f"stages.{stage_spec.kind}"
    entry = registry.get(stage_spec.kind, stage_spec.plugin, where=f"{where}.plugin")
    cls = entry.cls
    if stage_spec.checkpoint is None:
        return cls(structure(cls.Config, stage_spec.config, f"{where}.config"))
    ckpt = read_checkpoint(stage_spec.checkpoint, expect_kind=stage_spec.kind, expect_plugin=stage_spec.plugin)
    config = structure(cls.Config, {**ckpt.config, **stage_spec.config}, f"{where}.config")
    stage = cls(config)
    try:
        stage.load_checkpoint(ckpt)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise GenefaceError(f"{stage_spec.checkpoint}: does not fit plugin '{stage_spec.plugin}' ({exc})") from None
    return stage


@attrs.frozen
class RunResult:
    output: Path
    kind: str  # "video", "motion" or "audio features"
    n_frames: int
    duration: float


class Pipeline:
    def __init__(self, spec: PipelineSpec, registry):
        self.spec = spec
        self.stages: list[Stage] = [build_stage(s, registry) for s in spec.stages]

    def _seam(self, record, producer: str, stage: Stage) -> None:
        problem = stage.check_input(record)
        if problem:
            raise StageMismatchError(f"{producer} -> {stage.kind} '{stage.name}': {problem}")

    def run(
        self,
        audio_path: Optional[Path] = None,
        motion_path: Optional[Path] = None,
        output: Optional[Path] = None,
        progress: Optional[Callable] = None,
    ) -> RunResult:
        """Run the stages; `progress(iterable, total, description)` wraps the frame loop."""
        audio = check_audio(read_audio(audio_path), audio_path) if audio_path is not None else None
        record = load_motion(motion_path) if motion_path is not None else audio
        producer = f"input '{motion_path or audio_path}'"
        output = Path(output) if output is not None else self.spec.default_output()

        for stage in self.stages:
            self._seam(record, producer, stage)
            label = f"{stage.kind} '{stage.name}'"
            if stage.kind == "audio_encoder":
                record = stage.encode(record)
            elif stage.kind == "motion_generator":
                record = stage.generate(record)
            elif stage.kind == "domain_adapter":
                adapted = stage.adapt(record)
                if adapted.n_frames != record.n_frames:
                    raise StageMismatchError(f"{label} changed the length from {record.n_frames} to {adapted.n_frames} frames")
                record = adapted
            elif stage.kind == "renderer":
                return self._render(stage, record, audio, output, progress)
            producer = label

        if isinstance(record, Motion):
            save_motion(output, record)
            return RunResult(output, "motion", record.n_frames, record.duration)
        if isinstance(record, AudioFeatures):
            from geneface.core.atomic import atomic_output

            with atomic_output(output) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, values=record.values, frame_rate=np.float32(record.frame_rate))
            return RunResult(output, "audio features", record.n_frames, record.duration)
        raise GenefaceError(f"the pipeline ended with {type(record).__name__}, which cannot be written")

    def _render(self, renderer, motion: Motion, audio: Optional[Audio], output: Path, progress) -> RunResult:
        frames = renderer.render(motion)
        if progress is not None:
            frames = progress(frames, motion.n_frames, f"rendering ({renderer.name})")
        with VideoWriter(output, fps=motion.fps, audio=audio) as writer:
            for i, frame in enumerate(frames):
                if i >= motion.n_frames:
                    raise StageMismatchError(f"renderer '{renderer.name}' yielded more frames than the {motion.n_frames} of the motion")
                writer.write(frame)
            if writer.n_frames != motion.n_frames:  # inside the block: no file is left behind
                raise StageMismatchError(f"renderer '{renderer.name}' yielded {writer.n_frames} frames for {motion.n_frames} motion frames")
        return RunResult(output, "video", writer.n_frames, writer.n_frames / motion.fps)


def run_spec(spec: PipelineSpec, registry, audio: Optional[Path] = None, motion: Optional[Path] = None,
             output: Optional[Path] = None, progress=None) -> RunResult:
    """Validate `spec` with any command-line overrides, then run it."""
    audio = audio if audio is not None else spec.input.audio
    motion = motion if motion is not None else spec.input.motion
    spec = attrs.evolve(spec, input=attrs.evolve(spec.input, audio=audio, motion=motion),
                        output=output if output is not None else spec.output)
    validate_spec(spec, registry)
    return Pipeline(spec, registry).run(audio, motion, spec.output, progress)
