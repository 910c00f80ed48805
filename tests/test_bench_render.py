"""benchmarks/bench_render.py: one JSON line of fps and memory, each measurement in its own
process, and its --json file refused when it exists unless --overwrite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_render.py"


def test_synthetic_model_is_measured_and_the_json_is_not_overwritten(tmp_path):
    out = tmp_path / "render.json"
    cmd = [sys.executable, str(SCRIPT), "--synthetic", "48", "--threads", "1", "--frames", "2", "--json", str(out),
           "--config", '{"march": {"min_transmittance": 0.5}}']
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == report
    (row,) = report["results"]
    assert row["size"] == 48 and row["threads"] == 1 and "before" not in row
    assert row["after"]["fps"] > 0 and row["after"]["frames_timed"] == 2 and row["after"]["peak_memory_mb"] > 0
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already exists; pass --overwrite" in again.stderr
    assert json.loads(out.read_text()) == report  # untouched
