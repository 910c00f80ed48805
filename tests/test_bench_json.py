"""The benchmarks' `--json FILE`: one rule, `geneface.core.outputs.JsonLine` (issue 34). The
file is checked like every output before any work and written under a temporary name; the
line is printed first, so it is never lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from geneface.core.outputs import JsonLine

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _bench(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("script, args", [("bench_corpus.py", ()), ("bench_renderer_people.py", ("--work", "W")),
                                          ("bench_render.py", ("--synthetic", "32"))])
def test_a_refused_json_costs_nothing(tmp_path, script, args):
    args = [str(tmp_path / a) if a == "W" else a for a in args]
    taken = tmp_path / "taken.json"
    taken.write_text("{}\n")
    done = _bench(script, *args, "--json", str(taken))
    assert done.returncode == 2 and f"{taken}: already exists; pass --overwrite" in done.stderr
    assert taken.read_text() == "{}\n" and not (tmp_path / "W").exists()
    # A folder where the file should go is refused at once too, --overwrite or not.
    done = _bench(script, *args, "--json", str(tmp_path), "--overwrite")
    assert done.returncode == 2 and "is a folder" in done.stderr and done.stdout == ""


def test_the_line_is_printed_and_written_whole(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    JsonLine.add_flags(parser)
    target = tmp_path / "sub" / "out.json"
    out = JsonLine.from_args(parser, parser.parse_args(["--json", str(target)]))
    line = out.emit({"bench": "x", "fps": 1.5})
    assert capsys.readouterr().out == line + "\n" and json.loads(target.read_text()) == {"bench": "x", "fps": 1.5}
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]  # no temporary left
    assert JsonLine.from_args(parser, parser.parse_args([])).emit({"a": 1}) == '{"a": 1}'
