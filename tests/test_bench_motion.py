"""`geneface bench motion`: its figures on hand-made series, and the command on the toy world
(a tiny VAE and SyncNet trained on the toy corpus, scored on a speaker they never saw)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from support.toy import register_toy_encoder, toy_person, train_toy_syncnet, train_toy_vae

from geneface.app.bench_motion_choice import parse_models
from geneface.cli import main
from geneface.errors import UsageError
from geneface.metrics.lag import amplitude_ratio, best_lag, lag_curve, pearson


@pytest.fixture(autouse=True)
def _toy_encoder(one_torch_thread):
    register_toy_encoder()


def test_lag_and_amplitude_on_known_series():
    rng = np.random.default_rng(0)
    true = np.convolve(rng.normal(size=200), np.ones(5) / 5, mode="same")
    late = np.roll(true, 2)  # generated t + 2 is true t: the generated mouth is 2 frames late
    lag, r = best_lag(lag_curve(late, true))
    assert lag == 2 and r > 0.99
    assert lag_curve(true, true)[0] == pytest.approx(1.0)
    assert amplitude_ratio(0.5 * true, true) == pytest.approx(0.5)
    assert pearson(np.ones(10), true[:10]) is None  # a still mouth has no correlation
    assert amplitude_ratio(true, np.ones(10)) is None or amplitude_ratio(true[:10], np.ones(10)) is None


def test_model_flags():
    assert [m.label for m in parse_models(["a=x.safetensors", "b = y.safetensors"])] == ["a", "b"]
    for bad, message in ((["x.safetensors"], "NAME=CHECKPOINT"), (["a=x", "a=y"], "two models named"),
                         (["truth=x"], "reference rows")):
        with pytest.raises(UsageError, match=message):
            parse_models(bad)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "toy_audio2motion"
    vae, syncnet = train_toy_vae(root), train_toy_syncnet(root)
    here = tmp_path_factory.mktemp("bench_motion")
    person = toy_person(here / "person")
    return {"root": root, "vae": vae, "syncnet": syncnet, "person": person}


def test_bench_motion_report(world, tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["bench", "motion", "--model", f"vae={world['vae']}", "--model", f"again={world['vae']}",
                 "--data", str(world["root"] / "data"), "--speakers", "spk1", "--person", str(world["person"]),
                 "--syncnet", str(world["syncnet"]), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads((out / "motion_bench.json").read_text())
    rows = {(r["group"], r["model"]): r["scores"] for r in result["rows"]}
    assert set(rows) == {(g, m) for g in ("held-out speakers", "person held-out") for m in ("truth", "vae", "again")}
    speakers = rows["held-out speakers", "vae"]
    assert speakers["clips"] == 3 and speakers["n_frames"] == 450  # spk1's three clips of 150 frames
    assert rows["person held-out", "vae"]["n_frames"] == 30  # the last 1/11 of 330
    # The toy VAE learned the toy speech -> mouth map: on a speaker it never saw the mouth follows.
    assert speakers["r_lag0"] > 0.3 and abs(speakers["best_lag"]) <= 1
    assert 0.2 < speakers["amplitude_ratio"] < 5 and speakers["lmd_mm"] > 0
    assert math.isfinite(speakers["sync_confidence"]) and math.isfinite(rows["held-out speakers", "truth"]["sync_confidence"])
    assert rows["held-out speakers", "again"] == speakers  # same checkpoint and seed, same figures
    assert "| vae" in captured.out and "r lag0" in captured.out
    assert "| vae" in (out / "motion_bench.md").read_text()
    # The checkpoint records its training speakers: spk1 is not among them, so no warning.
    assert result["settings"]["warnings"] == []
    # A model scored on its own training speakers says so.
    code = main(["bench", "motion", "--model", f"vae={world['vae']}", "--data", str(world["root"] / "data"),
                 "--speakers", "spk0", "--syncnet", str(world["syncnet"]), "--out", str(tmp_path / "b2"), "--quiet"])
    assert code == 0 and "trained on speaker(s) spk0" in capsys.readouterr().err


def test_bench_motion_errors(world, tmp_path, capsys):
    def error(*args):
        code = main(["bench", "motion", "--syncnet", str(world["syncnet"]), "--out", str(tmp_path / "b"), "--quiet",
                     *args])
        err = capsys.readouterr().err
        assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        return err

    assert "NAME=CHECKPOINT" in error("--model", str(world["vae"]), "--person", str(world["person"]))
    assert "--data" in error("--model", f"vae={world['vae']}")
    assert "no such checkpoint" in error("--model", f"vae={tmp_path / 'none.safetensors'}", "--person",
                                         str(world["person"]))
    err = error("--model", f"vae={world['vae']}", "--data", str(world["root"] / "data"), "--speakers", "spk11")
    assert "spk11" in err and "spk1" in err
    # A SyncNet checkpoint where a motion generator belongs.
    assert "--model" in error("--model", f"s={world['syncnet']}", "--person", str(world["person"]))
    assert not (tmp_path / "b").exists()
