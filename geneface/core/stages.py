"""The abstract stages of the pipeline. A plugin is a subclass plus an attrs config class.

    audio --AudioEncoder--> AudioFeatures --MotionGenerator--> Motion
          --DomainAdapter--> Motion --PostProcessor--> Motion (+ head poses)
          --Renderer--> frames (streamed) --mux audio--> mp4

FaceTracker sits beside the pipeline: it turns a raw video into tracked landmarks for
`geneface process`; SyncScorer judges lip sync (a training loss and an evaluation metric).
Every stage class carries:

- `name`: the registry name users write in a spec (`plugin: mel`);
- `description`: one line for `geneface plugins`;
- `Config`: an attrs class whose fields, with their defaults, are the spec's `config:` keys;
- `requires`: importable modules the plugin needs beyond geneface's own dependencies; a
  missing one marks the plugin unavailable (with the reason) instead of breaking anything;
- `kind`: set by the base class (`audio_encoder`, `motion_generator`, ...; the table of kinds
  is `geneface.core.kinds`);
- `training`: for a trainable plugin, "module:Class" of its `geneface.training.recipe.Recipe`,
  imported only when `geneface train` needs it (so listing plugins stays fast);
- `needs_checkpoint`: the plugin only works from a trained checkpoint (a fitted adapter), so a
  spec naming it without one is refused before any work.
- `compute_backend()`: for a component with a choice of device or kernels, which one it gets
  here and why (`geneface plugins` shows it).

The pipeline drives every stage through `apply(record, context)`, which calls the base
class's own method (`run_method`: `encode`, `generate`, `adapt`; a renderer's `render` also
gets the camera).

Streaming (`geneface stream`, geneface.app.stream) runs the stages on windows of the audio
as it arrives. Each stage says what context it needs through `stream_context()`: a
`StreamContext` of look-back and look-ahead in 25 fps video frames such that its output on
frame t, computed from a window holding frames t - back .. t + ahead of its input (or
reaching the true start or end), equals its offline output on t. A stage that can only
approximate that (it reads the whole utterance, or carries a state from the start) returns
a context with `exact=False` and the reason; the default, None, says the stage cannot
stream at all, and `stream_problem()` says why in one line. A stage claiming an exact
context must be proven by a test (tests/test_stream.py, or the plugin's own tests).
"""

from __future__ import annotations

import abc
import importlib.util
import itertools
from typing import ClassVar, Iterator, Optional

import attrs
import numpy as np

from geneface.core.records import FEATURE_RATE, VIDEO_FPS, Audio, AudioFeatures, Camera, Motion


@attrs.define
class NoConfig:
    """Config for a plugin without options."""


_frames = attrs.validators.and_(attrs.validators.instance_of(int), attrs.validators.ge(0))


@attrs.frozen
class StreamContext:
    """The context a stage needs to stream: its output on video frame t (25 fps) depends on its
    input frames t - `back` .. t + `ahead` only, or on the true start or end of the run when
    those are nearer. `exact`: given that context the output equals the offline output (bit for
    bit where the arithmetic does not depend on the window's length); False: the stage only
    approximates it within that window, and `why` says why in one line."""

    back: int = attrs.field(validator=_frames)
    ahead: int = attrs.field(validator=_frames)
    exact: bool = True
    why: str = ""

    def __attrs_post_init__(self):
        if not self.exact and not self.why:
            raise ValueError("an approximate StreamContext must say why (why=...)")

    def __add__(self, other: "StreamContext") -> "StreamContext":
        """Two steps in a row: their contexts add up, and the result is exact only if both are."""
        why = "; ".join(w for w in (self.why, other.why) if w)
        return StreamContext(self.back + other.back, self.ahead + other.ahead, self.exact and other.exact, why)


class Stage(abc.ABC):
    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig
    requires: ClassVar[tuple[str, ...]] = ()
    training: ClassVar[Optional[str]] = None  # "module:Recipe" (geneface.training.recipe)
    needs_checkpoint: ClassVar[bool] = False  # True: useless untrained (a spec must name a checkpoint)

    def __init__(self, config=None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        """Why this plugin cannot run here (a missing optional dependency), or None."""
        missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
        if missing:
            return "missing optional dependency: " + ", ".join(missing)
        return None

    # Trainable stages keep their weights in a checkpoint (geneface.core.checkpoint).
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"{self.kind} '{self.name}' takes no weights, got {len(state)} tensors")

    def load_checkpoint(self, ckpt) -> None:
        """Restore from a `geneface.core.checkpoint.Checkpoint`; override to read `ckpt.meta` too."""
        self.load_state_dict(ckpt.state)

    @classmethod
    def compute_backend(cls) -> Optional[str]:
        """What this component computes with on this machine and why (device, kernels,
        precision), a line or two for `geneface plugins`; None where there is no such choice."""
        return None

    @classmethod
    def trainable(cls) -> bool:
        return cls.training is not None

    def check_input(self, record) -> Optional[str]:
        """Why `record` cannot feed this stage (shape, width or rate), or None if it can.

        The pipeline calls this at every seam and reports the problem naming both stages.
        """
        return None

    # Streaming: see the module docstring. The default is honest for any stage: it cannot.
    def stream_context(self) -> Optional[StreamContext]:
        """The context this stage needs for streamed output to equal offline output, or None:
        it cannot stream (`stream_problem` says why)."""
        return None

    def stream_problem(self) -> str:
        """One line: why this stage cannot stream (meaningful when `stream_context` is None)."""
        return "it does not declare the context it needs to stream (Stage.stream_context)"

    # The method the pipeline calls with the record the previous stage produced.
    run_method: ClassVar[str] = ""

    def apply(self, record, context: "RunContext"):
        """Run this stage on the record the previous one produced (pipeline stages only)."""
        if not self.run_method:
            raise NotImplementedError(f"{self.kind} stages do not run in a pipeline")
        return getattr(self, self.run_method)(record)

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name} {self.config!r}>"


@attrs.frozen(eq=False)
class RunContext:
    """What a pipeline run knows besides the record flowing through it.

    `audio`: the driving speech (None when the run starts from landmarks alone); `head_path`:
    the renderer's head path, resolved once by the runner (`geneface.app.run.resolve_head_path`,
    which documents the precedence), fitted to the motion's length, intrinsics included; None
    for the stages before the renderer and for a renderer that needs none.

    Streaming runs the stages on windows of the run: `offset` is the video frame (25 fps) of
    the run at which the record (and `audio`) starts, 0 offline; a stage whose output depends
    on the absolute frame (a draw seeded per frame) reads it. `streamed`: the record is such a
    window, so it is not the whole run (a stage keeps its remarks about "the whole audio").
    """

    audio: Optional[Audio] = None
    head_path: Optional[Camera] = None
    offset: int = attrs.field(default=0, validator=_frames)
    streamed: bool = False


def _motion_problem(record) -> Optional[str]:
    """Why `record` is not motion a motion-consuming stage can take (None if it is)."""
    if not isinstance(record, Motion):
        return f"expects motion, got {type(record).__name__}"
    if abs(record.fps - VIDEO_FPS) > 1e-6:
        return f"expects motion at {VIDEO_FPS:g} fps, got {record.fps:g} fps"
    return None


class AudioEncoder(Stage):
    """Audio -> per-frame features at 50 Hz (two feature frames per 25 fps video frame)."""

    kind = "audio_encoder"
    run_method = "encode"

    @property
    @abc.abstractmethod
    def width(self) -> int:
        """Number of feature channels `encode` produces."""

    @abc.abstractmethod
    def encode(self, audio: Audio) -> AudioFeatures:
        ...


class ReadsFeatures:
    """A stage that reads audio features of one width (its weights were trained on them)."""

    @property
    def expected_width(self) -> Optional[int]:
        """Feature width the model was trained on (None: any)."""
        return None


class MotionGenerator(ReadsFeatures, Stage):
    """Audio features -> canonical 68 x 3 landmarks at 25 fps (generic, many speakers)."""

    kind = "motion_generator"
    run_method = "generate"

    @abc.abstractmethod
    def generate(self, features: AudioFeatures) -> Motion:
        ...

    def check_input(self, record) -> Optional[str]:
        if not isinstance(record, AudioFeatures):
            return f"expects audio features, got {type(record).__name__}"
        if abs(record.frame_rate - FEATURE_RATE) > 1e-6:
            return f"expects features at {FEATURE_RATE:g} Hz, got {record.frame_rate:g} Hz"
        width = self.expected_width
        if width is not None and record.width != width:
            return f"expects features {width} wide (as trained), got {record.width} from encoder '{record.encoder}'"
        return None


class DomainAdapter(Stage):
    """Generic motion -> the target person's style (same length, same rate)."""

    kind = "domain_adapter"
    run_method = "adapt"

    @abc.abstractmethod
    def adapt(self, motion: Motion) -> Motion:
        ...

    def check_input(self, record) -> Optional[str]:
        return _motion_problem(record)


class PostProcessor(Stage):
    """Motion -> motion ready to render (same length and rate), and optionally the head poses.

    What made published results stable sits here (METHOD.md, "Inference post-processing"):
    clamping to the person's range, smoothing, blinks, a closed mouth on silence, a head
    path. It sees the run's context (the driving audio, for silence) and may choose the
    head path (`head_path`): the runner gives the renderer the spec's `input.poses` when
    set, else paste-back's source poses, else this stage's path, else the renderer's own.
    """

    kind = "post_processor"

    @abc.abstractmethod
    def process(self, motion: Motion, context: "RunContext") -> Motion:
        ...

    def head_path(self, n_frames: int) -> Optional[Camera]:
        """The head poses (one per frame) this stage chooses for the renderer, or None."""
        return None

    def apply(self, record: Motion, context: "RunContext") -> Motion:
        return self.process(record, context)

    def check_input(self, record) -> Optional[str]:
        return _motion_problem(record)


class Renderer(Stage):
    """Motion (and a camera path) -> RGB frames, streamed so memory stays flat.

    A renderer that places a head in 3-D sets `needs_camera`; the pipeline then gives it a head
    path (a `Camera`: intrinsics and one camera-to-world per motion frame) resolved once by the
    runner: `input.poses`, paste-back's source poses, a post-processor's `head_path`, or else
    its own `default_head_path` (a renderer trained on a dataset returns that dataset's poses,
    looped back and forth); it fails with one line when there is none. The renderer honours
    the camera it is handed, intrinsics included, or refuses it in one line: never drops a part.
    """

    kind = "renderer"
    needs_camera: ClassVar[bool] = False

    @abc.abstractmethod
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of the frames `render` yields."""

    @abc.abstractmethod
    def render(self, motion: Motion, camera: Optional[Camera] = None) -> Iterator[np.ndarray]:
        """Yield one uint8 H x W x 3 frame per motion frame (`camera`: one pose per frame)."""

    def default_head_path(self, n_frames: int) -> Optional[Camera]:
        """The head path to use when the run gives none (None: no default)."""
        return None

    def render_part(self, motion: Motion, camera: Optional[Camera], start: int, stop: int) -> Iterator[np.ndarray]:
        """Frames `start` .. `stop` - 1 of `render(motion, camera)`: a stream hands the renderer the
        frames to draw plus the context its `stream_context` asks for. This default draws the
        frames before `start` too and drops them; a renderer with look-back overrides it to draw
        only the frames asked for."""
        return itertools.islice(self.render(motion, camera), start, stop)

    def apply(self, record: Motion, context: RunContext) -> Iterator[np.ndarray]:
        return self.render(record, context.head_path)  # the one stage that takes the head path too

    def check_input(self, record) -> Optional[str]:
        return _motion_problem(record)


@attrs.frozen(eq=False)
class TrackedFrame:
    """One frame's tracking result in image pixels (x, y) and relative depth (z)."""

    points: Optional[np.ndarray]  # N x 3 (the tracker's own layout), None if no face
    confidence: float
    n_faces: int


class FaceTracker(Stage):
    """Video frames -> per-frame dense face points, used by `geneface process`."""

    kind = "face_tracker"

    @abc.abstractmethod
    def track(self, frames: Iterator[np.ndarray]) -> Iterator[TrackedFrame]:
        ...

    @abc.abstractmethod
    def to68(self, points: np.ndarray) -> np.ndarray:
        """Map the tracker's own points (N x 3) to the standard 68 keypoints (68 x 3)."""


@attrs.frozen(eq=False)
class SyncResult:
    """How well a motion's mouth matches its audio, as judged by a SyncScorer.

    `offset` is the audio delay in video frames that fits best (audio for frame t heard at
    t + offset; 0 = in sync); `confidence` is the mean sync probability at offset 0;
    `offset_confidence` is (median - min) of the distance curve over offsets, like SyncNet's
    LSE-C; `curve` holds the mean score per offset in `offsets`.
    """

    confidence: float
    offset: int
    offset_confidence: float
    offsets: tuple = attrs.field(converter=tuple)
    curve: tuple = attrs.field(converter=tuple)
    n_windows: int


class SyncScorer(ReadsFeatures, Stage):
    """Judges lip sync (mouth landmarks vs audio features); also used as a training loss."""

    kind = "syncnet"

    @abc.abstractmethod
    def score(self, motion: Motion, features: AudioFeatures, max_offset: int = 15) -> SyncResult:
        ...
