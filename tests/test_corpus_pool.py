"""`geneface process-corpus`'s local pool: long-lived workers, a clip that kills its worker
fails alone and resumes on the next run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from support.corpus_runs import wait_holders, wait_mid_clip, write_corpus

from geneface.app.process import WORKER
from geneface.core.dataset import Dataset, is_dataset
from geneface.processing import ProcessConfig
from geneface.core.config import unstructure
from geneface.processing.corpus_pool import WorkerProcess

SMALL = ["--size", "128", "--quiet"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("pool_corpus"))


def test_one_worker_process_serves_many_clips_and_is_recycled(corpus, tmp_path):
    config = unstructure(ProcessConfig(size=128))
    worker = WorkerProcess(WORKER, recycle_after=2)
    try:
        ok, result = worker.process(config, str(corpus / "spk1" / "a.mp4"), str(tmp_path / "a"))
        first = worker.proc.pid
        assert ok and result["n_frames"] == 25
        (tmp_path / "broken.mp4").write_bytes(b"\x00" * 2048)
        ok, error = worker.process(config, str(tmp_path / "broken.mp4"), str(tmp_path / "broken"))
        assert not ok and "cannot open as media" in error and worker.proc.pid == first  # a bad input: same worker
        ok, result = worker.process(config, str(corpus / "spk2" / "b.mp4"), str(tmp_path / "b"))
        assert ok and result["n_frames"] == 12 and worker.proc.pid != first  # recycled after 2 clips
    finally:
        worker.close()
    assert Dataset(tmp_path / "a").n_frames == 25 and not (tmp_path / "broken").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker through /proc")
def test_a_worker_killed_mid_clip_fails_that_clip_alone_and_the_next_run_resumes_it(corpus, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "geneface", "process-corpus", str(corpus), str(out), "--workers", "2", *SMALL]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_mid_clip(out, proc)
        victims = wait_holders(out / "spk1" / ".long.lock", proc.pid)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr[-3000:]
    assert "2 processed, 0 already done, 1 failed" in stdout and "spk1/long.mp4: worker killed by signal 9" in stdout
    assert not is_dataset(out / "spk1" / "long") and (out / "spk1" / ".long.partial").is_dir()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1 processed, 2 already done, 0 failed" in again.stdout
    assert Dataset(out / "spk1" / "long").n_frames == 125 and not (out / "spk1" / ".long.partial").exists()
    report = json.loads((out / "corpus_report.json").read_text())
    assert report["counts"] == {"done": 1, "skipped": 2, "failed": 0}


# Run in a fresh interpreter, so that a hang fails the test (after its timeout) instead of CI.
# Each of THREADS threads keeps, in a threading.local, an object whose finaliser blocks for ever
# in a forked child (like PyAV's scaler, freed with another thread's state in a child of fork:
# issue 34), and starts workers, all at once, ROUNDS times over.
_MANY_STARTS = r"""
import os, sys, threading
from geneface.processing.corpus_pool import WorkerProcess

THREADS, ROUNDS = 6, 8
held = threading.Lock()
held.acquire()  # held by the main thread while the workers start: a forked child never gets it


PARENT = os.getpid()


class BlocksInAForkedChild:
    def __del__(self):
        if os.getpid() != PARENT:
            held.acquire()


local = threading.local()
start = threading.Barrier(THREADS)
command = [sys.executable, "-S", "-c", "import sys; sys.stdin.read()"]


def starter():
    local.thing = BlocksInAForkedChild()
    for _ in range(ROUNDS):
        start.wait()
        worker = WorkerProcess(command, recycle_after=1)
        worker._start()
        worker.close()
    start.wait()


threads = [threading.Thread(target=starter) for _ in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("started", THREADS * ROUNDS)
"""


def test_workers_started_from_several_threads_at_once_never_hang():
    run = subprocess.Popen([sys.executable, "-c", _MANY_STARTS], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, start_new_session=True)
    try:
        stdout, stderr = run.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        stdout, stderr = "", "hung"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)  # and any child stuck between fork and exec
        run.wait()
    assert run.returncode == 0 and "started 48" in stdout, stderr[-3000:]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_dies_with_the_run_that_started_it():
    script = ("import sys, time\nfrom geneface.app.process import WORKER\n"
              "from geneface.processing.corpus_pool import WorkerProcess\n"
              "w = WorkerProcess(WORKER, 1)\nw._start()\nprint(w.proc.pid, flush=True)\ntime.sleep(600)\n")
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(run.stdout.readline())
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker)
    finally:
        run.kill()


def test_a_worker_whose_run_is_already_gone_exits_at_once(tmp_path):
    read, write = os.pipe()
    try:  # --parent names a process that is not this worker's parent: as if the run had died before it started
        worker = subprocess.run([*WORKER, "--serve", str(write), "--parent", str(os.getppid())], pass_fds=(write,),
                                input="", capture_output=True, text=True, timeout=120)
    finally:
        os.close(read)
        os.close(write)
    assert worker.returncode == 1


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False
