"""The engine of `geneface process` (one video, or several clips of one person),
`geneface process-corpus` and `geneface dataset av-offset`: the library in geneface.processing, handed the registry (the tracker and audio
encoders a config names come from it) and, for a corpus, what processes one clip:
`process_clip`, which the local pool's worker processes (`python -m geneface.app.process
--serve FD`, `serve`) and a Ray task's worker run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable, Optional

from geneface.core.config import structure
from geneface.errors import GenefaceError
from geneface.processing.config import ProcessConfig

WORKER = [sys.executable, "-m", "geneface.app.process"]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def process_video(video: Path, out: Path, config: Optional[ProcessConfig] = None, resume: bool = False,
                  overwrite: bool = False, quiet: bool = False, log: Callable[[str], None] = _stderr, *,
                  registry):
    """One video into the dataset folder `out` (geneface.processing.process.process_video)."""
    from geneface.processing.process import process_video as process

    return process(video, out, config, resume=resume, overwrite=overwrite, quiet=quiet, log=log, registry=registry)


def _runner(workers: int):
    """The local pool of corpus workers, `workers` clips at a time."""
    from geneface.errors import UsageError
    from geneface.processing.corpus_pool import PoolRunner

    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    return PoolRunner(tuple(WORKER), workers)


def process_person(inputs: list[Path], person: Path, config: Optional[ProcessConfig] = None, workers: int = 1,
                   identity: str = "refuse", overwrite: bool = False, quiet: bool = False,
                   log: Callable[[str], None] = _stderr, *, registry):
    """Several clips of one person (videos, folders of videos, .txt lists of clips) into the
    person folder `person` (geneface.processing.person_process), `workers` clips at a time in
    the corpus pool. The tracker and encoders are looked up first, so a mistyped name fails
    before any clip starts."""
    from geneface.processing.person_process import expand_inputs, process_person as process

    config = config or ProcessConfig()
    registry.get("face_tracker", config.tracker, where="--tracker")
    for name in () if config.no_audio else config.audio_encoders:
        registry.get("audio_encoder", name, where="--audio-encoder")
    clips = expand_inputs(inputs, log)
    return process(clips, person, config, runner=_runner(workers), identity=identity, overwrite=overwrite,
                   quiet=quiet, log=log)


def process_corpus(in_dir: Path, out_dir: Path, config: Optional[ProcessConfig] = None, workers: int = 1,
                   quiet: bool = False, log: Callable[[str], None] = _stderr, ray: Optional[str] = None,
                   cpus_per_clip: float = 1.0, memory_per_clip_gb: Optional[float] = 2.0):
    """Every clip under `in_dir` (geneface.processing.corpus): one worker process per clip,
    `workers` at a time, or with `ray` ("local", "auto" or a cluster address) one Ray task per
    clip (geneface.processing.corpus_ray)."""
    from geneface.errors import UsageError
    from geneface.processing.corpus import process_corpus as process

    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if ray is None:
        runner = _runner(workers)
    else:
        from geneface.processing.corpus_ray import RayRunner, import_ray

        import_ray()  # the install hint before any work
        if cpus_per_clip <= 0:
            raise UsageError(f"--cpus-per-clip must be positive, got {cpus_per_clip:g}")
        if memory_per_clip_gb is not None and memory_per_clip_gb <= 0:
            raise UsageError(f"--memory-per-clip must be positive, got {memory_per_clip_gb:g}")
        runner = RayRunner(process_clip, ray, local_cpus=max(1, int(round(workers * cpus_per_clip))),
                           cpus_per_clip=cpus_per_clip, memory_per_clip_gb=memory_per_clip_gb)
    return process(in_dir, out_dir, config, quiet=quiet, log=log, runner=runner)


def index_corpus(corpus: Path, quiet: bool = False, log: Callable[[str], None] = _stderr):
    """`geneface dataset index` (and `dataset av-offset` on an indexed corpus): CORPUS's index
    built from every dataset below it and written; returns it. Each damaged dataset (a manifest
    cut off or of another version, a file missing) is left out and named through `log`."""
    from geneface.core.corpus_index import find_datasets, rebuild_index
    from geneface.core.dataset import DatasetError
    from geneface.core.progress import ProgressBars

    damaged: list = []
    if not find_datasets(Path(corpus), damaged) and not damaged:
        raise DatasetError(f"{corpus}: no datasets inside")
    with ProgressBars(quiet) as bars:
        index = rebuild_index(Path(corpus), lambda total: bars.task("index", total, unit="clip"), damaged)
    for d in damaged:
        log(f"warning: left out of the index: {d.reason}")
    return index


def reestimate_dataset(path: Path, registry, mode: str = "auto") -> dict:
    """`geneface dataset av-offset`: the offset estimated again and `mode` applied."""
    from geneface.processing.offset_stage import reestimate_dataset as reestimate

    return reestimate(path, mode, registry=registry)


def process_clip(config: dict, video: str, out: str) -> tuple[bool, dict | str]:
    """One clip of a corpus, in this process: (True, {n_frames, fps}) or (False, one-line error).
    Resumes the clip's work folder and replaces a stale dataset, as a corpus run must. It runs
    at the top of a worker process (the pool's, a Ray task's), so it makes that process's
    registry itself."""
    from geneface.registry import get_registry

    try:
        cfg = structure(ProcessConfig, config, "config")
        result = process_video(Path(video), Path(out), cfg, resume=True, overwrite=True, quiet=True,
                               registry=get_registry())
    except GenefaceError as exc:
        return False, str(exc)
    except Exception as exc:  # a bug, reported for this clip only
        return False, f"internal error: {type(exc).__name__}: {exc}"
    return True, {"n_frames": result.manifest["n_frames"], "fps": result.manifest["timings"]["fps"]}


def serve(result_fd: int) -> int:
    """A corpus pool's worker: one JSON job a line on stdin ({config, video, out}), one JSON
    answer a line ({ok, result}) on the pipe `result_fd`, until stdin ends."""
    with os.fdopen(result_fd, "w") as answers:
        try:
            for line in sys.stdin:
                job = json.loads(line)
                ok, result = process_clip(job["config"], job["video"], job["out"])
                answers.write(json.dumps({"ok": ok, "result": result}) + "\n")
                answers.flush()
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
    return 0


def worker_main(argv: list[str]) -> int:
    """`python -m geneface.app.process --serve FD [--parent PID]` (geneface.processing.corpus_pool):
    with `--parent`, the worker dies with that process (`die_with_parent`) before anything else."""
    usage = "usage: python -m geneface.app.process --serve FD [--parent PID]"
    if len(argv) not in (2, 4) or argv[0] != "--serve" or (len(argv) == 4 and argv[2] != "--parent"):
        print(usage, file=sys.stderr)
        return 2
    if len(argv) == 4:
        from geneface.processing.corpus_pool import die_with_parent

        die_with_parent(int(argv[3]))
    return serve(int(argv[1]))


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
