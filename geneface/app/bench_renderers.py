"""`geneface bench renderers`: every trainable renderer on one person, the same split and budget.

Each renderer is trained on the dataset through the same code path as `geneface train`
(`geneface.app.train.train_plugin`: the plugin's recipe with its defaults, the shared
Trainer), for the same wall-clock budget (`TrainConfig.max_minutes`, with the step count set
out of reach so the budget is what ends every run; a recipe that fits in closed form just
fits), or is loaded from a finished run folder. A renderer that fails, at any point and for
any reason, gets its error in its row and the others go on.

Then every renderer renders the dataset's held-out frames (the last 1/11, tracking failures
left out: `Dataset.held_out_frames`) from their own tracked landmarks and camera, at the
dataset's resolution (on a person of several clips, each frame over its own clip's plate where
the renderer holds one per clip: `metrics.render_cost.render_by_clip`), and is scored against the real frames: PSNR, SSIM and LMD
(`geneface.metrics.held_out`), speed and memory (`geneface.metrics.render_cost`), and
training's wall-clock seconds (the whole training call: data, model, loop, export) and
optimiser steps.

Beside it: `bench_renderers_choice` (which renderers, their flags checked before any work),
`bench_renderers_report` (renderers.json, renderers.md, side_by_side.png).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import attrs
import numpy as np

from geneface.app.bench_renderers_choice import RendererChoice, snapshot_path
from geneface.core.progress import PhaseProgress
from geneface.errors import one_line
from geneface.metrics.held_out import face_boxes, held_out_frames, nearest_training_frames, score_frames, track_truth
from geneface.metrics.render_cost import FPS_DEFINITION, MEMORY_DEFINITION, clip_runs, load_renderer, render_timed

BENCH_STEPS = 10**9  # out of reach: the time budget ends every run
TRUTH = "truth"  # the label of the real frames' column
# The baseline row every bench ends with: for each held-out frame, the training frame nearest in
# tracked image points, head pose included (geneface.metrics.held_out.nearest_training_frames):
# what a viewer gets by copying the video. `nearest_frame` (a renderer) matches canonical
# landmarks and so ignores pose; this copy does not, and on a person who sits still it is close
# to the truth.
COPY = "copy"


@attrs.define(eq=False)
class _HeldOut:
    """What every renderer is scored on: the held-out frames, their motion, camera and face
    boxes, the frames shown in the image; the real frames re-tracked once, at the first
    renderer that gets that far (`lmd_note` when they cannot be)."""

    ds: object
    frames: np.ndarray
    picks: list
    tracker: object = None
    truth: object = None
    lmd_note: Optional[str] = None
    motion: object = attrs.field(init=False)
    camera: object = attrs.field(init=False)
    boxes: list = attrs.field(init=False)
    clips: list = attrs.field(init=False)  # (clip, start, stop) runs: each frame over its own clip's plate

    def __attrs_post_init__(self) -> None:
        self.motion, self.camera = self.ds.motion(self.frames), self.ds.camera(self.frames)
        self.boxes = face_boxes(self.ds, self.frames)
        self.clips = clip_runs(self.ds.clip_index()[self.frames])

    def retrack(self, registry) -> None:
        if self.truth is None and self.lmd_note is None:
            try:
                from geneface.app.components import face_tracker

                self.tracker = face_tracker(self.tracker, registry)  # one tracker for every video
                self.truth = track_truth(self.ds, self.frames, self.tracker)
            except Exception as exc:  # no tracker here: image scores only
                self.lmd_note = f"no LMD: the real frames could not be re-tracked ({one_line(exc)})"


def compare_renderers(data: Path, choices: Sequence[RendererChoice], budget: float, runs_dir: Path, registry,
                      loop: Optional[dict] = None, device: str = "auto", progress: bool = False,
                      shown: int = 3, tracker=None, echo: Callable[[str], None] = lambda s: None) -> dict:
    """Train (or load) and score every renderer; a JSON-ready dict plus the comparison image.

    Runs are trained into `runs_dir/NAME`; `registry` (the application's) loads the models.
    Returns {"benchmark", "settings", "rows", "image"}: one row per renderer in order (name,
    origin, source, run, status "ok" or "failed", error, train_seconds, steps, stopped,
    scores, speed and memory), and `image` the side-by-side picture (uint8 RGB, not JSON: the
    writer pops it). A failing renderer has its error in its row; every other one is still scored.
    """
    from geneface.core.dataset import Dataset
    from geneface.core.person import open_dataset
    from geneface.core.image_grid import pick_rows, side_by_side
    from geneface.training.distributed import choose_device

    data = Path(data).resolve()
    ds = open_dataset(data)
    frames = held_out_frames(ds)
    held = _HeldOut(ds, frames, pick_rows(len(frames), shown), tracker)
    render_device = str(choose_device(device))
    loop = {**(loop or {}), "device": device}

    rows, columns = [], [(TRUTH, [ds.frame(int(frames[k])) for k in held.picks])]
    display = PhaseProgress(progress, len(choices), "renderers")
    try:
        for i, choice in enumerate(choices):
            bench = _Bench(choice, f"[{i + 1}/{len(choices)}] {choice.name}", data, held, runs_dir, registry,
                           render_device, display)
            row, picture = bench.run(budget, loop, echo)
            rows.append(row)
            columns.append((choice.name, picture))
            display.done(choice.name)
    finally:
        display.close()
    row, picture = copy_row(held, registry)
    rows.append(row)
    columns.append((COPY, picture))

    settings = {
        "data": str(data), "size": ds.size, "n_frames": ds.n_frames,
        "held_out": list(ds.held_out_range()), "held_out_frames": len(frames),
        "budget_minutes": budget, "steps": loop.get("steps") or BENCH_STEPS, "device": device,
        "render_device": render_device, "threads": loop.get("threads"), "seed": loop.get("seed"),
        "shown_frames": [int(frames[k]) for k in held.picks],
        "fps": FPS_DEFINITION, "memory": MEMORY_DEFINITION,
        "lmd": "mouth points 48-67 re-tracked from rendered and real frames, each set centred, mean L2 in pixels "
               "at the dataset's size; frames without a face in either left out (lmd_frames: scored)",
        "face_box": "box of the real frame's 68 tracked points grown by 10 %",
        "copy": "baseline: each held-out frame replaced by the training frame nearest in tracked 68 image points "
                "(head pose included): the video copied",
    }
    if held.lmd_note:
        settings["lmd_note"] = held.lmd_note
    image = side_by_side(columns, [f"frame {int(frames[k])}" for k in held.picks])
    return {"benchmark": "renderers", "settings": settings, "rows": rows, "image": image}


def copy_row(held: _HeldOut, registry) -> tuple[dict, Optional[list]]:
    """The `copy` baseline's row (scored as a renderer is, without training or speed) and its
    frames shown in the image."""
    row = {"name": COPY, "origin": "geneface.metrics.held_out.nearest_training_frames", "source": "baseline",
           "run": None, "status": "ok", "error": None, "train_seconds": None, "steps": None, "stopped": None}
    try:
        ds = held.ds
        nearest = nearest_training_frames(ds, held.frames)
        row["copied_frames"] = nearest
        held.retrack(registry)
        copies = (ds.frame(i) for i in nearest)
        row["scores"] = score_frames(copies, (ds.frame(int(f)) for f in held.frames), held.boxes, held.truth,
                                     ds.size, rendered_again=(ds.frame(i) for i in nearest), tracker=held.tracker)
        return row, [ds.frame(nearest[k]) for k in held.picks]
    except Exception as exc:  # the baseline failing never fails the bench
        row.update(status="failed", error=f"baseline failed: {one_line(exc)}", scores=None)
        return row, None


@attrs.define(eq=False)
class _Bench:
    """One renderer of the bench: trained (or loaded), rendered, scored; its report row."""

    choice: RendererChoice
    label: str
    data: Path
    held: _HeldOut
    runs_dir: Path
    registry: object
    device: str
    display: PhaseProgress

    def run(self, budget: float, loop: dict, echo: Callable[[str], None]) -> tuple[dict, Optional[list]]:
        """(its row, its frames shown in the image: None when it failed)."""
        choice = self.choice
        row = {"name": choice.name, "origin": str(choice.entry.origin),
               "source": "run" if choice.run is not None else "trained", "run": None, "status": "ok",
               "error": None, "train_seconds": None, "steps": None, "stopped": None}
        phase = "training"
        try:
            if choice.run is not None:
                model, snapshot_files = self._loaded(row)
            else:
                model, snapshot_files = self._trained(row, budget, loop)
            phase = "evaluation"
            picture = self._scored(row, model)
            if choice.snapshots:
                row["snapshots"] = [self._snapshot(path) for path in snapshot_files]
                taken = {s.get("snapshot_minutes") for s in row["snapshots"]}
                row["snapshots"] += [{"snapshot_minutes": m, "error": "not taken: the run ended before this mark"}
                                     for m in choice.snapshots if m not in taken]
            return row, picture
        except Exception as exc:  # any failure of one renderer is its row's, never the bench's
            row["status"], row["error"] = "failed", f"{phase} failed: {one_line(exc)}"
            row.setdefault("scores", None)
            echo(f"{choice.name}: {row['error']}")
            return row, None
        finally:
            for leftover in [*self.runs_dir.glob(f".{choice.name}.frames.raw"),
                             *self.runs_dir.glob(f".{choice.name}.snapshot.raw")]:
                leftover.unlink(missing_ok=True)

    def _loaded(self, row: dict) -> tuple[Path, list]:
        run = Path(self.choice.run)
        row["run"] = str(self.choice.run)
        try:
            info = json.loads((run / "run.json").read_text())
        except (OSError, ValueError):
            info = {}
        if info.get("data") and Path(info["data"]).resolve() != self.data:
            row["note"] = f"trained on {info['data']}, not on {self.data}"
        row["stopped"] = (info.get("stopped") or {}).get("reason")
        return run / "model.safetensors", [snapshot_path(run, m) for m in self.choice.snapshots]

    def _trained(self, row: dict, budget: float, loop: dict) -> tuple[Path, list]:
        """Train for the budget through `geneface train`'s code path."""
        from geneface.app.train import train_plugin

        out = self.runs_dir / self.choice.name
        row["run"] = str(out)
        seconds = budget * 60.0
        self.display.phase(f"{self.label}: training ({budget:g} min budget, s)", math.ceil(seconds))
        started = time.monotonic()

        def on_step(step: int) -> None:
            self.display.set(min(seconds, time.monotonic() - started), f"step {step}")

        result = train_plugin(self.choice.entry, [self.data], out, args=self.choice.args,
                              loop={**loop, "steps": loop.get("steps") or BENCH_STEPS, "max_minutes": budget,
                                    "snapshot_minutes": self.choice.snapshots},
                              progress=False, on_step=on_step, registry=self.registry)
        self.display.set(seconds, force=True)
        stopped = result.get("stopped")
        row.update({"train_seconds": time.monotonic() - started, "steps": int(result.get("step", 0)),
                    "fitted": bool(result.get("fitted")), "stopped": None if not stopped else stopped.get("reason")})
        return Path(result["model"]), list(result.get("snapshots") or [])

    def _scored(self, row: dict, model: Path) -> list:
        """Render the held-out frames (timed, memory measured) and score them; the frames shown."""
        held, name, size = self.held, self.choice.name, self.held.ds.size
        n = len(held.frames)
        self.display.phase(f"{self.label}: rendering held-out frames", n)
        stored = self.runs_dir / f".{name}.frames.raw"
        stored.parent.mkdir(parents=True, exist_ok=True)
        shown: dict[int, np.ndarray] = {}
        with open(stored, "wb") as handle:
            def sink(k, frame):
                handle.write(np.ascontiguousarray(frame).tobytes())
                if k in held.picks:
                    shown[k] = frame.copy()

            stage, stats = render_timed(lambda: load_renderer(self.registry, model, self.device, f"renderer {name}"),
                                        held.motion, held.camera, sink, (size, size), self.display.advance,
                                        held.clips)
        row["model_step"] = _step(model)  # the step of the model scored (best by validation)
        if row["steps"] is None:  # a loaded run: the steps it trained, from its last model
            last = Path(self.choice.run) / "last.safetensors"
            row["steps"] = _step(last) if last.is_file() else row["model_step"]
        del stage
        row.update(stats.as_dict())
        self.display.phase(f"{self.label}: scoring", n)
        rendered = np.memmap(stored, np.uint8, "r", shape=(n, size, size, 3))
        try:
            held.retrack(self.registry)
            real = (held.ds.frame(int(f)) for f in held.frames)
            row["scores"] = score_frames(_advancing(rendered, self.display), real, held.boxes, held.truth, size,
                                         rendered_again=(np.array(f) for f in rendered), tracker=held.tracker)
        finally:
            del rendered
            stored.unlink(missing_ok=True)
        return [shown[k] for k in held.picks]

    def _snapshot(self, path: Path) -> dict:
        """A training snapshot (`TrainConfig.snapshot_minutes`) rendered on the held-out frames
        and scored (PSNR and SSIM; no LMD or speed, which the final model's row has)."""
        from geneface.core.checkpoint import read_checkpoint

        held, size = self.held, self.held.ds.size
        meta = read_checkpoint(path).meta
        entry = {"snapshot_minutes": meta.get("snapshot_minutes"), "elapsed_minutes": meta.get("elapsed_minutes"),
                 "step": meta.get("step"), "file": f"snapshots/{path.name}"}  # in the renderer's run folder
        stored = self.runs_dir / f".{self.choice.name}.snapshot.raw"
        self.display.phase(f"{self.label}: snapshot {path.stem}", len(held.frames))
        try:
            with open(stored, "wb") as handle:
                stage, _ = render_timed(lambda: load_renderer(self.registry, path, self.device, f"snapshot {path.name}"),
                                        held.motion, held.camera,
                                        lambda k, frame: handle.write(np.ascontiguousarray(frame).tobytes()),
                                        (size, size), self.display.advance, held.clips)
            del stage
            rendered = np.memmap(stored, np.uint8, "r", shape=(len(held.frames), size, size, 3))
            try:
                scores = score_frames(rendered, (held.ds.frame(int(f)) for f in held.frames), held.boxes)
            finally:
                del rendered
            entry.update({k: scores[k] for k in ("psnr", "ssim", "psnr_face", "ssim_face")})
        except Exception as exc:  # a snapshot that cannot be scored is noted; the row stands
            entry["error"] = one_line(exc)
        finally:
            stored.unlink(missing_ok=True)
        return entry


def _advancing(frames, display: PhaseProgress):
    for frame in frames:
        yield frame
        display.advance(1)


def _step(path: Path) -> Optional[int]:
    """The training step a checkpoint records (its `meta.step`), without loading its tensors."""
    from geneface.core.checkpoint import read_meta

    step = read_meta(path).get("step")
    try:
        return None if step is None else int(step)
    except (TypeError, ValueError):
        return None


def run_bench(data: Path, choices: Sequence[RendererChoice], budget: float, out: Path, registry,
              overwrite: bool = False, skipped: Sequence[dict] = (), **kwargs) -> dict:
    """`compare_renderers` into a temporary folder next to `out` (runs in runs/NAME), the report
    written there, then the folder renamed to `out`: an interrupted bench leaves nothing."""
    from geneface.app.bench_renderers_report import write_report
    from geneface.core.atomic import atomic_directory

    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        result = compare_renderers(data, choices, budget, tmp / "runs", registry, **kwargs)
        result["skipped"] = list(skipped)
        for row in result["rows"]:  # trained runs: where they will be once the folder is renamed
            if row["source"] == "trained" and row["run"]:
                row["run"] = str(out / "runs" / row["name"])
        write_report(result, tmp)
    return result
