"""Two `geneface process` runs into one output folder: one wins, the other stops at once.

Before the output lock, the second run wiped and reused the first one's work folder, and the
first published a "complete" dataset holding the second clip's audio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from test_process_media import astronaut_frames, speech, write_clip

from geneface.cli import main
from geneface.core.dataset import Dataset
from geneface.core.lock import lock_path, output_lock
from geneface.core.media import read_audio
from geneface.core.records import Audio
from geneface.errors import OutputBusyError

SMALL = ["--size", "128", "--quiet"]


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def test_two_runs_into_one_folder_never_publish_a_mixed_dataset(tmp_path, capsys):
    loud = write_clip(tmp_path / "loud.mp4", astronaut_frames(100, seed=1), speech(4.0))
    quiet = speech(4.0)
    soft = write_clip(tmp_path / "soft.mp4", astronaut_frames(100, seed=2), Audio(quiet.samples * 0.2, quiet.sample_rate))
    out = tmp_path / "ds"
    env = {**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.Popen([sys.executable, "-m", "geneface", "process", str(loud), "-o", str(out), *SMALL],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        partial = out.with_name(".ds.partial")
        deadline = time.monotonic() + 120
        while not partial.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert partial.exists(), "the first run never started its work folder"
        # The second run, on another clip, while the first is tracking.
        code = main(["process", str(soft), "-o", str(out), *SMALL])
        err = capsys.readouterr().err
    finally:
        stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    # The published dataset is the first run's, every part of it (its audio included).
    ds = Dataset(out)
    assert ds.manifest["source"]["name"] == "loud.mp4" and ds.n_frames == 100
    assert _rms(ds.audio().samples) == pytest.approx(_rms(read_audio(loud).samples[: 100 * 640]), rel=0.1)
    assert _rms(ds.audio().samples) > 2 * _rms(read_audio(soft).samples)
    # The second run stopped at once with one line naming the first.
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "another `geneface process` run" in lines[0] and str(first.pid) in lines[0]
    # Nothing left behind: no work folder, no lock file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "loud.mp4", "soft.mp4"]


def test_the_lock_names_its_holder_and_a_dead_holder_never_blocks(tmp_path):
    out = tmp_path / "ds"
    # A lock file left by a process that died (kill -9, power cut): nobody holds it.
    lock_path(out).write_text("999999")
    with output_lock(out):
        assert lock_path(out).read_text() == str(os.getpid())
        with pytest.raises(OutputBusyError, match=f"pid {os.getpid()}"):
            with output_lock(out):
                pass
    assert not lock_path(out).exists()
    with output_lock(out):  # free again once released
        pass


def test_a_corpus_index_lists_every_dataset_in_out_not_only_this_runs(tmp_path, capsys):
    """Two `process-corpus` runs into one OUT: the run that ends last writes the index, and it
    must hold the datasets the other run made (training reads only the index)."""
    from geneface.core.corpus_index import read_index

    first, second = tmp_path / "in1", tmp_path / "in2"
    (first / "ann").mkdir(parents=True)
    (second / "bob").mkdir(parents=True)
    write_clip(first / "ann" / "one.mp4", astronaut_frames(20, seed=1), speech(0.8))
    write_clip(second / "bob" / "two.mp4", astronaut_frames(20, seed=2), speech(0.8))
    out = tmp_path / "out"
    for src in (first, second):
        assert main(["process-corpus", str(src), str(out), "--size", "64", "--min-face", "20", "--av-offset", "0",
                     "--quiet"]) == 0
    assert read_index(out).dataset.tolist() == ["ann/one", "bob/two"]
    # The report says whose clips it lists (this run's) and, beside them, what OUT holds.
    report = json.loads((out / "corpus_report.json").read_text())
    assert report["input"] == str(second) and [c["dataset"] for c in report["clips"]] == ["bob/two"]
    assert report["counts"] == {"done": 1, "skipped": 0, "failed": 0}
    assert report["on_disk"] == {"index": "corpus_index.npz", "datasets": 2, "speakers": 2, "frames": 40,
                                 "skip_training": 0, "left_out": []}


def test_an_index_build_waits_for_another_then_reads_the_disk(tmp_path):
    import threading

    from geneface.core.corpus_index import INDEX, read_index, rebuild_index

    with output_lock(tmp_path / INDEX, "index build"):
        built = threading.Thread(target=rebuild_index, args=(tmp_path,))
        built.start()
        time.sleep(0.5)
        assert built.is_alive() and not (tmp_path / INDEX).exists()  # waiting for the holder
    built.join(timeout=30)
    assert not built.is_alive() and len(read_index(tmp_path)) == 0
    with output_lock(tmp_path / INDEX, "index build"):
        with pytest.raises(OutputBusyError, match="another index build"):
            rebuild_index(tmp_path, wait_s=0.3)
