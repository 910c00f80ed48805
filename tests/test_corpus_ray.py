"""`geneface process-corpus --ray`: a local 2-worker Ray gives the same datasets as the local
pool, a worker killed mid-clip loses nothing, a killed run resumes, a bad clip is reported.

Skipped when Ray is not installed (it is in the `test` extra, so CI runs these). Every Ray run
is a subprocess: a killed driver must not take pytest with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from support.corpus_runs import assert_same_datasets, digests, free_port, wait_holders, wait_mid_clip, write_corpus
from test_process_media import astronaut_frames, speech, write_clip

from geneface.cli import main
from geneface.core.corpus_index import INDEX, read_index
from geneface.core.dataset import Dataset, is_dataset

pytest.importorskip("ray")

SMALL = ["--size", "128", "--quiet"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    src = write_corpus(tmp_path_factory.mktemp("corpus"))
    (src / "spk2" / "broken.mp4").write_bytes(b"\x00" * 2048)  # reported, never stops the others
    return src


@pytest.fixture(scope="module")
def pooled(corpus, tmp_path_factory):
    """The reference: the same corpus through the local process pool."""
    out = tmp_path_factory.mktemp("pool") / "out"
    assert main(["process-corpus", str(corpus), str(out), "--workers", "2", *SMALL]) == 1  # the broken clip
    return out


def _ray_cmd(src, out, *extra):
    return [sys.executable, "-m", "geneface", "process-corpus", str(src), str(out), "--ray", "local",
            "--workers", "2", "--memory-per-clip", "0.5", *SMALL, *extra]


def _env():
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _run_ray(src, out):
    return subprocess.run(_ray_cmd(src, out), capture_output=True, text=True, timeout=300, env=_env())


def test_local_ray_gives_the_pool_s_datasets_byte_for_byte_and_reports_the_bad_clip(corpus, pooled, tmp_path):
    out = tmp_path / "ray"
    proc = _run_ray(corpus, out)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "3 processed, 0 already done, 1 failed" in proc.stdout and "local Ray (2 CPUs), one task per clip" in proc.stderr
    assert "spk2/broken.mp4" in proc.stdout and "cannot open as media" in proc.stdout
    assert "error: 1 of 4 clips failed" in proc.stderr
    report = json.loads((out / "corpus_report.json").read_text())
    assert report["counts"] == {"done": 3, "skipped": 0, "failed": 1}
    assert not (out / "spk2" / "broken").exists()
    assert_same_datasets(out, pooled)
    index = read_index(out)
    assert index.dataset.tolist() == ["spk1/a", "spk1/long", "spk2/b"]
    assert index.speaker.tolist() == ["spk1", "spk1", "spk2"] and index.n_frames.tolist() == [25, 125, 12]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker through /proc")
def test_a_ray_worker_killed_mid_clip_is_retried_and_loses_nothing(corpus, pooled, tmp_path):
    out = tmp_path / "ray"
    proc = subprocess.Popen(_ray_cmd(corpus, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    try:
        wait_mid_clip(out, proc)
        victims = wait_holders(out / "spk1" / ".long.lock", proc.pid)
        assert not is_dataset(out / "spk1" / "long")
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    # Ray ran the task again; it resumed the work folder, and every clip is as the pool made it.
    assert proc.returncode == 1, stderr[-3000:]  # the broken clip
    assert "3 processed, 0 already done, 1 failed" in stdout
    assert_same_datasets(out, pooled)
    assert not any(p.name.endswith(".partial") for p in out.rglob("*"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills a process group")
def test_a_run_killed_mid_clip_leaves_nothing_complete_and_resumes(corpus, pooled, tmp_path):
    out = tmp_path / "ray"
    proc = subprocess.Popen(_ray_cmd(corpus, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), start_new_session=True)
    try:
        work = wait_mid_clip(out, proc)
        # The machine dies: the driver, the Ray it started and the worker on the clip, at once.
        workers = wait_holders(out / "spk1" / ".long.lock", proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert work.is_dir() and not is_dataset(out / "spk1" / "long")  # the clip in flight: nothing complete
    assert not (out / INDEX).exists()
    again = _run_ray(corpus, out)
    assert again.returncode == 1 and "1 of 4 clips failed" in again.stderr, again.stderr[-3000:]
    assert_same_datasets(out, pooled)
    report = json.loads((out / "corpus_report.json").read_text())
    assert report["counts"]["done"] + report["counts"]["skipped"] == 3 and report["counts"]["failed"] == 1
    assert Dataset(out / "spk1" / "long").n_frames == 125


def test_without_ray_the_flag_says_how_to_install_it(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code = main(["process-corpus", str(corpus), str(tmp_path / "out"), "--ray", "local", *SMALL])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'geneface[distributed]'" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_existing_cluster_by_its_address(corpus, pooled, tmp_path):
    """`--ray HOST:PORT`: a cluster started beforehand (`ray start --head`), joined, not stopped."""
    src = tmp_path / "in"
    (src / "spk2").mkdir(parents=True)
    (src / "spk2" / "b.mp4").write_bytes((corpus / "spk2" / "b.mp4").read_bytes())
    port = free_port()
    ray_cli = [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]
    start = subprocess.run([*ray_cli, "start", "--head", "--port", str(port), "--num-cpus", "2",
                            "--include-dashboard", "false", "--disable-usage-stats"],
                           capture_output=True, text=True, timeout=120, env=_env())
    assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:]
    try:
        cmd = _ray_cmd(src, tmp_path / "out")
        cmd[cmd.index("local")] = f"127.0.0.1:{port}"
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"the Ray cluster at 127.0.0.1:{port}" in proc.stderr and "1 processed" in proc.stdout
        same = lambda d: {k: v for k, v in d.items() if k != "manifest.json"}  # noqa: E731  (another source path)
        assert same(digests(tmp_path / "out" / "spk2" / "b")) == same(digests(pooled / "spk2" / "b"))
    finally:
        subprocess.run([*ray_cli, "stop", "--force"], capture_output=True, timeout=120, env=_env())




def test_a_local_ray_run_prints_our_lines_only(tmp_path):
    """Ray's own notices (the token-authentication one of every local start, its C++ log) are
    silenced; RAY_AUTH_MODE is left unset here, as a user's would be."""
    src = tmp_path / "in"
    (src / "spk").mkdir(parents=True)
    write_clip(src / "spk" / "b.mp4", astronaut_frames(12, seed=3), speech(0.48))
    env = {k: v for k, v in _env().items() if k != "RAY_AUTH_MODE"}
    env["HOME"] = str(tmp_path)  # Ray may keep a token under ~/.ray
    proc = subprocess.run(_ray_cmd(src, tmp_path / "out"), capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines() == ["1 clips: 0 already done, 1 to process with a local Ray (2 CPUs), "
                                                "one task per clip (1 CPU, 0.5 GB each)"]


def test_an_unreachable_cluster_is_our_line_alone_and_leaves_no_out(tmp_path):
    """Before, Ray's C++ client printed its warnings (rpc_client.h, gcs_client.cc: three lines a
    try, 20 tries of about 41 s) before our line. A closed port on this machine; Ray's timeouts
    within a try shortened here (they are read at import) so that the test takes seconds."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.mp4").write_bytes(b"\x00" * 16)  # never opened: the run stops at joining Ray
    port = free_port()
    env = {**_env(), "RAY_gcs_rpc_server_connect_timeout_s": "1", "RAY_py_gcs_connect_timeout_s": "1"}
    cmd = [sys.executable, "-m", "geneface", "process-corpus", str(src), str(tmp_path / "out"),
           "--ray", f"127.0.0.1:{port}", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 2, proc.stderr
    assert lines[0].startswith("1 clips: 0 already done, 1 to process with the Ray cluster at 127.0.0.1:")
    assert lines[1].startswith(f"error: --ray 127.0.0.1:{port}: cannot start or reach Ray (")
    assert not (tmp_path / "out").exists()
