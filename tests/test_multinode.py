"""Training across machines with torchrun, two "machines" simulated on this one.

Each node is its own launcher, as on a real cluster:

    python -m torch.distributed.run --nnodes 2 --nproc_per_node 1 --node_rank R \\
        --master_addr 127.0.0.1 --master_port PORT -m geneface train KIND ...

(gloo on CPU, one thread per process). The real trainers go through the command line on the
tiny mel corpus and configs of support.mel_models: `train syncnet` and `train audio2motion`
(the VAE) with world size 2, only rank 0 writing; a node killed mid-run, and the job relaunched
with --resume finishes from rank 0's last saved state; a resume the processes disagree on
(another world size; a node that sees another --out) is refused, never hung.
docs/distributed.md shows the same commands for real machines.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from support.mel_models import SYNCNET_YAML, VAE_YAML, mel_corpus

from geneface.core.checkpoint import read_checkpoint
from geneface.training.metrics import read_metrics

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")

PLUGINS = os.environ.get("GENEFACE_TEST_PLUGINS", "geneface-landmark-viz")  # as tests/conftest.py
TIMEOUT = 120  # seconds per launch: a hung collective fails the test instead of waiting out gloo's 30 min
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT",
              "TORCHELASTIC_RUN_ID")
SYNC_STEPS, VAE_STEPS = 6, 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TwoNodes:
    """Two torchrun launchers (node ranks 0 and 1, one process each) running `geneface ARGS`;
    `args` is one list for both nodes or a pair, one per node. Output goes to LOGS/nodeR.log."""

    def __init__(self, args, logs: Path):
        per_node = args if isinstance(args[0], list) else [args, args]
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV}
        env.update(OMP_NUM_THREADS="1", GENEFACE_PLUGINS=PLUGINS)
        logs.mkdir(parents=True, exist_ok=True)
        self.logs = [logs / f"node{r}.log" for r in (0, 1)]
        self.procs = []
        for rank, node_args in enumerate(per_node):
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                   "--node_rank", str(rank), "--master_addr", "127.0.0.1", "--master_port", str(port),
                   "-m", "geneface", *map(str, node_args)]
            with open(self.logs[rank], "w") as log:
                self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))

    def text(self, rank: int) -> str:
        return self.logs[rank].read_text(errors="replace")

    def tails(self) -> str:
        return "".join(f"\n--- node {r} ---\n{self.text(r)[-5000:]}" for r in (0, 1))

    def wait(self, timeout: float = TIMEOUT) -> list[int]:
        deadline = time.monotonic() + timeout
        try:
            return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in self.procs]
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"the launchers did not finish in {timeout} s{self.tails()}")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()  # torchrun passes SIGTERM on to its workers
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def kill_node(self, rank: int) -> None:
        """The machine dies: its worker and its launcher, SIGKILL, no chance to clean up."""
        launcher = self.procs[rank]
        children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
        assert children, "the launcher has no worker yet"
        for pid in children:
            os.kill(int(pid), signal.SIGKILL)
        launcher.kill()
        launcher.wait()


def _run(args, logs: Path) -> TwoNodes:
    nodes = TwoNodes(args, logs)
    codes = nodes.wait()
    assert codes == [0, 0], f"launcher exit codes {codes}{nodes.tails()}"
    return nodes


def _loop(out: Path, config: Path, steps: int, *extra) -> list:
    return ["--out", out, "--config", config, "--steps", steps, "--log-every", 2, "--encoder", "mel", "--threads", 1,
            "--device", "cpu", "--quiet", *extra]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("multinode")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENEFACE_PLUGINS", PLUGINS)
        from geneface import registry

        mp.setattr(registry, "_REGISTRY", None)
        # The tiny mel corpus of support.mel_models, shared with the other tests using it.
        (base / "corpus.txt").write_text(str(mel_corpus(tmp_path_factory.getbasetemp())))
    registry._REGISTRY = None
    (base / "syncnet.yaml").write_text(SYNCNET_YAML)
    (base / "vae.yaml").write_text(VAE_YAML)
    return base


def _corpus(root: Path) -> str:
    return (root / "corpus.txt").read_text()


def _syncnet_args(root: Path, out: Path, *extra) -> list:
    return ["train", "syncnet", "--data", _corpus(root), *_loop(out, root / "syncnet.yaml", SYNC_STEPS, *extra)]


def _vae_args(root: Path, syncnet: Path, out: Path, steps: int, *extra) -> list:
    return ["train", "audio2motion", "--data", _corpus(root), "--syncnet", syncnet,
            *_loop(out, root / "vae.yaml", steps, *extra)]


@pytest.fixture(scope="module")
def syncnet_run(root) -> tuple[Path, TwoNodes]:
    out = root / "syncnet"
    return out, _run(_syncnet_args(root, out), root / "logs_syncnet")


def _check_run(out: Path, nodes: TwoNodes, task: str, steps: int, launches: int = 1) -> None:
    """A finished two-process run in `out` (`launches`: invocations of it, resumes included):
    world size 2, both ranks took part, rank 0 alone wrote."""
    for name in ("model.safetensors", "last.safetensors", "run.json", "metrics.csv"):
        assert (out / name).is_file(), f"{out / name} missing"
    record = json.loads((out / "run.json").read_text())
    assert record["task"] == task and record["world_size"] == 2
    # Both ranks loaded the data; rank 0 alone reported (and wrote) the model.
    for rank in (0, 1):
        assert "training clips" in nodes.text(rank), nodes.tails()
    assert "wrote " in nodes.text(0) and "wrote " not in nodes.text(1), nodes.tails()
    # The last state holds each rank's random generators, gathered from both processes.
    state = read_checkpoint(out / "state" / f"step-{steps:08d}.safetensors")
    assert len(state.meta["rng"]) == 2 and {"rng0.torch_cpu", "rng1.torch_cpu"} <= set(state.state)
    assert state.meta["step"] == steps
    # One writer: each train log line (every 2 steps) and the final validation appear once.
    rows = read_metrics(out / "metrics.csv")
    assert [s for s, phase, name, _ in rows if phase == "train" and name == "loss"] == list(range(2, steps + 1, 2))
    assert sorted({s for s, phase, _, _ in rows if phase == "val"}) == [steps]
    if (out / "tensorboard").is_dir():
        assert len(list((out / "tensorboard").iterdir())) == launches  # one event file per writer


def test_syncnet_on_two_nodes(syncnet_run):
    out, nodes = syncnet_run
    _check_run(out, nodes, "syncnet", SYNC_STEPS)


def test_resume_with_another_world_size_is_refused(root, syncnet_run, capsys, one_torch_thread):
    from geneface.cli import main

    out = syncnet_run[0]
    before = (out / "model.safetensors").read_bytes()
    assert main([str(a) for a in _syncnet_args(root, out, "--resume")]) == 2  # one process, not two
    assert "world_size" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before


def test_resume_where_a_node_sees_another_out_is_refused(root, syncnet_run, tmp_path):
    """Node 1 does not see rank 0's --out (no shared file system): every rank stops with the
    same message instead of rank 0 resuming while rank 1 starts over (which hung)."""
    shared = tmp_path / "run"
    shutil.copytree(syncnet_run[0], shared)
    local = tmp_path / "node1_only"
    nodes = TwoNodes([_syncnet_args(root, shared, "--resume"), _syncnet_args(root, local, "--resume")],
                     tmp_path / "logs")
    codes = nodes.wait()
    assert codes[0] != 0 and codes[1] != 0, nodes.tails()
    for rank in (0, 1):
        assert "different resume states" in nodes.text(rank), nodes.tails()
    assert not local.exists()


def test_audio2motion_on_two_nodes_resumes_after_a_node_dies(root, syncnet_run):
    if not Path(f"/proc/{os.getpid()}/task").is_dir():
        pytest.skip("finding torchrun's worker to kill needs Linux /proc")
    syncnet = syncnet_run[0] / "model.safetensors"
    out = root / "vae"
    # A long run saving every 2 steps (the VAE's exponential schedule lets --resume change --steps).
    nodes = TwoNodes(_vae_args(root, syncnet, out, 1000, "--ckpt-every", 2), root / "logs_vae_killed")
    deadline = time.monotonic() + TIMEOUT
    try:
        while not (out / "state").is_dir() or not any((out / "state").glob("step-*.safetensors")):
            assert time.monotonic() < deadline and all(p.poll() is None for p in nodes.procs), nodes.tails()
            time.sleep(0.02)
        nodes.kill_node(1)
    except BaseException:
        nodes.stop()
        raise
    codes = nodes.wait()
    assert codes[0] != 0, nodes.tails()  # rank 0 loses its peer in the next collective and fails
    from geneface.training.trainer import Trainer

    saved = read_checkpoint(Trainer.latest_state(out)).meta["step"]
    assert saved < VAE_STEPS, f"the run got to step {saved} before node 1 was killed; raise VAE_STEPS"

    # Relaunch the whole job with --resume: it continues from the last state rank 0 saved, and
    # the run folder ends up as one two-node run's (metrics past that state dropped, none twice).
    resumed = _run(_vae_args(root, syncnet, out, VAE_STEPS, "--ckpt-every", 2, "--resume"), root / "logs_vae_resumed")
    _check_run(out, resumed, "vae", VAE_STEPS, launches=2)
    assert json.loads((out / "run.json").read_text())["train"]["steps"] == VAE_STEPS
