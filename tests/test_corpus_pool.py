"""`geneface process-corpus`'s local pool: long-lived workers, a clip that kills its worker
fails alone and resumes on the next run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

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
