"""`geneface process-corpus`: many clips (an LRS3-like tree) -> one dataset per clip.

- Clips are found recursively (video extensions below); IN/spk/clip.mp4 -> OUT/spk/clip/.
- A clip is skipped when its dataset is already complete with the same file size and the
  same settings, so a second run does no work (no hashing of thousands of files either).
- A `ClipRunner` processes the clips: `corpus_pool.PoolRunner` runs them in `workers` worker
  processes on this machine (`python -m geneface.app.process --serve`), each reused for up to
  50 clips;
  `corpus_ray.RayRunner` runs one Ray task per clip on a local or remote Ray cluster. Either
  way a clip that crashes its process (a segfault in a native library included) fails alone,
  and the others go on. A clip's run resumes its unfinished work folder, so a corpus run killed
  half-way continues where it stopped, and a dataset appears only when complete.
- The outcome per clip of this run goes to OUT/corpus_report.json (rewritten every few seconds
  and at the end, when it also gives what OUT holds, this run's datasets or another's); a
  summary of failures is printed at the end; OUT/corpus_index.npz indexes every finished
  dataset in OUT for training, this run's or not (geneface.core.corpus_index), and each
  damaged one is named.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol, Sequence

import attrs

from geneface.core import dataset as fmt
from geneface.core.atomic import atomic_output
from geneface.core.config import unstructure
from geneface.core.corpus_index import INDEX, rebuild_index
from geneface.errors import UsageError
from geneface.processing.config import ProcessConfig

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
REPORT = "corpus_report.json"


@attrs.frozen
class ClipOutcome:
    clip: str  # path relative to the input folder
    dataset: str  # path relative to the output folder
    status: str  # "done", "skipped" or "failed"
    seconds: float = 0.0
    n_frames: Optional[int] = None
    error: Optional[str] = None


def find_clips(in_dir: Path, log: Callable[[str], None] = lambda msg: None) -> list[Path]:
    """Every video below `in_dir` (hidden names skipped), in path order. Links to folders are
    not followed (a link back up the tree would be walked for ever, one to a sibling would give
    its clips twice): each link loop is named on one line through `log`, other folder links are
    counted on one line."""
    clips, links, loops = [], [], []
    for folder, dirs, files in os.walk(in_dir):  # followlinks=False: links stay in `dirs`, unwalked
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in list(dirs):
            link = here / name
            if link.is_symlink():
                dirs.remove(name)
                try:
                    target = link.resolve(strict=True)
                except (OSError, RuntimeError):  # a chain of links that never ends
                    target = None
                real = here.resolve()
                (loops if target is None or target == real or target in real.parents else links).append(link)
        clips += [here / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in VIDEO_EXTENSIONS
                  and (here / f).is_file()]
    for link in loops:
        log(f"skipped {link}: a link loop (it leads back to a folder that contains it)")
    if links:
        log(f"skipped {len(links)} link(s) to folders, not followed (first: {links[0]}); link the videos, "
            "or copy the folders, to include them")
    return sorted(clips)


# Settings that only decide whether a clip is refused, never what a finished dataset holds: a
# rerun with another threshold keeps the clips already done and retries the refused ones.
ACCEPTANCE_SETTINGS = ("max_failed", "min_face_px")


def _output_settings(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k not in ACCEPTANCE_SETTINGS}


def is_done(clip: Path, out: Path, config: ProcessConfig) -> Optional[dict]:
    """The manifest of `out` if it is a finished dataset of this clip with these settings."""
    try:
        manifest = fmt.read_manifest(out)
    except fmt.DatasetError:
        return None
    source = manifest.get("source", {})
    if source.get("size_bytes") != clip.stat().st_size:
        return None
    if _output_settings(manifest.get("settings") or {}) != _output_settings(unstructure(config)):
        return None
    return manifest


@attrs.frozen
class ClipJob:
    """One clip to process: the video, its path below the input folder, its dataset folder."""

    clip: Path
    rel: Path
    out: Path


@attrs.frozen
class ClipResult:
    ok: bool
    result: Optional[dict] = None  # the worker's result: n_frames, fps
    error: Optional[str] = None
    seconds: float = 0.0  # from the clip's start, not from when it was queued


class ClipRunner(Protocol):
    """How clips get processed: a local process pool (`PoolRunner`) or a Ray cluster
    (geneface.processing.corpus_pool.PoolRunner) or a Ray cluster
    (geneface.processing.corpus_ray.RayRunner). Results come back as clips finish."""

    def describe(self) -> str: ...

    def run(self, config: ProcessConfig, jobs: Sequence[ClipJob]) -> Iterator[tuple[ClipJob, ClipResult]]: ...


@attrs.frozen
class OnDisk:
    """What OUT holds at the end of a run, as the index written then lists it: this run's
    datasets and any other run's (the report's `clips` are this run's alone)."""

    datasets: int
    speakers: int
    frames: int
    skip_training: int
    left_out: list[str]  # one line per damaged dataset the index left out
    index: str = INDEX

    @classmethod
    def of(cls, index, damaged: list) -> "OnDisk":
        return cls(len(index), len(set(index.speaker.tolist())), int(index.n_frames.sum()),
                   int(index.skip_training.sum()), [d.reason for d in damaged])


def _write_report(in_dir: Path, out_dir: Path, outcomes: list[ClipOutcome], started: float,
                  on_disk: Optional[OnDisk] = None) -> Path:
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    report = {
        "input": str(in_dir),  # `clips` and `counts`: this run's, the clips found there
        "clips": [attrs.asdict(o) for o in sorted(outcomes, key=lambda o: o.clip)],
        "counts": counts,
        "seconds": round(time.perf_counter() - started, 2),
        "on_disk": attrs.asdict(on_disk) if on_disk is not None else None,  # null until the index is built
    }
    path = out_dir / REPORT
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return path


REPORT_EVERY_S = 10.0  # the report is rewritten at most this often (it lists every clip: 100k of them at scale)


def process_corpus(
    in_dir: Path,
    out_dir: Path,
    config: Optional[ProcessConfig] = None,
    quiet: bool = False,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
    *,
    runner: ClipRunner,
) -> list[ClipOutcome]:
    """Process every clip under `in_dir` into `out_dir` with `runner`; returns one outcome per
    clip. Writes OUT/corpus_report.json as it goes and OUT/corpus_index.npz (every finished
    dataset) at the end."""
    config = config or ProcessConfig()
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise UsageError(f"{in_dir}: no such folder")
    if out_dir.resolve() == in_dir.resolve() or in_dir.resolve() in out_dir.resolve().parents:
        raise UsageError("the output folder must not lie inside the input folder")
    clips = find_clips(in_dir, log)
    if not clips:
        raise UsageError(f"{in_dir}: no video files ({', '.join(VIDEO_EXTENSIONS)}) found")
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _process(in_dir, out_dir, clips, config, quiet, log, runner)
    except BaseException:
        if created:  # the run stopped before writing anything (e.g. Ray cannot be reached): leave no OUT
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only ever an empty folder
        raise


def _process(in_dir: Path, out_dir: Path, clips: list[Path], config: ProcessConfig, quiet: bool,
             log: Callable[[str], None], runner: ClipRunner) -> list[ClipOutcome]:
    started = time.perf_counter()
    jobs = [ClipJob(clip, clip.relative_to(in_dir), out_dir / clip.relative_to(in_dir).with_suffix("")) for clip in clips]
    from geneface.core.progress import ProgressBars

    with ProgressBars(quiet) as bars:
        outcomes = run_clips(jobs, out_dir, config, log, runner, bars,
                             checkpoint=lambda done: _write_report(in_dir, out_dir, done, started))
        _write_report(in_dir, out_dir, outcomes, started)
        # Every dataset on disk, not only this run's: another run into OUT may have finished
        # some (each then failed here as busy), and its index must not lose them.
        if any(o.status != "failed" for o in outcomes) or (out_dir / INDEX).exists():
            damaged: list = []
            index = rebuild_index(out_dir, lambda total: bars.task("index", total, unit="clip"), damaged)
            for d in damaged:
                log(f"warning: left out of the index: {d.reason}")
            _write_report(in_dir, out_dir, outcomes, started, OnDisk.of(index, damaged))
    return outcomes


def run_clips(jobs: Sequence[ClipJob], out_dir: Path, config: ProcessConfig, log: Callable[[str], None],
              runner: ClipRunner, bars, checkpoint: Optional[Callable[[list[ClipOutcome]], None]] = None
              ) -> list[ClipOutcome]:
    """Process `jobs` (each a video and its dataset folder below `out_dir`) with `runner`: a
    job whose dataset is already finished from the same file with the same settings is skipped
    (`is_done`), the others run; one outcome per job. `bars`: a `ProgressBars`; `checkpoint`
    is handed the outcomes so far at most every REPORT_EVERY_S (the corpus report). What
    `process-corpus` (clips found in a folder) and a person's clips (`geneface process` with
    several videos, geneface.processing.person_process) share."""
    outcomes: list[ClipOutcome] = []
    todo = []
    for job in jobs:
        manifest = is_done(job.clip, job.out, config)
        if manifest is not None:
            outcomes.append(ClipOutcome(str(job.rel), str(job.out.relative_to(out_dir)), "skipped",
                                        n_frames=manifest["n_frames"]))
        else:
            todo.append(job)
    log(f"{len(jobs)} clips: {len(outcomes)} already done, {len(todo)} to process with {runner.describe()}")
    advance = bars.task("clips", len(todo), unit="clip") if todo else (lambda n=1: None)
    frames = bars.task("frames", None, unit="frame") if todo else (lambda n=1: None)
    written = time.perf_counter()
    for job, res in runner.run(config, todo):
        dataset = str(job.out.relative_to(out_dir))
        if res.ok:
            n = (res.result or {}).get("n_frames")
            outcome = ClipOutcome(str(job.rel), dataset, "done", res.seconds, n_frames=n)
            frames(int(n or 0))
        else:
            outcome = ClipOutcome(str(job.rel), dataset, "failed", res.seconds, error=res.error)
            log(f"failed: {job.rel}: {res.error}")
        outcomes.append(outcome)
        advance(1)
        if checkpoint is not None and time.perf_counter() - written > REPORT_EVERY_S:
            checkpoint(outcomes)
            written = time.perf_counter()
    return outcomes
