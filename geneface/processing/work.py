"""The work folder of `geneface process`: `.NAME.partial` beside the output, with the stages
finished so far (state.json), so an interrupted run can resume; renamed to NAME when done.

Only one run may use it at a time: `process_video` holds the output's lock
(geneface.core.lock) around everything that touches it.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Callable, Optional

from geneface.core.atomic import atomic_output
from geneface.errors import UsageError

STATE_FILE = "state.json"
TRACK_FILE = "track.npz"
RENDER_FILE = "render.npz"


class WorkFolder:
    """`.NAME.partial` next to the output, with the stages finished so far."""

    def __init__(self, out: Path, fingerprint: dict, resume: bool, log: Callable[[str], None]) -> None:
        self.out = out
        self.path = out.with_name(f".{out.name}.partial")
        self.fingerprint = fingerprint
        self._lock = threading.Lock()
        state = self._read_state()
        if self.path.exists() and not (resume and state and state.get("fingerprint") == fingerprint):
            if resume and state:
                log(f"{self.path.name}: left by a run with other settings or another source; starting over")
            shutil.rmtree(self.path)
            state = None
        self.path.mkdir(parents=True, exist_ok=True)
        self.state = state or {"fingerprint": fingerprint, "done": {}}
        if state:
            log(f"resuming: {', '.join(self.state['done']) or 'no'} stage(s) already done")

    def _read_state(self) -> Optional[dict]:
        try:
            return json.loads((self.path / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None

    def done(self, stage: str) -> Optional[dict]:
        return self.state["done"].get(stage)

    def mark(self, stage: str, info: dict) -> None:
        with self._lock:  # the audio stage runs on its own thread
            self.state["done"][stage] = info
            with atomic_output(self.path / STATE_FILE) as tmp:
                tmp.write_text(json.dumps(self.state, indent=1))

    def finish(self, overwrite: bool) -> None:
        for name in (STATE_FILE, TRACK_FILE, RENDER_FILE):
            (self.path / name).unlink(missing_ok=True)
        if self.out.exists():
            if not overwrite:
                raise UsageError(f"{self.out} appeared while processing; not replacing it")
            shutil.rmtree(self.out)
        os.replace(self.path, self.out)

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
