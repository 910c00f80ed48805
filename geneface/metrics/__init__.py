"""Evaluation metrics, shared by `eval` and `bench`: image scores, LPIPS, LMD.

- `image`: PSNR and SSIM of a rendered frame against the real one, full frame and face box.
- `lpips`: LPIPS (AlexNet) from local weight files only (imports torch; import it directly).
- `landmarks`: LMD on the mouth points, and re-tracking frames with our face tracker.
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
