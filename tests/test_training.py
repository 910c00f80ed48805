"""The shared training machinery: schedules, resume equivalence, Ctrl-C, keep-best, logging, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from support.toy import ToyRegressionTask
from support.training import crash_then_resume

from geneface.core.checkpoint import read_checkpoint
from geneface.errors import UsageError
from geneface.training.config import TrainConfig
from geneface.training.metrics import read_metrics
from geneface.training.state import flatten_optimizer, unflatten_optimizer
from geneface.training.trainer import Trainer


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=24, batch_size=8, lr=1e-2, ckpt_every=5, val_every=4, log_every=3, keep_best=2, warmup=3)
    base.update(kw)
    return TrainConfig(**base)


def _weights(path) -> dict:
    return read_checkpoint(path).state


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_schedules():
    cfg = TrainConfig(steps=100, lr=1.0, warmup=10, schedule="cosine")
    assert cfg.lr_at(0) == pytest.approx(0.1)
    assert cfg.lr_at(9) == pytest.approx(1.0)
    assert cfg.lr_at(10) == pytest.approx(1.0)
    assert cfg.lr_at(55) == pytest.approx(0.5)
    assert cfg.lr_at(100) == pytest.approx(0.0)
    exp = TrainConfig(steps=100, lr=1.0, schedule="exponential", decay_rate=0.5, decay_steps=20)
    assert exp.lr_at(40) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        TrainConfig(steps=0)


def test_optimizer_state_round_trip():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
    tensors, meta = flatten_optimizer(opt.state_dict())
    meta = json.loads(json.dumps(meta))  # must survive JSON
    fresh = torch.optim.Adam(model.parameters(), lr=0.1)
    fresh.load_state_dict(unflatten_optimizer(tensors, meta, fresh.state_dict()))
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid in a["state"]:
        for key, value in a["state"][pid].items():
            assert torch.equal(value, b["state"][pid][key])


def test_resume_after_crash_equals_uninterrupted(tmp_path):
    full = Trainer(ToyRegressionTask(), _cfg(), tmp_path / "full", progress=False).fit()
    resumed, resumed_from = crash_then_resume(ToyRegressionTask, _cfg(), tmp_path / "crashed", crash_after=13)
    assert resumed_from == "step-00000010.safetensors"

    assert resumed["step"] == full["step"] == 24
    assert _same_state(_weights(full["last"]), _weights(resumed["last"]))
    assert _same_state(_weights(full["model"]), _weights(resumed["model"]))
    assert read_metrics(tmp_path / "full" / "metrics.csv") == read_metrics(tmp_path / "crashed" / "metrics.csv")
    assert sorted(p.name for p in (tmp_path / "full" / "best").iterdir()) == \
        sorted(p.name for p in (tmp_path / "crashed" / "best").iterdir())


def test_ctrl_c_saves_state_and_resume_matches(tmp_path):
    # Ctrl-C as a terminal delivers it: handled by Python's default handler, not blocked. Earlier
    # tests in the same process load native libraries that may leave SIGINT ignored or masked
    # (one full-suite run saw the signal never arrive); the trainer keeps an ignored signal ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    full = Trainer(ToyRegressionTask(), _cfg(), tmp_path / "full", progress=False).fit()

    def press_ctrl_c(step):
        if step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        Trainer(ToyRegressionTask(), _cfg(), tmp_path / "run", progress=False, on_step=press_ctrl_c).fit()
    # The step under way finished and its state was saved (7 is not a checkpoint step).
    assert Trainer.latest_state(tmp_path / "run").name == "step-00000007.safetensors"
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    resumed = Trainer(ToyRegressionTask(), _cfg(), tmp_path / "run", resume=True, progress=False).fit()
    assert _same_state(_weights(full["last"]), _weights(resumed["last"]))


def test_sigterm_during_geneface_train_saves_the_state_as_ctrl_c_does(tmp_path_factory, tmp_path):
    """`timeout`, `docker stop` and systemd send SIGTERM: the step under way finishes, its state
    is saved and named, exit 143, and the same command with --resume continues from there."""
    import time

    from support.mel_models import mel_corpus

    corpus = mel_corpus(tmp_path_factory.getbasetemp())
    config = tmp_path / "c.yaml"
    config.write_text("train: {batch_size: 4, val_every: 1000, ckpt_every: 5, log_every: 1, keep_best: 1}\n"
                      "model: {channels: [8, 8, 8], embed: 8}\ntask: {val_pairs: 8, val_offset_clips: 1}\n")
    out, steps = tmp_path / "run", 300
    command = [sys.executable, "-m", "geneface", "train", "syncnet", "--data", str(corpus), "--out", str(out),
               "--config", str(config), "--steps", str(steps), "--encoder", "mel", "--threads", "1", "-q"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while Trainer.latest_state(out) is None:  # training is under way once its first state is saved
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never saved a state"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    lines = err.splitlines()
    assert proc.returncode == 143 and lines[-1] == "error: terminated (SIGTERM)", err
    stopped = int(lines[-2].split("interrupted at step ")[1].split(";")[0])
    assert lines[-2] == (f"interrupted at step {stopped}; state saved in {out / 'state'}; "
                         "run the same command with --resume to continue")
    assert stopped < steps and Trainer.latest_state(out).name == f"step-{stopped:08d}.safetensors"
    assert not (out / "model.safetensors").exists()

    resumed = subprocess.run([*command, "--resume"], stderr=subprocess.PIPE, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert read_checkpoint(out / "model.safetensors").meta["step"] == steps
    # Continued from the saved step, not started again: each step logged once.
    logged = [s for s, phase, name, _ in read_metrics(out / "metrics.csv") if phase == "train" and name == "loss"]
    assert logged == list(range(1, steps + 1))


def test_validation_frequency_does_not_change_training(tmp_path):
    a = Trainer(ToyRegressionTask(), _cfg(val_every=2), tmp_path / "a", progress=False).fit()
    b = Trainer(ToyRegressionTask(), _cfg(val_every=50), tmp_path / "b", progress=False).fit()
    assert _same_state(_weights(a["last"]), _weights(b["last"]))


def test_keep_best_k_and_model_is_the_best(tmp_path):
    out = tmp_path / "run"
    result = Trainer(ToyRegressionTask(), _cfg(keep_best=3), out, progress=False).fit()
    val = sorted((v, s) for s, phase, name, v in read_metrics(out / "metrics.csv") if phase == "val" and name == "loss")
    expected = sorted(f"step-{s:08d}.safetensors" for _, s in val[:3])
    assert sorted(p.name for p in (out / "best").iterdir()) == expected
    assert result["best"][0]["step"] == val[0][1]
    best = read_checkpoint(out / "model.safetensors")
    assert best.meta["step"] == val[0][1] and best.meta["selected_by"] == "loss"
    run = json.loads((out / "run.json").read_text())
    assert run["train"]["steps"] == 24 and run["task_config"] == {"dims": 4}


def test_out_folder_and_resume_guards(tmp_path):
    out = tmp_path / "run"
    Trainer(ToyRegressionTask(), _cfg(steps=5), out, progress=False).fit()
    with pytest.raises(UsageError, match="--resume"):
        Trainer(ToyRegressionTask(), _cfg(steps=5), out, progress=False).fit()
    with pytest.raises(UsageError, match="lr"):
        Trainer(ToyRegressionTask(), _cfg(steps=5, lr=0.5), out, resume=True, progress=False).fit()


def test_metrics_without_tensorboard(tmp_path, monkeypatch):
    # torch raises ImportError from torch.utils.tensorboard when the package is missing.
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    out = tmp_path / "run"
    Trainer(ToyRegressionTask(), _cfg(steps=6), out, progress=False).fit()
    rows = read_metrics(out / "metrics.csv")
    assert {(s, p, n) for s, p, n, _ in rows} >= {(3, "train", "loss"), (4, "val", "loss"), (6, "train", "lr")}
    assert not (out / "tensorboard").exists()


def test_tensorboard_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    Trainer(ToyRegressionTask(), _cfg(steps=6), out, progress=False).fit()
    assert any((out / "tensorboard").iterdir())


DDP_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    from geneface.training.config import TrainConfig
    from geneface.training.distributed import shutdown
    from support.toy import ToyRegressionTask
    from geneface.training.trainer import Trainer

    out = sys.argv[1]
    task = ToyRegressionTask()
    checksums = []
    inner = task.compute_loss
    def spy(net, batch, step):
        checksums.append(float(batch["x"].sum()))
        assert isinstance(net, torch.nn.parallel.DistributedDataParallel)
        return inner(net, batch, step)
    task.compute_loss = spy
    trainer = Trainer(task, TrainConfig(steps=6, batch_size=8, lr=1e-2, ckpt_every=3, val_every=3, log_every=3),
                      out, progress=False)
    trainer.fit()
    rank = trainer.dist.rank
    torch.save({k: v.clone() for k, v in task.model.state_dict().items()}, f"{out}/../rank{rank}.pt")
    with open(f"{out}/../rank{rank}.json", "w") as f:
        json.dump({"world": trainer.dist.world_size, "checksums": checksums}, f)
    shutdown(trainer.dist)
""")


def test_ddp_two_processes_gloo(tmp_path):
    script = tmp_path / "ddp_toy.py"
    script.write_text(DDP_SCRIPT)
    tests_dir = str(Path(__file__).resolve().parent)  # for `support.toy`
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (tests_dir, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
         str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    info = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert info[0]["world"] == info[1]["world"] == 2
    # Each rank drew its own batches...
    assert info[0]["checksums"] != info[1]["checksums"]
    # ...yet the weights agree: DDP averaged the gradients.
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.allclose(w0[k], w1[k]) for k in w0)
    # Only rank 0 wrote files, once; the saved state carries both ranks' generators.
    state = read_checkpoint(tmp_path / "run" / "state" / "step-00000006.safetensors")
    assert {"rng0.torch_cpu", "rng1.torch_cpu"} <= set(state.state)
    assert _same_state(_weights(tmp_path / "run" / "last.safetensors"), w0)
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert len([r for r in rows if r[1] == "train" and r[2] == "loss"]) == 2
