"""What rendering costs: frames per second and peak memory of a renderer drawing a motion.

- speed: frames per second = 1 / the median over frames of the wall time to get one frame
  from the renderer's stream (the median leaves out the first frame's warm-up); the total
  time is kept too;
- memory: the peak while rendering, above the process before the renderer was loaded
  (`geneface.core.measure.PeakUse`): on CPU resident memory (Linux: the kernel's high-water
  mark `VmHWM`, reset before rendering; elsewhere a 2 ms sampler), on CUDA
  `torch.cuda.max_memory_allocated` (so the model's weights count, the caching allocator's
  slack does not).

`geneface bench renderers` measures every renderer this way (the definitions below go into
its report), and `benchmarks/` scripts do too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import attrs
import numpy as np

from geneface.core.measure import PeakUse, timed
from geneface.core.records import Camera, Motion
from geneface.errors import UsageError

FPS_DEFINITION = ("1 / median over held-out frames of the wall time to get one frame from the renderer's stream, "
                  "at the dataset's resolution (render_seconds: all frames, first one included)")
MEMORY_DEFINITION = ("peak while rendering the held-out frames, above the process before the renderer was loaded "
                     "(weights + working memory): CPU resident memory (Linux VmHWM reset before rendering, else a "
                     "2 ms RSS sampler) or, for a model on CUDA, torch.cuda.max_memory_allocated")


def stage_device(stage):
    """The torch device of a stage's module (`stage.net`), or None for a stage without one."""
    net = getattr(stage, "net", None)
    try:
        import torch

        if isinstance(net, torch.nn.Module):
            for tensor in [*net.parameters(), *net.buffers()]:
                return tensor.device
    except ImportError:
        pass
    return None


def load_renderer(registry, path: Path, device: Optional[str] = None, where: str = "renderer"):
    """A trained renderer from its checkpoint (through `registry`, the application's), its
    module moved to `device` (a torch device string) when it has one (`stage.net`); a
    renderer without a module renders where it is."""
    stage = registry.load(Path(path), "renderer", where)
    if device and stage_device(stage) is not None:
        # A stage may pick kernels for the device (`to_device`, e.g. hashgrid_nerf's grid).
        stage.to_device(device) if hasattr(stage, "to_device") else stage.net.to(device)
    return stage


@attrs.frozen
class RenderStats:
    """Speed and memory of rendering (see the module's definitions)."""

    n_frames: int
    seconds: tuple = attrs.field(converter=tuple, repr=False)  # per frame
    memory_bytes: Optional[int]
    memory_kind: str  # "cpu (VmHWM)", "cpu (sampled RSS)", "cuda"

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))

    @property
    def fps(self) -> Optional[float]:
        median = float(np.median(self.seconds)) if self.seconds else 0.0
        return 1.0 / median if median > 0 else None

    def as_dict(self) -> dict:
        return {"fps": self.fps, "render_seconds": self.total_seconds,
                "median_frame_seconds": float(np.median(self.seconds)) if self.seconds else None,
                "memory_mb": None if self.memory_bytes is None else self.memory_bytes / 2**20,
                "memory_kind": self.memory_kind}


def clip_runs(clips: np.ndarray) -> list[tuple[int, int, int]]:
    """(clip, start, stop) of each run of equal values in `clips` (the clip of every frame)."""
    clips = np.asarray(clips)
    if len(clips) == 0:
        return []
    cuts = [0, *(np.flatnonzero(np.diff(clips)) + 1).tolist(), len(clips)]
    return [(int(clips[a]), a, b) for a, b in zip(cuts[:-1], cuts[1:])]


def render_by_clip(stage, motion: Motion, camera: Optional[Camera], runs=()):
    """`stage.render(motion, camera)`, each run of frames of one clip ((clip, start, stop), from
    `clip_runs`) drawn over that clip's plate by a renderer that holds one per clip (`use_clip`:
    the person NeRFs). One run of clip 0, or a renderer without clips: one render of the whole."""
    use_clip = getattr(stage, "use_clip", None)
    if use_clip is None or len(runs) == 0 or (len(runs) == 1 and runs[0][0] == 0):
        yield from stage.render(motion, camera)
        return
    if camera is None:
        raise UsageError(f"renderer '{stage.name}': frames of several clips need their camera")
    try:
        for clip, start, stop in runs:
            use_clip(clip)
            part = attrs.evolve(motion, landmarks=motion.landmarks[start:stop])
            yield from stage.render(part, attrs.evolve(camera, c2w=camera.c2w[start:stop]))
    finally:
        use_clip(None)


def render_timed(load: Callable[[], object], motion: Motion, camera: Optional[Camera],
                 sink: Callable[[int, np.ndarray], None], size: Optional[tuple[int, int]] = None,
                 advance: Optional[Callable[[int], None]] = None, clips=()):
    """Load a renderer (`load()`), render `motion` with `camera` and hand each frame to
    `sink(index, frame)`; returns (stage, RenderStats). `clips`: (clip, start, stop) runs of
    the motion's frames, each drawn over its own clip's plate (`render_by_clip`).

    Only getting each frame from the renderer's stream is timed; memory is measured from
    before `load()` to the end of rendering, the peak taken over rendering only (a checkpoint's
    transient copy while loading does not count). Each frame must be uint8 H x W x 3 (`size` =
    (H, W) when given) and there must be one per motion frame.
    """
    memory = PeakUse()
    stage = load()
    memory.start(stage_device(stage))
    seconds, n = [], motion.n_frames
    try:
        for index, (dt, frame) in enumerate(timed(render_by_clip(stage, motion, camera, clips))):
            if frame is None:
                break
            if index == n:
                raise UsageError(f"renderer '{stage.name}' yielded more frames than the {n} motion frames")
            seconds.append(dt)
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise UsageError(f"renderer '{stage.name}': frame {index} is {frame.dtype} {frame.shape}, "
                                 "not uint8 H x W x 3")
            if size is not None and frame.shape[:2] != tuple(size):
                raise UsageError(f"renderer '{stage.name}' renders {frame.shape[1]} x {frame.shape[0]} px, "
                                 f"the dataset is {size[1]} x {size[0]}")
            sink(index, frame)
            if advance is not None:
                advance(1)
        if len(seconds) < n:
            raise UsageError(f"renderer '{stage.name}' yielded {len(seconds)} frames for {n} motion frames")
    finally:
        used, kind = memory.stop()
    return stage, RenderStats(n, seconds, used, kind)
