"""`geneface process-corpus`: many clips (an LRS3-like tree) -> one dataset per clip.

- Clips are found recursively (video extensions below); IN/spk/clip.mp4 -> OUT/spk/clip/.
- A clip is skipped when its dataset is already complete with the same file size and the
  same settings, so a second run does no work (no hashing of thousands of files either).
- Each clip runs in its own worker process (the `worker` command: `python -m geneface.app.process`), `workers`
  at a time: a clip that crashes its process (a segfault in a native library included) fails
  alone, and the others go on. A worker resumes the clip's unfinished work folder, so a
  corpus run killed half-way continues where it stopped.
- The outcome per clip goes to OUT/corpus_report.json (rewritten after every clip) and a
  summary of failures is printed at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Optional

import attrs

from geneface.core import dataset as fmt
from geneface.core.atomic import atomic_output
from geneface.core.config import unstructure
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


def find_clips(in_dir: Path) -> list[Path]:
    return sorted(
        p for p in in_dir.rglob("*")
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not any(part.startswith(".") for part in p.relative_to(in_dir).parts)
    )


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


def _run_worker(worker: list[str], clip: Path, out: Path, config: ProcessConfig) -> tuple[bool, dict | str, float]:
    """(ok, result or error, seconds the worker ran: from its start, not from when it was queued)."""
    started = time.perf_counter()
    ok, result = _worker(worker, clip, out, config)
    return ok, result, round(time.perf_counter() - started, 2)


def _worker(worker: list[str], clip: Path, out: Path, config: ProcessConfig) -> tuple[bool, dict | str]:
    cmd = [*worker, json.dumps(unstructure(config)), str(clip), str(out)]
    env = dict(os.environ)
    env.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ logging
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode == 0:
        try:
            return True, json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return False, f"worker printed no result (stdout: {proc.stdout[-200:]!r})"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    if errors:
        return False, errors[-1][len("error:"):].strip()
    if proc.returncode < 0:
        return False, f"worker killed by signal {-proc.returncode}"
    tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
    return False, f"worker exited with code {proc.returncode}: {tail}"


def _write_report(out_dir: Path, outcomes: list[ClipOutcome], started: float) -> Path:
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    report = {
        "clips": [attrs.asdict(o) for o in sorted(outcomes, key=lambda o: o.clip)],
        "counts": counts,
        "seconds": round(time.perf_counter() - started, 2),
    }
    path = out_dir / REPORT
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return path


def process_corpus(
    in_dir: Path,
    out_dir: Path,
    config: Optional[ProcessConfig] = None,
    workers: int = 1,
    quiet: bool = False,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
    *,
    worker: list[str],
) -> list[ClipOutcome]:
    """Process every clip under `in_dir` into `out_dir`; returns one outcome per clip.
    `worker`: the command that processes one clip (`CONFIG_JSON VIDEO OUT` appended; its last
    stdout line a JSON result), handed down by the application layer."""
    config = config or ProcessConfig()
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise UsageError(f"{in_dir}: no such folder")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if out_dir.resolve() == in_dir.resolve() or in_dir.resolve() in out_dir.resolve().parents:
        raise UsageError("the output folder must not lie inside the input folder")
    clips = find_clips(in_dir)
    if not clips:
        raise UsageError(f"{in_dir}: no video files ({', '.join(VIDEO_EXTENSIONS)}) found")
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    outcomes: list[ClipOutcome] = []
    todo = []
    for clip in clips:
        rel = clip.relative_to(in_dir)
        out = out_dir / rel.with_suffix("")
        manifest = is_done(clip, out, config)
        if manifest is not None:
            outcomes.append(ClipOutcome(str(rel), str(out.relative_to(out_dir)), "skipped", n_frames=manifest["n_frames"]))
        else:
            todo.append((clip, rel, out))
    log(f"{len(clips)} clips: {len(outcomes)} already done, {len(todo)} to process with {workers} worker(s)")

    from geneface.core.progress import ProgressBars

    with ProgressBars(quiet) as bars:
        advance = bars.task("clips", len(todo), unit="clip") if todo else (lambda n=1: None)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_run_worker, worker, clip, out, config): (clip, rel, out) for clip, rel, out in todo}
            for future in as_completed(futures):
                clip, rel, out = futures[future]
                ok, result, seconds = future.result()
                if ok:
                    outcome = ClipOutcome(str(rel), str(out.relative_to(out_dir)), "done", seconds, n_frames=result.get("n_frames"))
                else:
                    outcome = ClipOutcome(str(rel), str(out.relative_to(out_dir)), "failed", seconds, error=str(result))
                    log(f"failed: {rel}: {result}")
                outcomes.append(outcome)
                _write_report(out_dir, outcomes, started)
                advance(1)
    _write_report(out_dir, outcomes, started)
    return outcomes
