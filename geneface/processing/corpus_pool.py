"""`geneface process-corpus`'s local runner: clips in a few long-lived worker processes.

A fresh Python per clip would pay the import of torch and mediapipe and the face models' load
(about 5 s) for every clip, more than an LRS3 utterance takes to process
(benchmarks/bench_corpus.py). So each of the `workers` threads keeps one worker process
(`WORKER_COMMAND --serve FD`) and hands it clips one at a time: a JSON line on its stdin, the
result as a JSON line on the pipe FD (stdout is left to whatever a library prints).

- A clip that fails by its input comes back as its one-line error; the worker goes on.
- A clip that kills its worker (a segfault in native code, the out-of-memory killer, a kill)
  fails alone, with the reason: the worker's last `error:` line or the signal. The next clip
  gets a fresh worker, and the clip's work folder is there for the next run to resume.
- A worker is replaced after `recycle_after` clips, so a slow leak cannot grow over a corpus.
- Workers die with the corpus run: none is left writing alone. Each worker asks for that itself,
  first thing (`die_with_parent`: PR_SET_PDEATHSIG on Linux, then a check that the run that
  started it is still its parent), and anywhere its loop ends when its stdin does. Nothing runs
  between fork and exec (no `preexec_fn`): in a forked child of a threaded process Python code
  can block for ever on a lock another thread held at the fork (seen: a PyAV scaler freed with
  another thread's state, waiting on a condition variable nobody will signal).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Iterator, Optional, Sequence

import attrs

from geneface.core.config import unstructure
from geneface.processing.config import ProcessConfig
from geneface.processing.corpus import ClipJob, ClipResult


PARENT_FLAG = "--parent"  # the worker's argument: the pid of the run that started it
WAIT_S = 30.0  # the longest the pool waits for a worker to exit once its input is closed or it died


def die_with_parent(parent: int) -> None:
    """Called by a worker first thing: die when the thread that started it ends (Linux), so a
    killed corpus run never leaves a worker writing on its own; and if the run is already gone
    (it died before this call), exit now."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # reparented: the run that started this worker has ended
        os._exit(1)


class WorkerProcess:
    """One long-lived worker: `process(config, video, out)` -> (ok, result dict or error)."""

    def __init__(self, command: Sequence[str], recycle_after: int) -> None:
        self.command = list(command)
        self.recycle_after = recycle_after
        self.proc: Optional[subprocess.Popen] = None
        self.results = None
        self.clips = 0
        self.stderr_tail: deque = deque(maxlen=40)

    def _start(self) -> None:
        read, write = os.pipe()
        env = dict(os.environ)
        env.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ logging
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:  # no preexec_fn: the worker sets its own parent-death signal (die_with_parent)
            self.proc = subprocess.Popen([*self.command, "--serve", str(write), PARENT_FLAG, str(os.getpid())],
                                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         pass_fds=(write,), env=env, text=True)
        finally:
            os.close(write)
        self.results = os.fdopen(read, "r")
        self.clips = 0
        tail = self.stderr_tail = deque(maxlen=40)
        stream = self.proc.stderr
        threading.Thread(target=lambda: tail.extend(line.rstrip() for line in stream), daemon=True).start()

    def process(self, config: dict, video: str, out: str) -> tuple[bool, object]:
        if self.proc is None or self.proc.poll() is not None or self.clips >= self.recycle_after:
            self.close()
            self._start()
        try:
            self.proc.stdin.write(json.dumps({"config": config, "video": video, "out": out}) + "\n")
            self.proc.stdin.flush()
            line = self.results.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            return False, self._death()
        self.clips += 1
        answer = json.loads(line)
        return bool(answer["ok"]), answer["result"]

    def _death(self) -> str:
        """Why the worker ended mid-clip; it is restarted for the next clip."""
        try:
            code = self.proc.wait(timeout=WAIT_S)  # its result pipe is closed: it is ending
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=WAIT_S)
        time.sleep(0.05)  # the stderr reader's last lines
        self.close()
        errors = [line for line in self.stderr_tail if line.startswith("error:")]
        if errors:
            return errors[-1][len("error:"):].strip()
        if code < 0:
            return f"worker killed by signal {-code}"
        return f"worker exited with code {code}: " + " | ".join(list(self.stderr_tail)[-3:])

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()  # the worker's loop ends at end of input
        except OSError:
            pass
        try:
            self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            try:
                self.proc.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:  # stuck in the kernel: leave it to the OS, never hang the run
                pass
        if self.results is not None:
            self.results.close()
        self.proc, self.results = None, None


@attrs.frozen
class PoolRunner:
    """`workers` clips at a time on this machine, in long-lived worker processes (`worker`: the
    command, `--serve FD` appended), each replaced after `recycle_after` clips."""

    worker: tuple
    workers: int = 1
    recycle_after: int = 50

    def describe(self) -> str:
        return f"{self.workers} local worker(s)"

    def run(self, config: ProcessConfig, jobs: Sequence[ClipJob]) -> Iterator[tuple[ClipJob, ClipResult]]:
        settings = unstructure(config)
        local = threading.local()
        everyone: list[WorkerProcess] = []
        lock = threading.Lock()

        def one(job: ClipJob) -> ClipResult:
            if not hasattr(local, "worker"):  # one worker process per pool thread
                local.worker = WorkerProcess(self.worker, self.recycle_after)
                with lock:
                    everyone.append(local.worker)
            started = time.perf_counter()
            ok, result = local.worker.process(settings, str(job.clip), str(job.out))
            seconds = round(time.perf_counter() - started, 2)
            return ClipResult(True, result, None, seconds) if ok else ClipResult(False, None, str(result), seconds)

        pool = ThreadPoolExecutor(max_workers=self.workers)
        try:
            futures = {pool.submit(one, job): job for job in jobs}
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # stopped early (Ctrl-C): no new clip starts
            for worker in everyone:
                worker.close()
