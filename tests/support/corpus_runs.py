"""Helpers of the corpus-processing tests (test support): comparing outputs, finding and
killing the process working on a clip."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path

from geneface.core.corpus_index import INDEX
from geneface.core.dataset import is_dataset

def write_corpus(src: Path) -> Path:
    """Three synthetic clips of two speakers; `spk1/long` (125 frames) takes a few seconds, so a
    test can catch it mid-clip."""
    from test_process_media import astronaut_frames, speech, write_clip

    (src / "spk1").mkdir(parents=True)
    (src / "spk2").mkdir()
    write_clip(src / "spk1" / "a.mp4", astronaut_frames(25), speech(1.0))
    write_clip(src / "spk1" / "long.mp4", astronaut_frames(125, seed=5), speech(5.0))
    write_clip(src / "spk2" / "b.mp4", astronaut_frames(12, seed=3), speech(0.48))
    return src


VOLATILE = ("created", "timings")  # the manifest's only fields that depend on when a clip ran


def digests(root: Path) -> dict:
    """sha256 of every file, with each manifest's run-time fields left out."""
    found = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "corpus_report.json"):
        data = path.read_bytes()
        if path.name == "manifest.json":
            manifest = json.loads(data)
            assert set(VOLATILE) <= set(manifest)
            data = json.dumps({k: v for k, v in manifest.items() if k not in VOLATILE}, sort_keys=True).encode()
        found[path.relative_to(root).as_posix()] = hashlib.sha256(data).hexdigest()
    return found


def assert_same_datasets(out: Path, reference: Path) -> None:
    got, want = digests(out), digests(reference)
    assert sorted(got) == sorted(want)
    assert [k for k in want if got[k] != want[k]] == []
    assert (out / INDEX).read_bytes() == (reference / INDEX).read_bytes()  # the index, byte for byte


def wait_mid_clip(out: Path, proc: subprocess.Popen, name: str = "long") -> Path:
    """Block until the clip `name` has a work folder with tracking under way, not yet a dataset."""
    work = out / "spk1" / f".{name}.partial"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        if work.is_dir() and (work / "state.json").exists() and not is_dataset(out / "spk1" / name):
            return work
        time.sleep(0.05)
    raise AssertionError(f"{work} never appeared")


def holders(lock: Path) -> list[int]:
    """The processes that hold `lock` open (Linux /proc)."""
    pids = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == str(lock) for fd in fd_dir.iterdir()):
                pids.append(int(fd_dir.parent.name))
        except OSError:
            continue
    return pids


def wait_holders(lock: Path, driver: int) -> list[int]:
    """The Ray worker(s) holding a clip's lock, once there is one."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [p for p in holders(lock) if p != driver]
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no Ray worker holds {lock}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
