"""The pictures of a dataset: per frame the crop (JPEG) and the head / torso labels (PNG),
written on a writer thread, and the static background plate sampled along the way."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import numpy as np

from geneface.core import dataset as fmt
from geneface.core.arrays import save_npz
from geneface.core.media import iter_video_frames
from geneface.core.prefetch import prefetch
from geneface.core.progress import ProgressBars
from geneface.core.records import VIDEO_FPS
from geneface.errors import GenefaceError, MediaError
from geneface.processing.background import BackgroundPlate
from geneface.processing.config import ProcessConfig
from geneface.processing.crop import CropBox
from geneface.processing.masks import Segmenter, split_person
from geneface.processing.source import SourceInfo
from geneface.processing.work import RENDER_FILE, WorkFolder


def render_stage(
    work: WorkFolder,
    source: SourceInfo,
    config: ProcessConfig,
    box: CropBox,
    mesh_crop: np.ndarray,
    to68: Callable[[np.ndarray], np.ndarray],
    bars: ProgressBars,
    cache: Optional[list] = None,
) -> dict:
    """Frames, masks and background plate; returns the per-frame head coverage etc."""
    import cv2

    done = work.done("render")
    if done and (work.path / RENDER_FILE).exists():
        with np.load(work.path / RENDER_FILE, allow_pickle=False) as data:
            return {"head_coverage": data["head_coverage"], "background_seen": float(done["background_seen"])}
    n = len(mesh_crop)
    frames_dir = work.path / fmt.FRAMES_DIR
    masks_dir = work.path / fmt.MASKS_DIR
    for d in (frames_dir, masks_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    lm68 = to68(mesh_crop)
    coverage = np.zeros(n, np.float32)
    plate = BackgroundPlate(n, max_samples=config.background_samples)
    advance = bars.task("frames, masks", n)
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, int(config.jpeg_quality)]
    png = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]  # fastest for label maps

    def write(index: int, crop: np.ndarray, labels: np.ndarray) -> None:
        name = fmt.frame_name(index)
        if not cv2.imwrite(str(frames_dir / name), crop[..., ::-1], jpeg):
            raise GenefaceError(f"cannot write {frames_dir / name}")
        if not cv2.imwrite(str(masks_dir / fmt.frame_name(index, fmt.MASK_EXT)), labels, png):
            raise GenefaceError(f"cannot write mask {index}")

    pending = []
    count = 0
    with Segmenter() as segmenter, ThreadPoolExecutor(max_workers=1) as writer:
        frames = cache if cache and len(cache) == n else prefetch(iter_video_frames(source.info.path, VIDEO_FPS))
        for index, frame in enumerate(frames):
            if index >= n:
                break
            crop = box.apply(frame)
            person = segmenter.person(crop) > 0.5
            labels, coverage[index] = split_person(person, lm68[index], mesh_crop[index, :, :2])
            if plate.wants(index):
                plate.add(crop, person)
            pending.append(writer.submit(write, index, crop, labels))
            if len(pending) > 16:  # bound memory; also surfaces write errors early
                pending.pop(0).result()
            count += 1
            advance(1)
        for future in pending:
            future.result()
    if count != n:
        raise MediaError(f"{source.info.path}: decoded {count} frames on the second pass, {n} on the first")
    background, seen = plate.result()
    cv2.imwrite(str(work.path / fmt.BACKGROUND), background[..., ::-1])
    cv2.imwrite(str(work.path / fmt.BACKGROUND_SEEN), seen.astype(np.uint8) * 255)
    save_npz(work.path / RENDER_FILE, head_coverage=coverage)
    info = {"background_seen": round(float(seen.mean()), 4)}
    work.mark("render", info)
    return {"head_coverage": coverage, "background_seen": info["background_seen"]}
