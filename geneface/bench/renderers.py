"""`geneface bench renderers`: every trainable renderer on one person, the same split and budget.

Each renderer is trained on the dataset through the same code path as `geneface train`
(`geneface.cli.cmd_train.train_plugin`: the plugin's recipe with its defaults, the shared
Trainer), for the same wall-clock budget (`TrainConfig.max_minutes`, with the step count set
out of reach so the budget is what ends every run; a recipe that fits in closed form just
fits), or is loaded from a finished run folder. A renderer that fails, at any point and for
any reason, gets its error in its row and the others go on.

Then every renderer renders the held-out last 1/11 of the video (the frames no
person-specific model trains on: `geneface.core.dataset.held_out_start`, frames whose
tracking failed left out, as the renderer task does) from those frames' own tracked
landmarks and camera, and is scored against the real frames:

- PSNR and SSIM, full frame and face box (`geneface.metrics.image`; the box of the real
  frame's 68 points grown by 10 %);
- LMD: mouth points re-tracked from the rendered and the real frames by the same tracker,
  pixels at the dataset's size (`geneface.metrics.landmarks`); frames where no face is found
  are left out and counted;
- speed: frames per second = 1 / the median over held-out frames of the wall time to get one
  frame from the renderer's stream (the median leaves out the first frame's warm-up), at the
  dataset's resolution; the total time is kept too;
- memory: the peak while rendering, above the process before the renderer was loaded: on
  CPU resident memory (Linux: the kernel's high-water mark `VmHWM`, reset before rendering;
  elsewhere a 2 ms sampler; never tracemalloc, which does not see torch's allocations), on
  CUDA `torch.cuda.max_memory_allocated` (so the model's weights count, the caching
  allocator's slack does not);
- training: wall-clock seconds of the whole training call (data, model, loop, export) and
  optimiser steps.

The evaluation helpers (held-out frames and camera, timed rendering, scoring, the
nearest-training-frame baseline, comparison images) are public: `benchmarks/bench_train_render.py`
uses them too.
"""

from __future__ import annotations

import gc
import json
import math
import os
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import attrs
import numpy as np

from geneface.core.records import Camera, Motion
from geneface.errors import UsageError

BENCH_STEPS = 10**9  # out of reach: the time budget ends every run
TRUTH = "truth"  # the label of the real frames' column

FPS_DEFINITION = ("1 / median over held-out frames of the wall time to get one frame from the renderer's stream, "
                  "at the dataset's resolution (render_seconds: all frames, first one included)")
MEMORY_DEFINITION = ("peak while rendering the held-out frames, above the process before the renderer was loaded "
                     "(weights + working memory): CPU resident memory (Linux VmHWM reset before rendering, else a "
                     "2 ms RSS sampler) or, for a model on CUDA, torch.cuda.max_memory_allocated")


def one_line(exc: BaseException) -> str:
    """An exception as one line: the message of a geneface error, else `Type: message`."""
    from geneface.errors import GenefaceError

    text = str(exc) if isinstance(exc, GenefaceError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


# -- choosing the renderers ----------------------------------------------------------------


@attrs.frozen
class RendererChoice:
    """One renderer of the bench: trained with `args` (its recipe's own flags), or loaded from `run`."""

    name: str
    entry: object  # geneface.registry.PluginEntry
    run: Optional[Path] = None
    args: tuple = attrs.field(default=(), converter=tuple)
    snapshots: tuple = attrs.field(default=(), converter=tuple)  # minutes of training to score the model at too


def parse_assignments(texts: Sequence[str], flag: str) -> dict[str, str]:
    """`NAME=VALUE` words (repeatable flag) as a dict; one-line errors name the flag."""
    out: dict[str, str] = {}
    for text in texts:
        name, eq, value = text.partition("=")
        name = name.strip()
        if not eq or not name or not value.strip():
            raise UsageError(f"{flag} {text!r}: expected NAME=VALUE")
        if name in out:
            raise UsageError(f"{flag}: '{name}' is given twice")
        out[name] = value.strip()
    return out


def trainable_renderers(registry=None) -> tuple[list, list[dict]]:
    """(entries of every trainable renderer that can run here, [{name, reason}] of those skipped)."""
    from geneface.errors import PluginError
    from geneface.registry import get_registry

    registry = registry or get_registry()
    found, skipped = [], []
    for name in registry.names("renderer"):
        entries = registry.entries[("renderer", name)]
        if not any(e.cls.trainable() for e in entries):
            continue
        try:
            found.append(registry.get("renderer", name))
        except PluginError as exc:  # unavailable here (a missing dependency), or a name clash
            skipped.append({"name": name, "reason": one_line(exc)})
    return found, skipped


def parse_snapshots(texts: Sequence[str], budget: float) -> dict[str, tuple[float, ...]]:
    """`--snapshot NAME=MIN[,MIN...]` words as {name: sorted minutes}, each > 0 and < `budget`."""
    out = {}
    for name, value in parse_assignments(texts, "--snapshot").items():
        try:
            minutes = sorted({float(m) for m in value.split(",") if m.strip()})
        except ValueError:
            raise UsageError(f"--snapshot {name}={value}: expected minutes, e.g. {name}=3,6") from None
        if not minutes or not all(0 < m < budget for m in minutes):
            raise UsageError(f"--snapshot {name}={value}: every mark must be > 0 and below the --budget of "
                             f"{budget:g} min")
        out[name] = tuple(minutes)
    return out


def snapshot_path(run: Path, minutes: float) -> Path:
    """Where a run keeps its model as it was `minutes` into training (the Trainer's `snapshot_minutes`)."""
    return Path(run) / "snapshots" / f"minute-{minutes:g}.safetensors"


def select_renderers(plugins: Optional[Sequence[str]] = None, runs: Optional[dict] = None,
                     options_for: Optional[dict] = None, registry=None,
                     snapshots: Optional[dict] = None) -> tuple[list[RendererChoice], list[dict]]:
    """The renderers to compare: `plugins` (names), else every trainable one available.

    `runs`: name -> a finished run folder to load instead of training; `options_for`: name ->
    the recipe's own flags as one string ("--profile quick"); `snapshots`: name -> minutes of
    its training at which its model is exported and scored too. Everything is checked here,
    before any work: unknown or untrainable names, a run folder without a model of that
    plugin, flags the recipe does not take.
    """
    from geneface.core.checkpoint import check_checkpoint
    from geneface.registry import get_registry
    from geneface.training.recipe import load_recipe, parse_options

    registry = registry or get_registry()
    runs, options_for, snapshots = dict(runs or {}), dict(options_for or {}), dict(snapshots or {})
    available, skipped = trainable_renderers(registry)
    if plugins:
        entries = []
        for name in plugins:
            entry = registry.get("renderer", name, where="--plugins")  # unknown: did you mean ...
            if not entry.cls.trainable():
                names = ", ".join(e.name for e in available) or "none available"
                raise UsageError(f"--plugins: renderer '{name}' is not trainable (trainable: {names})")
            if any(e.name == name for e in entries):
                raise UsageError(f"--plugins: '{name}' is named twice")
            entries.append(entry)
        skipped = []
    else:
        entries = available
    if not entries:
        raise UsageError("no trainable renderer plugin is available here"
                         + (f" (skipped: {'; '.join(s['name'] + ': ' + s['reason'] for s in skipped)})" if skipped else ""))
    names = [e.name for e in entries]
    for flag, given in (("--run", runs), ("--options-for", options_for), ("--snapshot", snapshots)):
        for name in given:
            if name not in names:
                raise UsageError(f"{flag} {name}: not among the renderers compared ({', '.join(names)})")
    choices = []
    for entry in entries:
        run = runs.get(entry.name)
        args: tuple = ()
        if run is not None:
            run = Path(run).expanduser()
            check_checkpoint(run / "model.safetensors", "renderer", entry.name, f"--run {entry.name}")
            if entry.name in options_for:
                raise UsageError(f"--options-for {entry.name}: it is loaded from --run, not trained")
            for minutes in snapshots.get(entry.name, ()):  # a loaded run's own snapshots (`snapshot_minutes`)
                if not snapshot_path(run, minutes).is_file():
                    raise UsageError(f"--snapshot {entry.name}: {snapshot_path(run, minutes)} does not exist (the run "
                                     f"was not trained with snapshot_minutes including {minutes:g})")
        elif entry.name in options_for:
            try:
                args = tuple(shlex.split(options_for[entry.name]))
            except ValueError as exc:
                raise UsageError(f"--options-for {entry.name}: {exc}") from None
            parse_options(load_recipe(entry.cls).options, args, f"training renderer '{entry.name}'")
        choices.append(RendererChoice(entry.name, entry, run, args, snapshots.get(entry.name, ())))
    return choices, skipped


# -- the held-out frames -----------------------------------------------------------------


def held_out_frames(ds) -> np.ndarray:
    """The held-out last 1/11 of the video, as the renderer task holds it out: frames from
    `held_out_start` on that belong to a split (tracking failures left out)."""
    from geneface.core.dataset import held_out_start

    start = held_out_start(ds.n_frames)
    valid = np.zeros(ds.n_frames, bool)
    for name in ds.manifest["splits"]:
        valid[ds.split(name)] = True
    frames = np.flatnonzero(valid[start:]) + start
    if len(frames) == 0 or start == 0:
        raise UsageError(f"{ds.path}: {ds.n_frames} frames are too few to hold out the last 1/11 and train on the rest")
    return frames


def frames_camera(ds, frames) -> Camera:
    """The dataset's camera at `frames` only (one pose per frame rendered)."""
    camera = ds.camera()
    return Camera(camera.focal, camera.width, camera.height, camera.c2w[np.asarray(frames)], camera.cx, camera.cy)


def face_boxes(ds, frames) -> list:
    """The face box of each real frame (its 68 tracked points grown by 10 %)."""
    from geneface.metrics.image import face_box

    image68 = ds.landmarks_image()
    return [face_box(image68[int(f)], ds.size) for f in frames]


def nearest_training_frames(ds, frames) -> list[int]:
    """The baseline that copies the training video: for each frame, the training frame whose
    tracked 68 image points (so head pose counts too) are nearest."""
    from geneface.core.dataset import held_out_start

    train = ds.split("train")
    train = train[train < held_out_start(ds.n_frames)]
    tracked = ds.landmarks_image()[:, :, :2].reshape(ds.n_frames, -1)
    return [int(train[np.argmin(((tracked[train] - tracked[int(i)]) ** 2).sum(1))]) for i in frames]


def pick_shown(n: int, count: int = 3) -> list[int]:
    """`count` positions spread over n frames, away from the ends (n // 6, n // 2, 5n // 6 for 3)."""
    if n <= 0:
        return []
    picks = [int((2 * k + 1) * n // (2 * count)) for k in range(count)]
    return sorted(set(min(n - 1, p) for p in picks))


# -- memory ----------------------------------------------------------------------------------


def _status_kb(field: str) -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _rss_bytes() -> int:
    """Resident memory of this process now."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no "now" here: the peak so far
        return peak if sys.platform == "darwin" else peak * 1024


def _release_free_memory() -> None:
    """Collect garbage and hand glibc's free heap back to the system, so that memory freed by
    earlier work (another renderer's training) is not silently reused below the baseline."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak resident memory of a block, in bytes: Linux's high-water mark reset at `start`
    (exact), else a thread sampling RSS every 2 ms."""

    def __init__(self) -> None:
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._peak = 0
        self.method = ""

    def start(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            hwm, rss = _status_kb("VmHWM"), _status_kb("VmRSS")
            if hwm is not None and rss is not None and hwm <= rss + 4096:  # it really was reset
                self.method = "VmHWM"
                return
        except OSError:
            pass
        self.method = "sampled RSS"
        self._peak = _rss_bytes()

        def sample():
            while not self._stop.wait(0.002):
                self._peak = max(self._peak, _rss_bytes())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop(self) -> int:
        if self.method == "VmHWM":
            return int(_status_kb("VmHWM")) * 1024
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return max(self._peak, _rss_bytes())


def _stage_device(stage):
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


def load_renderer(path: Path, device: Optional[str] = None, where: str = "renderer"):
    """A trained renderer from its checkpoint, its module moved to `device` (a torch device
    string) when it has one (`stage.net`); a renderer without a module renders where it is."""
    from geneface.core.runner import load_trained_stage

    stage = load_trained_stage(Path(path), "renderer", where)
    if device and _stage_device(stage) is not None:
        stage.net.to(device)
    return stage


@attrs.frozen
class RenderStats:
    """Speed and memory of rendering the held-out frames (see the module's definitions)."""

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


def render_timed(load: Callable[[], object], motion: Motion, camera: Optional[Camera], sink: Callable[[int, np.ndarray], None],
                 size: Optional[tuple[int, int]] = None, advance: Optional[Callable[[int], None]] = None):
    """Load a renderer (`load()`), render `motion` with `camera` and hand each frame to
    `sink(index, frame)`; returns (stage, RenderStats).

    Only getting each frame from the renderer's stream is timed; memory is measured from
    before `load()` to the end of rendering, the peak taken over rendering only (a checkpoint's
    transient copy while loading does not count). Each frame must be uint8 H x W x 3 (`size` =
    (H, W) when given) and there must be one per motion frame.
    """
    import torch

    _release_free_memory()
    cpu_before = _rss_bytes()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        gpu_before = torch.cuda.memory_allocated()
    stage = load()
    device = _stage_device(stage)
    on_cuda = device is not None and device.type == "cuda"
    gc.collect()
    meter = PeakMemory()
    if on_cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        meter.start()
    seconds, n = [], motion.n_frames
    try:
        stream = iter(stage.render(motion, camera))
        for index in range(n + 1):
            t0 = time.perf_counter()
            frame = next(stream, None)
            dt = time.perf_counter() - t0
            if frame is None:
                if index < n:
                    raise UsageError(f"renderer '{stage.name}' yielded {index} frames for {n} motion frames")
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
    finally:
        if on_cuda:
            memory, kind = torch.cuda.max_memory_allocated(device) - gpu_before, "cuda"
        else:
            memory, kind = meter.stop() - cpu_before, f"cpu ({meter.method})"
    return stage, RenderStats(n, seconds, max(0, int(memory)), kind)


# -- scores -----------------------------------------------------------------------------


def track_truth(ds, frames, tracker=None):
    """The real frames re-tracked (68 points), once for every renderer scored against them."""
    from geneface.metrics.landmarks import track68

    return track68(ds.frames([int(f) for f in frames]), tracker)


def score_frames(rendered: Iterable[np.ndarray], real: Iterable[np.ndarray], boxes, truth=None,
                 resolution: Optional[int] = None, rendered_again: Optional[Iterable[np.ndarray]] = None,
                 tracker=None) -> dict:
    """PSNR and SSIM (full frame and face box) of rendered against real frames, and LMD of
    the rendered frames re-tracked against `truth` (a Tracked68 of the real ones; None: no LMD).

    `rendered` is read once for the image scores; `rendered_again` (the same frames, for
    the tracker) defaults to a list kept from the first pass. LMD leaves out frames without
    a face in either video (`lmd_frames` counts the scored ones); when no frame has one in
    both, `lmd_px` is None and `lmd_note` says why.
    """
    from geneface.metrics.image import score_sequence
    from geneface.metrics.landmarks import lmd_of_frames

    kept: list = []
    if truth is not None and rendered_again is None:
        rendered = _keep(rendered, kept)
    scores, n = score_sequence(rendered, real, boxes)
    out = {"psnr": scores.psnr, "ssim": scores.ssim, "psnr_face": scores.psnr_face, "ssim_face": scores.ssim_face,
           "frames": n, "lmd_px": None, "lmd_frames": 0}
    if truth is not None:
        try:
            lmd = lmd_of_frames(rendered_again if rendered_again is not None else kept, truth, resolution=resolution,
                                tracker=tracker, allow_missing=True)
        except UsageError as exc:  # no face in any rendered frame: the image scores still stand
            out["lmd_note"] = one_line(exc)
        else:
            out["lmd_px"], out["lmd_frames"] = lmd.lmd, lmd.n_scored
    return out


def _keep(frames: Iterable[np.ndarray], kept: list):
    for frame in frames:
        kept.append(frame)
        yield frame


# -- images -----------------------------------------------------------------------------


def error_grid(real: Sequence[np.ndarray], rendered: Sequence[np.ndarray], picks: Sequence[int],
               scale: float = 1.0) -> np.ndarray:
    """Rows of real | rendered | error (mean absolute error x 4, jet) for frames `picks`; uint8 RGB."""
    import cv2

    from geneface.training.renderer_task import comparison_image

    rows = [comparison_image(np.asarray(real[k]) / 255.0, np.asarray(rendered[k]) / 255.0) for k in picks]
    grid = np.concatenate(rows, axis=0)
    if scale != 1.0:
        grid = cv2.resize(grid, (max(1, round(grid.shape[1] * scale)), max(1, round(grid.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    return grid


def _label(tile_width: int, text: str, height: int) -> np.ndarray:
    """A white strip with `text` centred, shrunk (then cut) to fit the tile."""
    import cv2

    strip = np.full((height, tile_width, 3), 255, np.uint8)
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    scale = 0.5
    while True:
        (w, h), _ = cv2.getTextSize(text, font, scale, thickness)
        if w <= tile_width - 4 or scale <= 0.3:
            break
        scale -= 0.05
    while w > tile_width - 4 and len(text) > 2:
        text = text[:-2] + "~"
        (w, h), _ = cv2.getTextSize(text, font, scale, thickness)
    org = (max(2, (tile_width - w) // 2), (height + h) // 2)
    cv2.putText(strip, text, org, font, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return strip


def side_by_side(columns: Sequence[tuple[str, Optional[Sequence[np.ndarray]]]], row_labels: Sequence[str] = (),
                 tile: Optional[int] = None) -> np.ndarray:
    """One image: a column per (label, frames), the same rows in each; a column whose frames
    are None (a renderer that failed) is grey. Labels on a strip above each column, row labels
    (the frame index) on the first column's tiles. Tiles are resized to `tile` px high (default:
    the frames' own height, at least 128 so that labels stay legible). uint8 RGB."""
    import cv2

    first = next(frames for _, frames in columns if frames is not None)
    h, w = np.asarray(first[0]).shape[:2]
    tile_h = tile or max(128, h)
    tile_w = max(1, round(w * tile_h / h))
    n_rows = len(first)

    def fit(image):
        image = np.asarray(image)
        if image.shape[:2] == (tile_h, tile_w):
            return image
        interp = cv2.INTER_NEAREST if tile_h > image.shape[0] else cv2.INTER_AREA
        return cv2.resize(image, (tile_w, tile_h), interpolation=interp)

    strip_h = 24
    gap = np.full((strip_h + n_rows * tile_h, 4, 3), 255, np.uint8)
    blocks = []
    for c, (label, frames) in enumerate(columns):
        tiles = []
        for r in range(n_rows):
            if frames is None:
                t = np.full((tile_h, tile_w, 3), 96, np.uint8)
                if r == n_rows // 2:
                    t = t.copy()
                    cv2.putText(t, "failed", (6, tile_h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                                cv2.LINE_AA)
            else:
                t = fit(frames[r]).copy()
            if c == 0 and r < len(row_labels):
                cv2.putText(t, row_labels[r], (4, tile_h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                            cv2.LINE_AA)
            tiles.append(t)
        blocks.append(np.concatenate([_label(tile_w, label, strip_h), *tiles], axis=0))
        if c < len(columns) - 1:
            blocks.append(gap)
    return np.concatenate(blocks, axis=1)


def write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), np.ascontiguousarray(np.asarray(image)[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"cannot write {path}")


# -- the comparison ---------------------------------------------------------------------------


class _Display:
    """The bench's progress: one line for the renderers done, one for the current one's phase
    (training: seconds of the budget spent and the step; rendering and scoring: frames)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.progress = None
        if enabled:
            from geneface.core.progress import make_progress

            self.progress = make_progress()
            self.progress.start()
            self.overall = self.progress.add_task("renderers", total=total, rate="")
            self.current = None
        self._last = 0.0

    def phase(self, description: str, total: Optional[float]) -> None:
        if self.progress is None:
            return
        if self.current is not None:
            self.progress.remove_task(self.current)
        self.current = self.progress.add_task(description, total=total, rate="")

    def set(self, completed: float, rate: str = "", force: bool = False) -> None:
        if self.progress is None or self.current is None:
            return
        now = time.monotonic()
        if force or now - self._last > 0.2:
            self._last = now
            self.progress.update(self.current, completed=completed, rate=rate)

    def advance(self, n: int = 1) -> None:
        if self.progress is not None and self.current is not None:
            self.progress.advance(self.current, n)

    def done(self, name: str) -> None:
        if self.progress is not None:
            self.progress.update(self.overall, advance=1, rate=f"last: {name}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _run_info(run: Path) -> dict:
    try:
        return json.loads((run / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def _train(choice: RendererChoice, data: Path, out: Path, budget: float, loop: dict, display: _Display,
           label: str) -> dict:
    """Train one renderer for the budget through `geneface train`'s code path; row fields."""
    from geneface.cli.cmd_train import train_plugin

    seconds = budget * 60.0
    display.phase(f"{label}: training ({budget:g} min budget, s)", math.ceil(seconds))
    started = time.monotonic()

    def on_step(step: int) -> None:
        display.set(min(seconds, time.monotonic() - started), f"step {step}")

    result = train_plugin(choice.entry, [data], out, args=choice.args,
                          loop={**loop, "steps": loop.get("steps") or BENCH_STEPS, "max_minutes": budget,
                                "snapshot_minutes": choice.snapshots},
                          progress=False, on_step=on_step)
    display.set(seconds, force=True)
    stopped = result.get("stopped")
    return {"train_seconds": time.monotonic() - started, "steps": int(result.get("step", 0)),
            "fitted": bool(result.get("fitted")), "stopped": None if not stopped else stopped.get("reason"),
            "model": Path(result["model"]), "snapshot_files": list(result.get("snapshots") or [])}


def compare_renderers(data: Path, choices: Sequence[RendererChoice], budget: float, runs_dir: Path,
                      loop: Optional[dict] = None, device: str = "auto", progress: bool = False,
                      shown: int = 3, tracker=None, echo: Callable[[str], None] = lambda s: None) -> dict:
    """Train (or load) and score every renderer; a JSON-ready dict plus the comparison image.

    Runs are trained into `runs_dir/NAME`. Returns {"benchmark", "settings", "rows", "image"}:
    one row per renderer in order (name, origin, source, run, status "ok" or "failed", error,
    train_seconds, steps, stopped, scores, speed and memory), and `image` the side-by-side
    picture (uint8 RGB, not JSON: the writer pops it). A failing renderer has its error in
    its row; every other one is still scored.
    """
    from geneface.core.dataset import Dataset, held_out_start
    from geneface.training.distributed import choose_device

    data = Path(data).resolve()
    ds = Dataset(data)
    frames = held_out_frames(ds)
    motion, camera = ds.motion(frames), frames_camera(ds, frames)
    boxes = face_boxes(ds, frames)
    size = ds.size
    render_device = str(choose_device(device))
    loop = {**(loop or {}), "device": device}
    picks = pick_shown(len(frames), shown)
    truth_shown = [ds.frame(int(frames[k])) for k in picks]

    truth_tracked, lmd_note = None, None
    rows, columns = [], [(TRUTH, truth_shown)]
    display = _Display(progress, len(choices))
    try:
        for i, choice in enumerate(choices):
            label = f"[{i + 1}/{len(choices)}] {choice.name}"
            row = {"name": choice.name, "origin": str(choice.entry.origin),
                   "source": "run" if choice.run is not None else "trained", "run": None, "status": "ok",
                   "error": None, "train_seconds": None, "steps": None, "stopped": None}
            stage_phase = "training"
            try:
                if choice.run is not None:
                    model = Path(choice.run) / "model.safetensors"
                    snapshot_files = [snapshot_path(choice.run, m) for m in choice.snapshots]
                    row["run"] = str(choice.run)
                    info = _run_info(Path(choice.run))
                    if info.get("data") and Path(info["data"]).resolve() != data:
                        row["note"] = f"trained on {info['data']}, not on {data}"
                    row["stopped"] = (info.get("stopped") or {}).get("reason")
                else:
                    out = runs_dir / choice.name
                    row["run"] = str(out)
                    row.update(_train(choice, data, out, budget, loop, display, label))
                    model = row.pop("model")
                    snapshot_files = row.pop("snapshot_files")
                stage_phase = "evaluation"
                display.phase(f"{label}: rendering held-out frames", len(frames))
                stored = runs_dir / f".{choice.name}.frames.raw"
                stored.parent.mkdir(parents=True, exist_ok=True)
                shown_frames: dict[int, np.ndarray] = {}
                with open(stored, "wb") as handle:
                    def sink(k, frame, handle=handle):
                        handle.write(np.ascontiguousarray(frame).tobytes())
                        if k in picks:
                            shown_frames[k] = frame.copy()

                    stage, stats = render_timed(lambda: load_renderer(model, render_device, f"renderer {choice.name}"),
                                                motion, camera, sink, (size, size), display.advance)
                row["model_step"] = _checkpoint_step(model)  # the step of the model scored (best by validation)
                if row["steps"] is None:  # a loaded run: the steps it trained, from its last model
                    last = Path(choice.run) / "last.safetensors"
                    row["steps"] = _checkpoint_step(last) if last.is_file() else row["model_step"]
                del stage
                row.update(stats.as_dict())
                display.phase(f"{label}: scoring", len(frames))
                rendered = np.memmap(stored, np.uint8, "r", shape=(len(frames), size, size, 3))
                try:
                    if truth_tracked is None and lmd_note is None:
                        try:
                            from geneface.metrics.landmarks import get_tracker

                            tracker = get_tracker(tracker)  # one tracker for every video
                            truth_tracked = track_truth(ds, frames, tracker)
                        except Exception as exc:  # no tracker here: image scores only
                            lmd_note = f"no LMD: the real frames could not be re-tracked ({one_line(exc)})"
                    real = (ds.frame(int(f)) for f in frames)
                    scores = score_frames(_advancing(rendered, display), real, boxes, truth_tracked, size,
                                          rendered_again=(np.array(f) for f in rendered), tracker=tracker)
                finally:
                    del rendered
                    stored.unlink(missing_ok=True)
                row["scores"] = scores
                columns.append((choice.name, [shown_frames[k] for k in picks]))
                if choice.snapshots:
                    row["snapshots"] = [
                        _score_snapshot(path, ds, frames, motion, camera, boxes, runs_dir / f".{choice.name}.snapshot.raw",
                                        render_device, display, f"{label}: snapshot {path.stem}")
                        for path in snapshot_files]
                    taken = {s.get("snapshot_minutes") for s in row["snapshots"]}
                    row["snapshots"] += [{"snapshot_minutes": m, "error": "not taken: the run ended before this mark"}
                                         for m in choice.snapshots if m not in taken]
            except Exception as exc:  # any failure of one renderer is its row's, never the bench's
                row["status"], row["error"] = "failed", f"{stage_phase} failed: {one_line(exc)}"
                row.setdefault("scores", None)
                columns.append((choice.name, None))
                echo(f"{choice.name}: {row['error']}")
            finally:
                for leftover in [*runs_dir.glob(f".{choice.name}.frames.raw"),
                                 *runs_dir.glob(f".{choice.name}.snapshot.raw")]:
                    leftover.unlink(missing_ok=True)
            rows.append(row)
            display.done(choice.name)
    finally:
        display.close()

    settings = {
        "data": str(data), "size": size, "n_frames": ds.n_frames,
        "held_out": [int(held_out_start(ds.n_frames)), ds.n_frames], "held_out_frames": len(frames),
        "budget_minutes": budget, "steps": loop.get("steps") or BENCH_STEPS, "device": device,
        "render_device": render_device, "threads": loop.get("threads"), "seed": loop.get("seed"),
        "shown_frames": [int(frames[k]) for k in picks],
        "fps": FPS_DEFINITION, "memory": MEMORY_DEFINITION,
        "lmd": "mouth points 48-67 re-tracked from rendered and real frames, each set centred, mean L2 in pixels "
               "at the dataset's size; frames without a face in either left out (lmd_frames: scored)",
        "face_box": "box of the real frame's 68 tracked points grown by 10 %",
    }
    if lmd_note:
        settings["lmd_note"] = lmd_note
    image = side_by_side(columns, [f"frame {int(frames[k])}" for k in picks])
    return {"benchmark": "renderers", "settings": settings, "rows": rows, "image": image}


def _score_snapshot(path: Path, ds, frames, motion: Motion, camera: Camera, boxes, stored: Path, device: str,
                    display: _Display, phase: str) -> dict:
    """A training snapshot (`TrainConfig.snapshot_minutes`) rendered on the held-out frames and
    scored (PSNR and SSIM; no LMD or speed, which the final model's row has)."""
    from geneface.core.checkpoint import read_checkpoint

    meta = read_checkpoint(path).meta
    entry = {"snapshot_minutes": meta.get("snapshot_minutes"), "elapsed_minutes": meta.get("elapsed_minutes"),
             "step": meta.get("step"), "file": f"snapshots/{path.name}"}  # in the renderer's run folder
    size = ds.size
    display.phase(phase, len(frames))
    try:
        with open(stored, "wb") as handle:
            stage, _ = render_timed(lambda: load_renderer(path, device, f"snapshot {path.name}"), motion, camera,
                                    lambda k, frame: handle.write(np.ascontiguousarray(frame).tobytes()),
                                    (size, size), display.advance)
        del stage
        rendered = np.memmap(stored, np.uint8, "r", shape=(len(frames), size, size, 3))
        try:
            scores = score_frames(rendered, (ds.frame(int(f)) for f in frames), boxes)
        finally:
            del rendered
        entry.update({k: scores[k] for k in ("psnr", "ssim", "psnr_face", "ssim_face")})
    except Exception as exc:  # a snapshot that cannot be scored is noted; the row stands
        entry["error"] = one_line(exc)
    finally:
        stored.unlink(missing_ok=True)
    return entry


def _advancing(frames, display: _Display):
    for frame in frames:
        yield frame
        display.advance(1)


def _checkpoint_step(path: Path) -> Optional[int]:
    """The training step a checkpoint records (its `meta.step`), without loading its tensors."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("geneface.meta", "{}"))
        step = meta.get("step")
        return None if step is None else int(step)
    except Exception:
        return None


# -- report ---------------------------------------------------------------------------------

COLUMNS = ("renderer", "source", "steps", "train min", "PSNR", "SSIM", "PSNR face", "SSIM face", "LMD px", "fps",
           "render MiB", "error")


def _num(value, digits: int = 2, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value * scale:.{digits}f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def format_table(result: dict) -> str:
    """The markdown table of a `compare_renderers` result, one line per renderer."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(" --- " for _ in COLUMNS) + "|"]
    for row in result["rows"]:
        s = row.get("scores") or {}
        lmd = "-" if s.get("lmd_px") is None else f"{s['lmd_px']:.2f} ({s['lmd_frames']}/{s['frames']})"
        mem = row.get("memory_mb")
        cells = [
            row["name"],
            row["source"],
            "-" if row.get("steps") is None else str(row["steps"]),
            _num(row.get("train_seconds"), 1, 1 / 60),
            _num(s.get("psnr")),
            _num(s.get("ssim"), 3),
            _num(s.get("psnr_face")),
            _num(s.get("ssim_face"), 3),
            lmd,
            _num(row.get("fps"), 1),
            "-" if mem is None else f"{mem:.0f}" + (" (cuda)" if row.get("memory_kind") == "cuda" else ""),
            _cell(row.get("error") or ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


SNAPSHOT_COLUMNS = ("renderer", "at min", "step", "PSNR", "SSIM", "PSNR face", "SSIM face", "reaches the final PSNR of")


def format_snapshots(result: dict) -> str:
    """The table of the `--snapshot` models (empty when none): each one's scores, and which
    renderers' final models (trained for the whole budget, or loaded) it already matches in PSNR."""
    finals = [(r["name"], r["scores"]["psnr"], r.get("train_seconds")) for r in result["rows"]
              if r.get("scores") and r["scores"].get("psnr") is not None]
    lines = []
    for row in result["rows"]:
        for snap in row.get("snapshots") or []:
            psnr = snap.get("psnr")
            reached = [f"{name} ({value:.2f} dB" + (f", {seconds / 60:.1f} min)" if seconds else ")")
                       for name, value, seconds in finals if name != row["name"] and psnr is not None and psnr >= value]
            cells = [row["name"], _num(snap.get("elapsed_minutes") or snap.get("snapshot_minutes"), 1),
                     "-" if snap.get("step") is None else str(snap["step"]), _num(psnr), _num(snap.get("ssim"), 3),
                     _num(snap.get("psnr_face")), _num(snap.get("ssim_face"), 3),
                     _cell(snap["error"]) if snap.get("error") else (", ".join(reached) or "none")]
            lines.append("| " + " | ".join(cells) + " |")
    if not lines:
        return ""
    head = ["| " + " | ".join(SNAPSHOT_COLUMNS) + " |", "|" + "|".join(" --- " for _ in SNAPSHOT_COLUMNS) + "|"]
    return "\n".join(head + lines)


def format_markdown(result: dict) -> str:
    s = result["settings"]
    start, n = s["held_out"]
    head = (f"# Renderers on {s['data']}\n\n"
            f"Held out: frames {start}-{n - 1} of {n} (the last 1/11; {s['held_out_frames']} scored), rendered at "
            f"{s['size']} x {s['size']} px from their own tracked landmarks and camera. Each renderer trained with its "
            f"recipe's defaults for a {s['budget_minutes']:g} min wall-clock budget (source `trained`) or was loaded "
            f"from a finished run (`run`). Rendering on {s['render_device']}.\n\n"
            f"- PSNR (dB) and SSIM: mean over frames, full frame and face box ({s['face_box']}).\n"
            f"- LMD: {s['lmd']}; in brackets frames scored / frames.\n"
            f"- fps: {s['fps']}.\n"
            f"- render MiB: {s['memory']}.\n"
            f"- train min: wall clock of the whole training call (data, model, loop, export); steps: optimiser steps.\n")
    if s.get("lmd_note"):
        head += f"- {s['lmd_note']}\n"
    notes = [f"- {r['name']}: {r['note']}" for r in result["rows"] if r.get("note")]
    notes += [f"- {r['name']}: loaded run, {r['stopped']}" for r in result["rows"]
              if r["source"] == "run" and r.get("stopped")]
    notes += [f"- {r['name']}: {r['scores']['lmd_note']}" for r in result["rows"]
              if r.get("scores") and r["scores"].get("lmd_note")]
    skipped = [f"- {x['name']}: skipped ({x['reason']})" for x in result.get("skipped", [])]
    tail = "\n" + "\n".join(notes + skipped) + "\n" if notes or skipped else ""
    snapshots = format_snapshots(result)
    if snapshots:
        tail += ("\n## Earlier in training (--snapshot)\n\nThe model as it was when its training's wall clock "
                 "passed each mark (at min: when it was taken), scored on the same held-out frames; the last column "
                 "lists the renderers whose final model's PSNR it already matches.\n\n" + snapshots + "\n")
    return (head + "\n" + format_table(result) + "\n" + tail
            + "\n![held-out frames: truth and each renderer](side_by_side.png)\n")


def write_report(result: dict, folder: Path) -> tuple[Path, Path, Path]:
    """FOLDER/renderers.json, renderers.md and side_by_side.png (the folder is the bench's
    temporary one: the CLI renames it when everything is written)."""
    from geneface.core.atomic import atomic_output

    folder = Path(folder)
    image = result.get("image")
    record = {k: v for k, v in result.items() if k != "image"}
    paths = folder / "renderers.json", folder / "renderers.md", folder / "side_by_side.png"
    with atomic_output(paths[0]) as tmp:
        tmp.write_text(json.dumps(record, indent=2, allow_nan=False, default=_json_default) + "\n")
    with atomic_output(paths[1]) as tmp:
        tmp.write_text(format_markdown(record))
    if image is not None:
        with atomic_output(paths[2]) as tmp:
            write_png(tmp, image)
    return paths


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if not math.isfinite(float(value)) else float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def run_bench(data: Path, choices: Sequence[RendererChoice], budget: float, out: Path, overwrite: bool = False,
              skipped: Sequence[dict] = (), **kwargs) -> dict:
    """`compare_renderers` into a temporary folder next to `out` (runs in runs/NAME), the report
    written there, then the folder renamed to `out`: an interrupted bench leaves nothing."""
    from geneface.core.atomic import atomic_directory

    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        result = compare_renderers(data, choices, budget, tmp / "runs", **kwargs)
        result["skipped"] = list(skipped)
        for row in result["rows"]:  # trained runs: where they will be once the folder is renamed
            if row["source"] == "trained" and row["run"]:
                row["run"] = str(out / "runs" / row["name"])
        write_report(result, tmp)
    return result
