"""The engine of `geneface process`, `geneface process-corpus` and `geneface dataset
av-offset`: the library in geneface.processing, handed the registry (the tracker and audio
encoders a config names come from it) and, for a corpus, the worker command that processes
one clip in its own process: `python -m geneface.app.process CONFIG_JSON VIDEO OUT`.
"""

from __future__ import annotations

import json
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
                  overwrite: bool = False, quiet: bool = False, log: Callable[[str], None] = _stderr,
                  registry=None):
    """One video into the dataset folder `out` (geneface.processing.process.process_video)."""
    from geneface.processing.process import process_video as process
    from geneface.registry import get_registry

    return process(video, out, config, resume=resume, overwrite=overwrite, quiet=quiet, log=log,
                   registry=registry or get_registry())


def process_corpus(in_dir: Path, out_dir: Path, config: Optional[ProcessConfig] = None, workers: int = 1,
                   quiet: bool = False, log: Callable[[str], None] = _stderr):
    """Every clip under `in_dir`, one worker process per clip (geneface.processing.corpus)."""
    from geneface.processing.corpus import process_corpus as process

    return process(in_dir, out_dir, config, workers=workers, quiet=quiet, log=log, worker=WORKER)


def reestimate_dataset(path: Path, mode: str = "auto", registry=None) -> dict:
    """`geneface dataset av-offset`: the offset estimated again and `mode` applied."""
    from geneface.processing.offset_stage import reestimate_dataset as reestimate
    from geneface.registry import get_registry

    return reestimate(path, mode, registry=registry or get_registry())


def worker_main(argv: list[str]) -> int:
    """Process one clip: argv = CONFIG_JSON VIDEO OUT. Last stdout line: a JSON result."""
    config_json, video, out = argv
    try:
        config = structure(ProcessConfig, json.loads(config_json), "config")
        result = process_video(Path(video), Path(out), config, resume=True, overwrite=True, quiet=True)
    except GenefaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, reported for this clip only
        print(f"error: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"n_frames": result.manifest["n_frames"], "fps": result.manifest["timings"]["fps"]}))
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
