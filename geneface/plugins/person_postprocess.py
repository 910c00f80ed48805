"""PostProcessor `person_postprocess`: what made GeneFace's results stable, from the person's own video.

Steps, in this order (each a section of the config with `enabled` and its knobs; the
functions are in geneface.postprocess; docs/post-processing.md):

1. `clamp`: every landmark number to mean +- k std of the person's training landmarks (k 2.5).
2. `smooth`: Gaussian over time (sigma 1 frame).
3. `blink`: the person's own blinks, at their own intervals, added on top of the eyes.
4. `silence`: the mouth closed on silent stretches of the driving audio (silero-vad).
5. `pose`: the head path handed to the renderer (`head_path`): the person's training poses
   looped back and forth and smoothed over 7 frames (of a person of several clips, the longest
   training clip's: no loop crosses from one clip's poses to another's), one pose held, a pose
   file, or none.

The order matters: clamping first keeps overshoots out of the smoothing; blinks come after
both, because a blink lies beyond 2.5 std of the eye points (closed eyes are a few per cent
of frames) and a smoothed blink is a half-blink; the closed mouth comes last, and is the
mean of real frames, so inside the range anyway.

Everything comes from the person's training frames (`person`: a dataset folder): those
before the held-out last 1/11. The steps work in the person's units; the motion comes back
in its own (same length, fps, mean and std).

Streaming (`stream_context`): clamping reads one frame and smoothing its Gaussian's radius
each side, both exact. Blinks are only approximate in a stream: their schedule is kept on
the run's frames (RunContext.offset), but which blink of the bank each one is depends on how
many were scheduled over the whole length, and their depth follows a 2 s running median of
the eyes. The closed mouth is approximate too: silero-vad carries a recurrent state from the
start of the audio, and its segments are cut with look-ahead. The head path needs no
context: every pose mode loops or holds the person's poses (`ping_pong`), so frame k's pose
does not depend on the length.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, Optional

import attrs
import numpy as np

from geneface import hookimpl
from geneface.core.records import VIDEO_FPS, Camera, Motion
from geneface.core.stages import PostProcessor, RunContext, StreamContext
from geneface.errors import StageMismatchError, UsageError
from geneface.postprocess import blinks, clamp, poses, silence, smooth
from geneface.postprocess.person import PersonFrames, from_person_units, read_person, to_person_units

WHERE = "stages.post_processor.config"


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)  # the runner's format (geneface.app.run.warn)


def _positive(_inst, attr, value):
    if not value > 0:
        raise ValueError(f"{attr.name} must be positive, got {value}")


@attrs.define
class ClampConfig:
    enabled: bool = True
    k: float = attrs.field(default=clamp.DEFAULT_K, validator=_positive)  # bound in the person's std


@attrs.define
class SmoothConfig:
    enabled: bool = True
    sigma: float = attrs.field(default=smooth.DEFAULT_SIGMA, validator=_positive)  # frames


@attrs.define
class BlinkConfig:
    enabled: bool = True
    seed: int = 0  # the blink schedule and which blink of the bank: same seed, same blinks
    # A blink: eye openness below this share of the open level, for at most max_seconds.
    threshold: float = attrs.field(default=blinks.DEFAULT_THRESHOLD,
                                   validator=[attrs.validators.gt(0.0), attrs.validators.lt(1.0)])
    max_seconds: float = attrs.field(default=blinks.DEFAULT_MAX_SECONDS, validator=_positive)
    fallback_rate: float = attrs.field(default=blinks.FALLBACK_RATE, validator=_positive)  # per minute, no blink found


@attrs.define
class SilenceConfig:
    enabled: bool = True
    min_silence: float = attrs.field(default=silence.DEFAULT_MIN_SILENCE, validator=attrs.validators.ge(0.0))  # s
    ramp: int = attrs.field(default=silence.DEFAULT_RAMP, validator=attrs.validators.ge(0))  # frames in and out
    threshold: float = attrs.field(default=silence.DEFAULT_THRESHOLD,  # silero-vad speech probability
                                   validator=[attrs.validators.gt(0.0), attrs.validators.lt(1.0)])
    closed_fraction: float = attrs.field(default=silence.DEFAULT_CLOSED_FRACTION,
                                         validator=[attrs.validators.gt(0.0), attrs.validators.le(1.0)])


def _odd(_inst, attr, value):
    if value < 1 or value % 2 == 0:
        raise ValueError(f"{attr.name} must be a positive odd number of frames, got {value}")


@attrs.define
class PoseConfig:
    enabled: bool = True  # false: the same as mode off
    mode: Literal["loop", "still", "file", "off"] = "loop"
    kernel: int = attrs.field(default=poses.DEFAULT_KERNEL, validator=_odd)  # loop: smoothing window, frames
    pose_file: Optional[Path] = None  # mode file: a pose file or a dataset folder


@attrs.define
class PersonPostprocessConfig:
    person: Optional[Path] = None  # the target person's dataset folder (required)
    clamp: ClampConfig = attrs.field(factory=ClampConfig)
    smooth: SmoothConfig = attrs.field(factory=SmoothConfig)
    blink: BlinkConfig = attrs.field(factory=BlinkConfig)
    silence: SilenceConfig = attrs.field(factory=SilenceConfig)
    pose: PoseConfig = attrs.field(factory=PoseConfig)


class PersonPostprocess(PostProcessor):
    name = "person_postprocess"
    description = ("clamp to the person's range, smooth, the person's own blinks, closed mouth on silence, "
                   "the person's head path looped and smoothed")
    Config = PersonPostprocessConfig

    def __init__(self, config=None):
        super().__init__(config)
        # Fail when the pipeline is built, before any stage runs: a missing or wrong person, a
        # pose file that cannot be read.
        self._person: PersonFrames = read_person(self.config.person, f"{WHERE}.person")
        self._file_camera: Optional[Camera] = self._read_pose_file()
        self._bounds = None
        self._blinks: Optional[blinks.BlinkProfile] = None
        self._closed: Optional[np.ndarray] = None

    @property
    def person(self) -> PersonFrames:
        return self._person

    def _read_pose_file(self) -> Optional[Camera]:
        pose = self.config.pose
        if not pose.enabled or pose.mode != "file":
            return None
        where = f"{WHERE}.pose.pose_file"
        if pose.pose_file is None:
            raise UsageError(f"{where}: required with pose.mode file (a pose file, e.g. DATASET/camera/camera.npz)")
        from geneface.core.camera_io import load_camera

        try:
            return load_camera(Path(pose.pose_file).expanduser())
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None

    # -- what the steps learn from the person, once each ----------------------------------

    def blink_profile(self) -> blinks.BlinkProfile:
        """How the person blinks (computed once; warns once when none was found)."""
        if self._blinks is None:
            c, p = self.config.blink, self._person
            profile = blinks.blink_profile(p.segments, p.fps, c.threshold, c.max_seconds, c.fallback_rate)
            if profile.synthetic:
                found = (f"{profile.n_found} blink(s) but none with open eyes on both sides"
                         if profile.n_found else "no blink")
                _warn(f"{WHERE}.person: {p.path}: {found} in {profile.seconds:.1f} s of training video; "
                      f"using a synthetic blink at {profile.rate:.1f} blinks/min")
            self._blinks = profile
        return self._blinks

    def closed_mouth(self) -> np.ndarray:
        """20 x 3: the person's closed mouth (points 48-67, person units)."""
        if self._closed is None:
            self._closed = silence.closed_mouth(self._person.landmarks, self.config.silence.closed_fraction)
        return self._closed

    # -- the stage ---------------------------------------------------------------------------

    def stream_context(self) -> StreamContext:
        c, fps = self.config, VIDEO_FPS  # contexts count 25 fps frames
        steps = StreamContext(0, 0)  # clamp: one frame
        if c.smooth.enabled:
            radius = len(smooth.gaussian_kernel(c.smooth.sigma)) // 2
            steps += StreamContext(radius, radius)
        if c.blink.enabled:
            # The eye level's running median and the longest blink of the bank, each side.
            side = int(round(blinks.OPEN_WINDOW_SECONDS * fps / 2)) + max(len(b) for b in self.blink_profile().bank)
            steps += StreamContext(side, side, exact=False,
                                   why="blink: which blink of the person's each one is depends on the whole "
                                       "length, and its depth on a 2 s running median of the eyes")
        if c.silence.enabled:
            # A second for silero-vad's state to settle; ahead, the shortest silence that closes
            # the mouth, its ramp and silero's own padding of speech (100 ms).
            ahead = int(round(c.silence.min_silence * fps)) + c.silence.ramp + int(round(0.1 * fps)) + 1
            steps += StreamContext(int(round(fps)), ahead, exact=False,
                                   why="silence: silero-vad carries a recurrent state from the start of the audio")
        return steps

    def process(self, motion: Motion, context: RunContext) -> Motion:
        problem = self.check_input(motion)
        if problem:
            raise StageMismatchError(f"post_processor '{self.name}': {problem}")
        c, p = self.config, self._person
        x = to_person_units(motion, p.mean, p.std)
        if c.clamp.enabled:
            x = clamp.clamp_landmarks(x, *clamp.clamp_bounds(p.mean, p.std, c.clamp.k))
        if c.smooth.enabled:
            x = smooth.smooth_landmarks(x, c.smooth.sigma)
        if c.blink.enabled:
            x, _ = blinks.inject_blinks(x, self.blink_profile(), c.blink.seed, motion.fps, offset=context.offset)
        if c.silence.enabled and context.audio is not None:
            x = silence.close_mouth(x, self.silence_weights(context, motion.n_frames, motion.fps), self.closed_mouth())
        return from_person_units(x, motion, p.mean, p.std)

    def silence_weights(self, context: RunContext, n_frames: int, fps: float) -> np.ndarray:
        """Per-frame mouth closing (0..1) for the run's audio; all closed when it has no speech."""
        c = self.config.silence
        flags = silence.speech_flags(context.audio, n_frames, fps, c.threshold)
        if not flags.any():
            if not context.streamed:  # a streamed window is not the whole audio: silence there is no news
                _warn(f"post_processor '{self.name}': no speech found in the driving audio; the mouth stays closed")
            return np.ones(n_frames)
        return silence.silence_weights(flags, int(round(c.min_silence * fps)), c.ramp)

    def head_path(self, n_frames: int) -> Optional[Camera]:
        pose = self.config.pose
        if not pose.enabled or pose.mode == "off":
            return None
        if pose.mode == "file":
            from geneface.core.camera_io import camera_for_length

            return camera_for_length(self._file_camera, n_frames)
        if pose.mode == "still":
            return poses.still_camera(self._person.camera, n_frames)
        return poses.loop_camera(self._person.loop_camera, n_frames, pose.kernel)


@hookimpl
def register_post_processors(register):
    register(PersonPostprocess)
