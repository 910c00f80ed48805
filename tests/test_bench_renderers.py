"""`geneface bench renderers` and the time budget of the shared trainer behind it.

One synthetic subject (2 s, processed at 64 px) and one short bench (a few seconds of budget
per renderer) are shared by the module. A third-party distribution made on the fly adds two
trainable renderers: `mean_face` (learns the mean training frame) and `broken_renderer`
(whose recipe raises), so the bench is seen to include plugins from outside and to report a
failing one in its row while scoring the rest.
"""

from __future__ import annotations

import json
import textwrap
import time

import numpy as np
import pytest
from support.toy import ToyRegressionTask

from support.renderers import shared_subject
from geneface.cli import main
from geneface.training.config import TrainConfig
from geneface.training.metrics import read_metrics
from geneface.training.trainer import Trainer

BUDGET = "0.05"  # minutes per renderer
DIST = "geneface-bench-test"

PLUGIN = textwrap.dedent('''
    """Two trainable renderers from a separately installed distribution (tests only)."""

    import attrs
    import numpy as np
    import torch

    from geneface import hookimpl
    from geneface.core.checkpoint import stage_checkpoint
    from geneface.core.dataset import Dataset, held_out_start
    from geneface.core.net_stage import TorchStage
    from geneface.core.stages import Renderer
    from geneface.training.recipe import BuiltTask, Recipe
    from geneface.training.task import TrainTask


    @attrs.define
    class MeanConfig:
        size: int = 64


    class MeanNet(torch.nn.Module):
        def __init__(self, size):
            super().__init__()
            self.image = torch.nn.Parameter(torch.zeros(size, size, 3))


    class MeanFace(TorchStage, Renderer):
        name = "mean_face"
        description = "The mean training frame, whatever the motion (test plugin)"
        Config = MeanConfig
        training = "geneface_bench_test:MeanRecipe"

        def build_net(self):
            return MeanNet(self.config.size)

        def frame_size(self):
            return self.config.size, self.config.size

        def render(self, motion, camera=None):
            with torch.no_grad():
                frame = (torch.sigmoid(self.net.image) * 255).round().to(torch.uint8).cpu().numpy()
            for _ in range(motion.n_frames):
                yield frame.copy()


    class MeanTask(TrainTask):
        name = "mean_face"

        def __init__(self, stage, frames):
            self.stage, self.model, self.frames = stage, stage.net, frames

        def config_dict(self):
            return {"frames": len(self.frames)}

        def sample_batch(self, rng, batch_size):
            return {"frame": self.frames[rng.integers(len(self.frames))]}

        def compute_loss(self, net, batch, step):
            loss = ((torch.sigmoid(net.image) - batch["frame"]) ** 2).mean()
            return loss, {}

        def validate(self):
            return {"loss": float(((torch.sigmoid(self.model.image) - self.frames.mean(0)) ** 2).mean())}

        def export(self, meta):
            return stage_checkpoint(self.stage, meta=meta)


    class MeanRecipe(Recipe):
        loop_defaults = {"batch_size": 1, "lr": 0.05, "val_every": 50, "ckpt_every": 50}

        def build(self, inputs):
            ds = Dataset(inputs.data[0])
            train = range(held_out_start(ds.n_frames))
            frames = torch.from_numpy(np.stack([ds.frame(i) for i in train])).float() / 255.0
            stage = inputs.stage_cls(inputs.model_config(size=ds.size))
            return BuiltTask(MeanTask(stage, frames), {"data": str(inputs.data[0])})


    class BrokenRenderer(MeanFace):
        name = "broken_renderer"
        description = "A renderer whose recipe fails (test plugin)"
        training = "geneface_bench_test:BrokenRecipe"


    class BrokenRecipe(Recipe):
        def build(self, inputs):
            raise RuntimeError("recipe exploded")


    @hookimpl
    def register_renderers(register):
        register(MeanFace)
        register(BrokenRenderer)
''')


# -- the time budget --------------------------------------------------------------------------


def test_time_budget_stops_a_toy_training_and_resume_goes_on(tmp_path, one_torch_thread):
    cfg = dict(steps=10**7, batch_size=8, lr=1e-2, schedule="constant", val_every=10**6, ckpt_every=10**6,
               log_every=1000)
    out = tmp_path / "run"
    before = time.time()
    result = Trainer(ToyRegressionTask(), TrainConfig(**cfg, max_minutes=0.004), out, progress=False).fit()
    step = result["step"]
    assert 0 < step < 10**7
    stopped = {"step": step, "reason": "time budget of 0.004 min reached"}
    assert result["stopped"] == stopped
    record = json.loads((out / "run.json").read_text())
    assert record["stopped"] == stopped
    # run.json is written again when the run stops: `started` is still the start (0.24 s of budget before)
    assert before <= record["started"] <= (out / "run.json").stat().st_mtime - 0.2
    assert (out / "model.safetensors").is_file() and (out / "last.safetensors").is_file()
    assert (out / "state" / f"step-{step:08d}.safetensors").is_file()
    # Ended like the last step: validated and logged at the step where time ran out.
    rows = {(s, phase) for s, phase, _, _ in read_metrics(out / "metrics.csv")}
    assert (step, "val") in rows and (step, "train") in rows

    # --resume goes on (a fresh budget, here none) and the record no longer says stopped.
    again = Trainer(ToyRegressionTask(), TrainConfig(**{**cfg, "steps": step + 5}), out, resume=True,
                    progress=False).fit()
    assert again["step"] == step + 5 and again["stopped"] is None
    assert "stopped" not in json.loads((out / "run.json").read_text())


def test_snapshots_export_the_model_as_it_was_at_each_mark(tmp_path, one_torch_thread):
    from geneface.core.checkpoint import read_checkpoint

    cfg = dict(steps=10**7, batch_size=8, lr=1e-2, schedule="constant", val_every=10**6, ckpt_every=10**6,
               log_every=1000)
    out = tmp_path / "run"
    result = Trainer(ToyRegressionTask(), TrainConfig(**cfg, max_minutes=0.006, snapshot_minutes=[0.004, 0.002, 1.0]),
                     out, progress=False).fit()
    assert [p.name for p in result["snapshots"]] == ["minute-0.002.safetensors", "minute-0.004.safetensors"]
    metas = [read_checkpoint(p).meta for p in result["snapshots"]]
    assert [m["snapshot_minutes"] for m in metas] == [0.002, 0.004]
    assert 0 < metas[0]["step"] < metas[1]["step"] < result["step"]  # taken on the way, in order
    assert all(m["elapsed_minutes"] >= m["snapshot_minutes"] for m in metas)
    with pytest.raises(ValueError, match="snapshot_minutes must be > 0"):
        TrainConfig(snapshot_minutes=[0])


def test_max_minutes_flag_is_a_loop_flag(capsys):
    assert main(["train", "--help"]) == 0
    assert "--max-minutes" in capsys.readouterr().out
    with pytest.raises(ValueError, match="max_minutes must be >= 0"):
        TrainConfig(max_minutes=-1)


# -- the bench --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return shared_subject(tmp_path_factory)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The test distribution, installed the way pip leaves one: a module and its dist-info."""
    site = tmp_path_factory.mktemp("site")
    (site / "geneface_bench_test.py").write_text(PLUGIN)
    info = site / "geneface_bench_test-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[geneface]\nbench_test = geneface_bench_test\n")
    return site


@pytest.fixture
def installed(site, monkeypatch):
    import os

    from geneface import registry

    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("GENEFACE_PLUGINS", f"{os.environ['GENEFACE_PLUGINS']},{DIST}")
    registry._REGISTRY = None


def _expected_rows():
    """Every trainable renderer the registry can run here: built-in, contrib and ours."""
    from geneface.registry import get_registry

    registry = get_registry()
    names = set()
    for (kind, name), entries in registry.entries.items():
        if kind == "renderer" and len(entries) == 1 and entries[0].cls.trainable() and entries[0].unavailable_reason is None:
            names.add(name)
    return names


@pytest.fixture(scope="module")
def bench(dataset, site, tmp_path_factory):
    """One bench over every trainable renderer (exit 1: broken_renderer fails, the rest are scored)."""
    import os

    from geneface import registry

    import torch

    threads = torch.get_num_threads()  # the bench's --threads 1 sets torch's; given back below
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(site))
    mp.setenv("GENEFACE_PLUGINS", f"{os.environ.get('GENEFACE_TEST_PLUGINS', 'geneface-landmark-viz')},{DIST}")
    registry._REGISTRY = None
    try:
        out = tmp_path_factory.mktemp("bench") / "report"
        code = main(["bench", "renderers", "--data", str(dataset), "--budget", BUDGET, "--out", str(out),
                     "--threads", "1", "--device", "cpu", "--snapshot", "mean_face=0.02", "-q"])
        expected = _expected_rows()
    finally:
        registry._REGISTRY = None
        mp.undo()
        torch.set_num_threads(threads)
    return out, code, expected


def test_bench_has_a_row_for_every_trainable_renderer(bench, capsys):
    out, code, expected = bench
    assert code == 1  # one renderer failed: a batch with a failed item, the others done
    assert {"hashgrid_nerf", "mean_face", "broken_renderer"} <= expected
    result = json.loads((out / "renderers.json").read_text())
    rows = {row["name"]: row for row in result["rows"]}
    assert set(rows) == expected | {"copy"}
    assert result["settings"]["held_out"] == [45, 50] and result["settings"]["held_out_frames"] == 5
    # the baseline that copies the video: each held-out frame's nearest training frame in image
    # points, scored as the renderers are
    copy = rows.pop("copy")
    assert copy["source"] == "baseline" and copy["status"] == "ok" and copy["scores"]["frames"] == 5
    assert all(0 <= i < 45 for i in copy["copied_frames"]) and 5.0 < copy["scores"]["psnr"] < 60.0

    broken = rows["broken_renderer"]
    assert broken["status"] == "failed" and "recipe exploded" in broken["error"] and broken["scores"] is None
    assert broken["error"].startswith("training failed: RuntimeError")
    for name, row in rows.items():
        if name == "broken_renderer":
            continue
        assert row["status"] == "ok", (name, row["error"])
        assert row["origin"].startswith(DIST if name in ("mean_face", "broken_renderer") else "")
        s = row["scores"]
        assert s["frames"] == 5
        assert 5.0 < s["psnr"] < 60.0 and 0.0 < s["ssim"] <= 1.0
        assert s["psnr_face"] is not None and s["ssim_face"] is not None
        assert s["lmd_px"] is None or (s["lmd_px"] >= 0 and 1 <= s["lmd_frames"] <= 5)
        assert row["fps"] > 0 and row["render_seconds"] > 0
        assert row["memory_mb"] is not None and row["memory_mb"] >= 0 and row["memory_kind"].startswith("cpu")
        assert row["train_seconds"] >= 0 and row["source"] == "trained"
        if row.get("fitted"):
            assert row["steps"] == 0
        else:  # the budget, not the (unreachable) step count, ended the run
            assert row["steps"] > 0 and row["stopped"] == f"time budget of {BUDGET} min reached"
        assert (out / "runs" / name / "model.safetensors").is_file()
    assert not list((out / "runs").glob(".*.raw"))  # rendered frames are scored, then removed

    # --snapshot: the model as it was 0.02 min into its training, scored on the same frames.
    (snap,) = rows["mean_face"]["snapshots"]
    assert snap["snapshot_minutes"] == 0.02 and snap["elapsed_minutes"] >= 0.02 and "error" not in snap
    assert 0 < snap["step"] < rows["mean_face"]["steps"]
    assert (out / "runs" / "mean_face" / snap["file"]).is_file()
    assert 5.0 < snap["psnr"] < 60.0 and 0.0 < snap["ssim"] <= 1.0
    assert all("snapshots" not in row for name, row in rows.items() if name != "mean_face")

    md = (out / "renderers.md").read_text()
    assert "## Earlier in training (--snapshot)" in md and "| mean_face | " in md.split("--snapshot)")[1]
    assert "| renderer | source | steps |" in md and "recipe exploded" in md and "side_by_side.png" in md
    import cv2

    image = cv2.imread(str(out / "side_by_side.png"))
    n_columns = 2 + len(rows)  # the truth, every renderer (a failed one greyed out), then the copy
    assert image.shape == (24 + 3 * 128, n_columns * 128 + (n_columns - 1) * 4, 3)


def test_bench_loads_a_finished_run_instead_of_training(bench, dataset, installed, tmp_path, capsys):
    out, _, _ = bench
    report = tmp_path / "again"
    code = main(["bench", "renderers", "--data", str(dataset), "--plugins", "mean_face", "--run",
                 f"mean_face={out / 'runs' / 'mean_face'}", "--snapshot", "mean_face=0.02", "--out", str(report),
                 "--device", "cpu", "-q"])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "| mean_face | run |" in printed
    row, copy = json.loads((report / "renderers.json").read_text())["rows"]  # the run, then the copy baseline
    assert copy["name"] == "copy"
    first = {r["name"]: r for r in json.loads((out / "renderers.json").read_text())["rows"]}["mean_face"]
    assert row["source"] == "run" and row["train_seconds"] is None
    assert row["steps"] == first["steps"] and row["model_step"] == first["model_step"] <= first["steps"]
    assert row["scores"]["psnr"] == pytest.approx(first["scores"]["psnr"])
    assert row["stopped"] == first["stopped"] and f"mean_face: loaded run, {first['stopped']}" in printed + (
        report / "renderers.md").read_text()
    (snap,) = row["snapshots"]  # a loaded run's own snapshot, scored again
    assert snap["step"] == first["snapshots"][0]["step"] and snap["psnr"] == pytest.approx(first["snapshots"][0]["psnr"])
    assert not (report / "runs" / "mean_face").exists()


def test_one_line_errors_before_any_work(bench, dataset, installed, tmp_path, capsys):
    out, _, _ = bench
    base = ["bench", "renderers", "--data", str(dataset), "--budget", "0.01"]
    assert main([*base, "--plugins", "hashgrid_nerff", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown renderer plugin 'hashgrid_nerff'" in err and "hashgrid_nerf" in err
    assert main([*base, "--plugins", "landmark_sketch", "--out", str(tmp_path / "a")]) == 2
    assert "'landmark_sketch' is not trainable" in capsys.readouterr().err
    assert main([*base, "--plugins", "mean_face", "--run", f"hashgrid_nerf={out / 'runs' / 'hashgrid_nerf'}",
                 "--out", str(tmp_path / "a")]) == 2
    assert "--run hashgrid_nerf: not among the renderers compared" in capsys.readouterr().err
    assert main([*base, "--plugins", "mean_face", "--options-for", "mean_face=--profile quick",
                 "--out", str(tmp_path / "a")]) == 2
    assert "no such option --profile" in capsys.readouterr().err
    assert main([*base, "--plugins", "mean_face", "--budget", "0", "--out", str(tmp_path / "a")]) == 2
    assert "--budget" in capsys.readouterr().err
    assert main([*base, "--plugins", "mean_face", "--snapshot", "mean_face=0.5", "--out", str(tmp_path / "a")]) == 2
    assert "--snapshot mean_face=0.5: every mark must be > 0 and below the --budget" in capsys.readouterr().err
    assert main([*base, "--plugins", "mean_face", "--snapshot", "mean_face=0.005", "--run",
                 f"mean_face={out / 'runs' / 'mean_face'}", "--out", str(tmp_path / "a")]) == 2
    assert "minute-0.005.safetensors does not exist (the run was not trained with snapshot_minutes including 0.005)" \
        in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    # An existing report folder: refused without --overwrite, nothing touched.
    before = (out / "renderers.json").read_text()
    assert main([*base, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists; pass --overwrite" in err
    assert (out / "renderers.json").read_text() == before


def test_score_frames_of_the_real_frames_is_perfect(dataset):
    from geneface.app.components import face_tracker
    from geneface.core.dataset import Dataset
    from geneface.metrics.held_out import face_boxes, held_out_frames, score_frames, track_truth

    ds = Dataset(dataset)
    frames = held_out_frames(ds)
    real = [ds.frame(int(f)) for f in frames]
    from geneface.registry import get_registry

    tracker = face_tracker(None, get_registry())
    truth = track_truth(ds, frames, tracker)
    s = score_frames(iter(real), iter(real), face_boxes(ds, frames), truth, ds.size, tracker=tracker)
    assert s["psnr"] == 100.0 and s["ssim"] == pytest.approx(1.0) and s["psnr_face"] == 100.0
    if len(truth.missing) < len(frames):  # the tracker finds the 64 px face: the same frames score 0
        assert s["lmd_px"] == pytest.approx(0.0) and s["lmd_frames"] == len(frames) - len(truth.missing)


def test_peak_memory_sees_memory_freed_before_it_ends():
    from geneface.core.measure import PeakMemory, rss_bytes

    before = rss_bytes()
    meter = PeakMemory()
    meter.start()
    block = np.ones(20_000_000)  # 160 MB, touched
    block += 1.0
    del block
    assert meter.stop() - before > 140 * 2**20


def test_several_persons_one_bench_each_and_wins_against_the_baseline(dataset, installed, tmp_path, capsys):
    from support.subject import subject_dataset

    other = subject_dataset(tmp_path / "subject_2_4s", seconds=2.4)
    out = tmp_path / "people"
    code = main(["bench", "renderers", "--data", str(dataset), "--data", str(other), "--plugins",
                 "mean_face,hashgrid_nerf", "--baseline", "mean_face", "--budget", BUDGET, "--out", str(out),
                 "--threads", "1", "--device", "cpu", "-q"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    summary = json.loads((out / "summary.json").read_text())
    names = summary["persons"]
    assert len(names) == 2 and names[0] != names[1]  # both folders are named "ds": the parent tells them apart
    for person in names:
        rows = {r["name"]: r for r in json.loads((out / person / "renderers.json").read_text())["rows"]}
        assert set(rows) == {"mean_face", "hashgrid_nerf", "copy"} and all(r["status"] == "ok" for r in rows.values())
        entry = summary["per_person"][person]["hashgrid_nerf"]
        for key in ("psnr", "psnr_face", "ssim", "ssim_face"):
            want = rows["hashgrid_nerf"]["scores"][key] - rows["mean_face"]["scores"][key]
            assert entry[key]["diff"] == pytest.approx(want)
    tally = summary["totals"]["hashgrid_nerf"]["psnr_face"]
    assert tally["wins"] + tally["losses"] + tally["ties"] == 2 and len(tally["lost_on"]) == tally["losses"]
    assert "| hashgrid_nerf |" in (out / "summary.md").read_text() and "Against `mean_face` on 2 persons" in printed
    # A baseline that is not benched, and --run with several persons: one line each, before any work.
    assert main(["bench", "renderers", "--data", str(dataset), "--data", str(other), "--plugins", "mean_face",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--baseline nearest_frame: not among the renderers benched" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
