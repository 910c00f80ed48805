"""`geneface run`: build the stages a spec names and run them, checking every seam.

The runner owns no model logic: the registry it is handed builds each stage (config from the
spec, or the checkpoint `validate_spec` already read plus the spec's overrides); the runner
feeds each stage's output to the next after asking the next stage whether it can take it
(`Stage.check_input`) through the one method every stage has (`Stage.apply`), and writes the
final record: an mp4 with the driving audio muxed (frames are streamed, so memory does not
grow with the length of the audio) or an .npz of motion or features. What a kind consumes and
produces comes from the kinds table (geneface.core.kinds).

The head path (a `Camera`: intrinsics and one camera-to-world per frame) is resolved once,
here, by `resolve_head_path`, and handed to the renderer exactly, intrinsics included.
Precedence, first that applies:

1. `input.poses` (the spec's, or `--poses`): a pose file or a dataset's poses;
2. with `output.paste_back`: the source video's own poses, frame for frame with the frames
   the crops are pasted onto;
3. the post-processor's `head_path` (e.g. `person_postprocess`'s looped training poses);
4. the renderer's `default_head_path` (a dataset-trained renderer: its training poses);
5. none: only a renderer that does not `needs_camera` runs without one, else one line.

A path of another length is fitted to the motion (cut, or looped back and forth).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import attrs
import numpy as np

from geneface.core.atomic import atomic_output
from geneface.core.camera_io import camera_for_length
from geneface.core.kinds import STAGE_KINDS
from geneface.core.media import VideoWriter, read_audio
from geneface.core.motion_io import load_motion, save_motion
from geneface.core.records import Audio, AudioFeatures, Camera, Motion
from geneface.core.spec import PipelineSpec, ResolvedSpec, validate_spec
from geneface.core.stages import PostProcessor, Renderer, RunContext, Stage
from geneface.errors import GenefaceError, SpecError, StageMismatchError, UsageError


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


@attrs.frozen
class RunResult:
    output: Path
    kind: str  # "video", "motion" or "audio features"
    n_frames: int
    duration: float
    fps: Optional[float] = None  # frames per second of rendering and writing (video only)
    record: Optional[Path] = None  # the run's sidecar JSON (video only): `<output stem>.run.json`


def run_record_path(video: Path) -> Path:
    """Where `geneface run` leaves the facts of the run that made `video` (`geneface eval` reads them)."""
    video = Path(video)
    return video.with_name(video.stem + ".run.json")


class Pipeline:
    def __init__(self, resolved: ResolvedSpec, registry, overwrite: bool = False):
        self.spec = spec = resolved.spec
        self.poses = resolved.poses  # input.poses, read once by validate_spec
        self.overwrite = overwrite  # False: a file that appears at the output meanwhile is not replaced
        self.stages: list[Stage] = [registry.build(s, spec.base, resolved.checkpoints.get(s.kind))
                                    for s in spec.stages]

    def check_seam(self, record, producer: str, stage: Stage) -> None:
        """A mismatch between `record` (made by `producer`) and what `stage` takes: one line naming both."""
        problem = stage.check_input(record)
        if problem:
            raise StageMismatchError(f"{producer} -> {stage.kind} '{stage.name}': {problem}")

    def apply_stage(self, stage: Stage, record, context: RunContext, producer: str):
        """`stage` on `record` (made by `producer`): the seam checked first, and an optional stage
        that changes the length caught (a streamed run applies its stages through this too)."""
        self.check_seam(record, producer, stage)
        result = stage.apply(record, context)
        if STAGE_KINDS[stage.kind].optional and isinstance(result, Motion) and result.n_frames != record.n_frames:
            raise StageMismatchError(f"{stage.kind} '{stage.name}' changed the length from {record.n_frames} to "
                                     f"{result.n_frames} frames")
        return result

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
        post_path = None  # a post-processor's head path
        paste_back = self._check_paste_back()  # before any stage runs

        for stage in self.stages:
            label = f"{stage.kind} '{stage.name}'"
            kind = STAGE_KINDS[stage.kind]
            if kind.produces == "video":
                self.check_seam(record, producer, stage)
                paste = source_path = None
                if paste_back is not None:  # the source frames' own head poses, frame for frame
                    paste = attrs.evolve(paste_back, n_frames=record.n_frames)  # the motion's length, known now
                    source_path = camera_for_length(paste.dataset.camera(), record.n_frames)
                head_path = resolve_head_path(stage, record.n_frames, self.poses, self.spec.input.poses,
                                              source_path, post_path)
                return self._render(stage, record, RunContext(audio, head_path), output, progress, paste)
            result = self.apply_stage(stage, record, RunContext(audio, None), producer)
            if isinstance(stage, PostProcessor):
                post_path = stage.head_path(result.n_frames)
            record, producer = result, label

        if isinstance(record, Motion):
            save_motion(output, record, overwrite=self.overwrite)
            return RunResult(output, "motion", record.n_frames, record.duration)
        if isinstance(record, AudioFeatures):
            with atomic_output(output, overwrite=self.overwrite) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, values=record.values, frame_rate=np.float32(record.frame_rate))
            return RunResult(output, "audio features", record.n_frames, record.duration)
        raise GenefaceError(f"the pipeline ended with {type(record).__name__}, which cannot be written")

    def _check_paste_back(self):
        """Paste-back onto the dataset of `output.paste_back` (None when off), built once before
        any work: its source video, crop and masks checked, and the renderer seen to draw its
        crop. Its length is the motion's, set when that is known."""
        if not self.spec.paste_back:
            return None
        from geneface.core.paste_back import PasteBack

        paste = PasteBack.from_dataset(self._paste_dataset(), 1, clip=self.spec.paste_clip)
        if paste.clip is not None and self.spec.paste_clip is None:
            warn(f"output.paste_back: onto clip '{paste.clip}', the first of person {self._paste_dataset()} "
                 "(name another with output.clip)")
        side = paste.placement.size
        renderer = self.stages[-1]
        if tuple(renderer.frame_size()) != (side, side):
            height, width = renderer.frame_size()
            raise UsageError(f"output.paste_back: renderer '{renderer.name}' renders {width} x {height} px, not the "
                             f"{side} px crop of the dataset")
        return paste

    def _paste_dataset(self) -> Path:
        if self.spec.paste_dataset is not None:
            return self.spec.paste_dataset
        from geneface.core.checkpoint import read_meta

        renderer = self.spec.stage("renderer")
        data = read_meta(renderer.checkpoint).get("data") if renderer.checkpoint is not None else None
        if not data:
            raise SpecError("output.paste_back: set output.dataset (the renderer's checkpoint does not name the "
                            "dataset it was trained on)")
        return Path(data)

    def _render(self, renderer, motion: Motion, context: RunContext, output: Path, progress, paste=None) -> RunResult:
        frames = renderer.apply(motion, context)
        if paste is not None:
            frames = paste.frames(frames)
        if progress is not None:
            frames = progress(frames, motion.n_frames, f"rendering ({renderer.name})")
        started = time.perf_counter()
        with VideoWriter(output, fps=motion.fps, audio=context.audio, overwrite=self.overwrite) as writer:
            for i, frame in enumerate(frames):
                if i >= motion.n_frames:
                    raise StageMismatchError(f"renderer '{renderer.name}' yielded more frames than the {motion.n_frames} of the motion")
                writer.write(frame)
            if writer.n_frames != motion.n_frames:  # inside the block: no file is left behind
                raise StageMismatchError(f"renderer '{renderer.name}' yielded {writer.n_frames} frames for {motion.n_frames} motion frames")
        seconds = time.perf_counter() - started
        fps = writer.n_frames / seconds if seconds > 0 else None
        record = run_record_path(output)
        facts = {"fps": fps, "frames": writer.n_frames, "seconds": seconds, "device": _device_of(renderer),
                 "renderer": renderer.name, "video": output.name, "paste_back": paste is not None,
                 **({"paste_back_clip": paste.clip} if paste is not None and paste.clip is not None else {}),
                 "stages": [f"{s.kind}:{s.name}" for s in self.stages], "spec": str(self.spec.source)}
        with atomic_output(record, overwrite=True) as tmp:
            tmp.write_text(json.dumps(facts, indent=2) + "\n")
        return RunResult(output, "video", writer.n_frames, writer.n_frames / motion.fps, fps, record)


def _device_of(stage) -> str:
    """Where a stage's torch module runs ("cpu" for a stage without one)."""
    net = getattr(stage, "net", None)
    for tensor in (getattr(net, "parameters", lambda: iter(()))()):
        return str(tensor.device)
    return "cpu"


def resolve_head_path(renderer: Renderer, n_frames: int, poses: Optional[Camera] = None,
                      poses_path: Optional[Path] = None, source: Optional[Camera] = None,
                      post: Optional[Camera] = None, warn_length: bool = True) -> Optional[Camera]:
    """The one head path the renderer gets, `n_frames` long, by the precedence in this
    module's docstring: `poses` (input.poses, read from `poses_path`), `source` (paste-back's
    source frames), `post` (the post-processor's), the renderer's own; None only when the
    renderer needs none. Intrinsics travel with it untouched: the renderer honours them or
    refuses them in one line. `warn_length`: warn when input.poses is fitted to another length
    (a stream, which asks for growing lengths, says it once itself)."""
    if poses is not None:
        if poses.n_frames != n_frames and warn_length:
            warn(f"input.poses: {poses_path} has {poses.n_frames} poses for {n_frames} motion frames; "
                 + ("using the first ones" if poses.n_frames > n_frames else "looping them back and forth"))
        return camera_for_length(poses, n_frames)
    for path in (source, post):
        if path is not None:
            return camera_for_length(path, n_frames)
    own = renderer.default_head_path(n_frames)
    if own is not None:
        return camera_for_length(own, n_frames)
    if renderer.needs_camera:
        raise UsageError(f"renderer '{renderer.name}' needs a camera path and has none: set input.poses "
                         "to a pose file (DATASET/camera/camera.npz) or a dataset folder")
    return None


def run_spec(spec: PipelineSpec, registry, audio: Optional[Path] = None, motion: Optional[Path] = None,
             output: Optional[Path] = None, progress=None, poses: Optional[Path] = None,
             overwrite: bool = False, paste_back: bool = False) -> RunResult:
    """Validate `spec` with any command-line overrides and check its output, then run it."""
    from geneface.core.outputs import prepare_spec_output

    inputs = attrs.evolve(spec.input, audio=audio or spec.input.audio, motion=motion or spec.input.motion,
                          poses=poses or spec.input.poses)
    spec = attrs.evolve(spec, input=inputs, output=output if output is not None else spec.output,
                        paste_back=spec.paste_back or paste_back)
    resolved = validate_spec(spec, registry)
    # Before any stage is built: an output that exists, is an input or cannot be written.
    target = prepare_spec_output(spec, overwrite=overwrite)
    return Pipeline(resolved, registry, overwrite).run(inputs.audio, inputs.motion, target, progress)
