"""Inference post-processing, one small pure function per step (METHOD.md, "Inference
post-processing"), so any post_processor plugin can reuse them:

- `clamp`: every landmark number within mean +- k std of the person's training landmarks;
- `smooth`: Gaussian smoothing over time (reflect padding: same length, no shift);
- `blinks`: the person's blinks found, measured (rate, intervals, trajectories) and injected;
- `silence`: speech/silence per frame (silero-vad), the mouth closed on silent stretches;
- `poses`: the head path (the person's poses looped and smoothed, one pose held);
- `person`: the person's training frames from a dataset, and motion in the person's units.

The built-in stage that chains them is `geneface.plugins.person_postprocess`; docs/post-processing.md.
"""

from geneface.postprocess.blinks import (
    Blink,
    BlinkProfile,
    blink_profile,
    eye_openness,
    find_blinks,
    inject_blinks,
    schedule_blinks,
    synthetic_blink,
)
from geneface.postprocess.clamp import clamp_bounds, clamp_landmarks
from geneface.postprocess.person import PersonFrames, from_person_units, read_person, to_person_units
from geneface.postprocess.poses import loop_camera, mean_pose_index, nearest_rotation, smooth_poses, still_camera
from geneface.postprocess.silence import close_mouth, closed_mouth, silence_weights, speech_flags
from geneface.postprocess.smooth import filter_time, gaussian_kernel, smooth_landmarks

__all__ = [
    "Blink", "BlinkProfile", "PersonFrames", "blink_profile", "clamp_bounds", "clamp_landmarks", "close_mouth",
    "closed_mouth", "eye_openness", "filter_time", "find_blinks", "from_person_units", "gaussian_kernel",
    "inject_blinks", "loop_camera", "mean_pose_index", "nearest_rotation", "read_person", "schedule_blinks",
    "silence_weights", "smooth_landmarks", "smooth_poses", "speech_flags", "still_camera", "synthetic_blink",
    "to_person_units",
]
