"""Evaluation metrics, shared by `eval` and `bench`: image scores, LPIPS, LMD, lip sync.

- `image`: PSNR and SSIM of a rendered frame against the real one, full frame and face box.
- `lpips`: LPIPS (AlexNet) from local weight files only (imports torch; import it directly).
- `landmarks`: LMD on the mouth points, and re-tracking frames with a face tracker.
- `reference`: a rendered video against real footage of the same frames in one pass (the
  real frames tracked, each pair scored at once).
- `sync`: lip sync of a whole video's canonical landmarks by a SyncScorer, over the runs of
  frames with a face.
- `motion`: motion against the truth before rendering (mouth-opening statistics, LMD).
- `lag`: the mouth's timing and liveliness against the truth (Pearson r over lags, best lag,
  amplitude ratio), per clip and pooled over clips.
- `held_out`: a renderer's frames scored against a person's held-out frames (PSNR, SSIM, LMD),
  the nearest-training-frame baseline.
- `render_cost`: a renderer's speed and peak memory while rendering (imports torch when used).
"""

from geneface.metrics.image import (
    PSNR_MAX,
    ImageScores,
    RunningScores,
    face_box,
    psnr,
    psnr_box,
    score_pair,
    score_sequence,
    ssim,
    ssim_box,
)
from geneface.metrics.landmarks import LmdResult, Tracked68, lmd, lmd_of_frames, mouth_distances, track68

__all__ = [
    "PSNR_MAX",
    "ImageScores",
    "RunningScores",
    "face_box",
    "psnr",
    "psnr_box",
    "score_pair",
    "score_sequence",
    "ssim",
    "ssim_box",
    "LmdResult",
    "Tracked68",
    "lmd",
    "lmd_of_frames",
    "mouth_distances",
    "track68",
]
