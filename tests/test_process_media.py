"""Synthetic talking-head inputs for the `geneface process` tests, and checks of them.

Every clip is made here from `skimage.data.astronaut()` (a public-domain photo shipped with
scikit-image): the face region is cut out and gently rotated / shifted per frame, so the
tracker sees a real face that moves like a head. Other test modules import these helpers.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pytest

from geneface.core.records import Audio

FACE_CENTRE = (225.0, 125.0)  # astronaut face centre (x, y) in the 512 px photo
FACE_WIDTH = 92.0  # its mesh width in pixels


def speech(seconds: float, sr: int = 16_000) -> Audio:
    t = np.arange(int(seconds * sr)) / sr
    tone = np.sin(2 * np.pi * 140 * t) * np.clip(np.sin(2 * np.pi * 3 * t), 0, None)
    return Audio((0.3 * tone).astype(np.float32), sr)


def astronaut_frames(
    n: int,
    size: int = 256,
    face_px: float = FACE_WIDTH,
    seed: int = 0,
    blank: Sequence[int] = (),
    two_faces: bool = False,
) -> list[np.ndarray]:
    """`n` RGB frames (size x size, or 2*size wide with `two_faces`) of a slowly moving face.

    `face_px` rescales the photo so the face is about that wide; frames listed in `blank`
    show an empty grey picture instead (no face).
    """
    import cv2
    from skimage.data import astronaut

    photo = astronaut()
    zoom = face_px / FACE_WIDTH
    photo = cv2.resize(photo, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
    cx, cy = FACE_CENTRE[0] * zoom, FACE_CENTRE[1] * zoom
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, 3)
    frames = []
    for i in range(n):
        angle = 4.0 * np.sin(2 * np.pi * i / 20 + phase[0])
        dx = 4.0 * np.sin(2 * np.pi * i / 17 + phase[1])
        dy = 3.0 * np.sin(2 * np.pi * i / 23 + phase[2])
        m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        # Put the face at 45% height of the output frame, then move it a little.
        m[0, 2] += size / 2 - cx + dx
        m[1, 2] += 0.45 * size - cy + dy
        frame = cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if i in blank:
            frame = np.full_like(frame, 128)
        if two_faces:
            frame = np.concatenate([frame, frame[:, ::-1]], axis=1)
        frames.append(frame)
    return frames


def write_clip(path: Path, frames: list[np.ndarray], audio: Optional[Audio] = None) -> Path:
    from geneface.core.media import write_video

    write_video(path, frames, fps=25.0, audio=audio)
    return path


def write_av(
    path: Path,
    frames: list[np.ndarray],
    times: Sequence[float],
    audio: Optional[Audio] = None,
    faststart: bool = False,
) -> Path:
    """Write frames at the given timestamps (seconds; variable frame rate allowed) with PyAV."""
    import av

    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        astream = None
        if audio is not None:
            astream = container.add_stream("aac", rate=audio.sample_rate)
            astream.layout = "mono"
        for frame, t in zip(frames, times):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts = int(round(t * 1000))
            vf.time_base = Fraction(1, 1000)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if astream is not None:
            chunk = 1024
            for start in range(0, len(audio.samples), chunk):
                block = audio.samples[start:start + chunk].reshape(1, -1)
                af = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
                af.sample_rate = audio.sample_rate
                af.pts = start
                af.time_base = Fraction(1, audio.sample_rate)
                for packet in astream.encode(af):
                    container.mux(packet)
            for packet in astream.encode(None):
                container.mux(packet)
    return path


@pytest.fixture(scope="module")
def astronaut_track():
    from geneface.plugins.mediapipe_tracker import MediapipeTracker

    return list(MediapipeTracker().track(iter(astronaut_frames(6))))


def test_synthetic_face_is_tracked_in_every_frame(astronaut_track):
    assert all(t.points is not None and t.points.shape == (478, 3) for t in astronaut_track)
    assert all(0.5 < t.confidence <= 1.0 and t.n_faces == 1 for t in astronaut_track)
    widths = [np.ptp(t.points[:, 0]) for t in astronaut_track]
    assert 80 < np.median(widths) < 110  # the face is the width the helper promises


def test_synthetic_face_moves_like_a_head(astronaut_track):
    centres = np.array([t.points[:, :2].mean(axis=0) for t in astronaut_track])
    assert np.ptp(centres, axis=0).max() > 1.0  # it does move
    assert np.ptp(centres, axis=0).max() < 20.0  # gently


def test_blank_frames_have_no_face():
    from geneface.plugins.mediapipe_tracker import MediapipeTracker

    tracked = list(MediapipeTracker().track(iter(astronaut_frames(4, blank=(2,)))))
    assert [t.points is None for t in tracked] == [False, False, True, False]
    assert tracked[2].confidence == 0.0


def test_two_faces_are_counted_and_one_is_followed():
    from geneface.plugins.mediapipe_tracker import MediapipeTracker

    tracked = list(MediapipeTracker().track(iter(astronaut_frames(4, two_faces=True))))
    assert all(t.n_faces == 2 for t in tracked)
    xs = [t.points[:, 0].mean() for t in tracked]
    # Always the same person: the face centre stays on one half of the frame.
    assert all(x < 256 for x in xs) or all(x > 256 for x in xs)
