"""`geneface bench adapters` and the motion scores behind it (geneface.metrics.motion)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from support.toy import register_toy_encoder, toy_clip, toy_person, train_toy_syncnet, train_toy_vae, write_toy_dataset

from geneface.app.bench_adapters import AdapterSpec, parse_adapter, parse_adapters
from geneface.cli import main
from geneface.errors import UsageError
from geneface.metrics.motion import (
    MouthStatistics,
    RunningMotionScores,
    lmd_per_frame,
    mouth_gap,
    mouth_statistics,
    score_motion,
)
from geneface.core.landmarks68 import mouth_opening


@pytest.fixture(autouse=True)
def _toy_encoder(one_torch_thread):
    register_toy_encoder()  # the suite resets the registry for every test


def _face(opening: np.ndarray, seed: int = 0) -> np.ndarray:
    """T x 68 x 3: a fixed face whose inner lower lip (65-67) sits `opening` below the upper (61-63)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 0.05, (68, 3))
    base[[67, 66, 65]] = base[[61, 62, 63]]  # closed: each inner pair coincides
    lm = np.repeat(base[None], len(opening), axis=0)
    lm[:, 65:68, 1] += np.asarray(opening)[:, None]
    return lm


# -- metrics on hand-made arrays -------------------------------------------------------------


def test_mouth_statistics_and_gap():
    opening = 0.01 + 0.005 * np.sin(np.linspace(0, 6, 50))
    lm = _face(opening)
    np.testing.assert_allclose(mouth_opening(lm), opening, atol=1e-12)
    stats = mouth_statistics(lm)
    assert stats.n_frames == 50 and math.isclose(stats.mean, opening.mean()) and math.isclose(stats.std, opening.std())
    assert mouth_gap(stats, stats) == 0.0
    # Twice as wide: mean and spread both double, so the gap is (mean + std) / std.
    wide = mouth_statistics(_face(2 * opening))
    assert math.isclose(wide.mean, 2 * stats.mean) and math.isclose(wide.std, 2 * stats.std)
    assert math.isclose(mouth_gap(wide, stats), (stats.mean + stats.std) / stats.std)
    assert mouth_gap(MouthStatistics(1.0, 0.0, 3), MouthStatistics(1.0, 0.0, 3)) == 0.0
    assert mouth_gap(MouthStatistics(2.0, 0.0, 3), MouthStatistics(1.0, 0.0, 3)) == math.inf


def test_score_motion_identical_scaled_and_translated():
    opening = 0.01 + 0.005 * np.sin(np.linspace(0, 6, 40))
    true = _face(opening)
    same = score_motion(true, true)
    assert same.mouth_gap == 0.0 and same.lmd_mm == 0.0 and same.landmark_mm == 0.0 and same.sync_confidence is None

    # Centred LMD ignores a translation of the whole face; the uncentred distance does not.
    shift = np.array([0.003, -0.004, 0.0])  # 5 mm
    moved = score_motion(true + shift, true)
    assert moved.lmd_mm < 1e-9 and moved.mouth_gap < 1e-9
    assert math.isclose(moved.landmark_mm, 5.0, rel_tol=1e-9)
    assert np.allclose(lmd_per_frame(true + shift, true), 0.0)

    # A wider opening: known gap; LMD is the lower lip's centred displacement x1000.
    wide = score_motion(_face(2 * opening), true)
    assert math.isclose(wide.mouth_gap, (opening.mean() + opening.std()) / opening.std(), rel_tol=1e-9)
    # Extra drop d on 3 of the 20 mouth points; centring moves every point by 3d/20.
    d = opening
    per_frame = (3 * abs(d - 3 * d / 20) + 17 * abs(3 * d / 20)) / 20
    assert math.isclose(wide.lmd_mm, 1000 * per_frame.mean(), rel_tol=1e-9)
    assert math.isclose(wide.landmark_mm, 1000 * (3 * d / 68).mean(), rel_tol=1e-9)

    with pytest.raises(UsageError, match="differ in length"):
        score_motion(true[:10], true)
    with pytest.raises(UsageError, match="T x 68 x 3"):
        score_motion(np.zeros((5, 20, 3)), None)


def test_running_scores_pool_frames():
    rng = np.random.default_rng(3)
    parts = [(rng.uniform(0.0, 0.02, n), rng.uniform(0.0, 0.03, n)) for n in (7, 30, 13)]
    running = RunningMotionScores()
    for g, t in parts:
        running.add(score_motion(_face(g), _face(t)))
    pooled = running.result()
    g_all = np.concatenate([g for g, _ in parts])
    t_all = np.concatenate([t for _, t in parts])
    whole = score_motion(_face(g_all), _face(t_all))
    assert pooled.n_frames == 50
    for name in ("mouth_mean_gen", "mouth_std_gen", "mouth_mean_true", "mouth_std_true", "mouth_gap", "lmd_mm",
                 "landmark_mm"):
        assert math.isclose(getattr(pooled, name), getattr(whole, name), rel_tol=1e-9), name
    with pytest.raises(ValueError):
        RunningMotionScores().result()


def test_adapter_flags():
    assert parse_adapter("identity") == AdapterSpec("identity", "identity", None)
    spec = parse_adapter("landmark_projection=runs/p/model.safetensors")
    assert spec.label == spec.name == "landmark_projection" and str(spec.checkpoint) == "runs/p/model.safetensors"
    spec = parse_adapter("early:adversarial_postnet=runs/a:b.safetensors")
    assert (spec.label, spec.name, str(spec.checkpoint)) == ("early", "adversarial_postnet", "runs/a:b.safetensors")
    for bad in ("=x", "a=", ":b", "lbl:=x"):
        with pytest.raises(UsageError, match="expected NAME"):
            parse_adapter(bad)
    with pytest.raises(UsageError, match="two rows labelled 'identity'"):
        parse_adapters(["identity", "identity"])
    with pytest.raises(UsageError, match="reference"):
        parse_adapters(["truth:identity"])


# -- the command on the toy world ------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "toy_audio2motion"
    vae = train_toy_vae(root)
    syncnet = train_toy_syncnet(root)
    here = tmp_path_factory.mktemp("bench_adapters")
    person = toy_person(here / "person", amplitude=1.5, corner=1.0)
    register_toy_encoder()
    proj = here / "proj"
    code = main(["train", "domain_adapter", "--plugin", "landmark_projection", "--person", str(person),
                 "--out", str(proj), "--quiet"])
    assert code == 0
    return {"root": here, "vae": vae, "syncnet": syncnet, "person": person, "proj": proj / "model.safetensors"}


def _bench(world, out, *extra):
    return main(["bench", "adapters", "--person", str(world["person"]), "--motion-generator", str(world["vae"]),
                 "--syncnet", str(world["syncnet"]), "--out", str(out), "--quiet", *extra])


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_bench_adapters_report(world, tmp_path, capsys):
    out = tmp_path / "bench"
    code = _bench(world, out, "--adapter", "identity", "--adapter", f"landmark_projection={world['proj']}",
                  "--adapter", f"again:landmark_projection={world['proj']}")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads((out / "adapters.json").read_text())
    labels = [row["label"] for row in result["rows"]]
    assert labels == ["truth", "identity", "landmark_projection", "again"]
    for row in result["rows"]:
        s = row["scores"]
        for key in ("mouth_mean_gen", "mouth_std_gen", "mouth_mean_true", "mouth_std_true", "sync_confidence"):
            assert _finite(s[key]), (row["label"], key)
        assert isinstance(s["sync_offset"], int)
        if row["label"] == "truth":
            assert s["mouth_gap"] is None and s["lmd_mm"] is None and s["landmark_mm"] is None
        else:
            assert all(_finite(s[k]) and s[k] >= 0 for k in ("mouth_gap", "lmd_mm", "landmark_mm"))
    rows = {row["label"]: row["scores"] for row in result["rows"]}
    # The person's held-out frames: the last 1/11 of 330 frames; the truth's own mouth is the reference.
    assert result["settings"]["n_frames"] == 30 and rows["truth"]["n_frames"] == 30
    assert math.isclose(rows["identity"]["mouth_mean_true"], rows["truth"]["mouth_mean_gen"])
    # Same checkpoint twice, same numbers; the fitted projection lands in the person's face.
    assert rows["again"] == rows["landmark_projection"]
    assert rows["landmark_projection"]["landmark_mm"] < rows["identity"]["landmark_mm"]
    assert result["settings"]["adapters"][1]["checkpoint"] == str(world["proj"])
    clip = result["clips"][0]
    assert set(clip["scores"]) == set(labels) and clip["n_frames"] == 30
    markdown = (out / "adapters.md").read_text()
    for label in labels:
        assert f"| {label}" in markdown and f"| {label}" in captured.out
    assert "| adapter | mouth mean gen / true" in captured.out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folder left


def test_bench_adapters_eval_set(world, tmp_path, capsys):
    """--eval scores every clip of another folder of the same person, in that folder's units."""
    eval_set = toy_person(tmp_path / "more", n_frames=110, seed=11)
    out = tmp_path / "bench"
    assert _bench(world, out, "--eval", str(eval_set)) == 0, capsys.readouterr().err  # default: identity
    result = json.loads((out / "adapters.json").read_text())
    assert [row["label"] for row in result["rows"]] == ["truth", "identity"]
    assert result["settings"]["n_frames"] == 110 and result["settings"]["eval"] == str(eval_set)
    truth = np.load(eval_set / "landmarks" / "canonical68.npy")
    assert math.isclose(result["rows"][0]["scores"]["mouth_mean_gen"], float(mouth_opening(truth).mean()),
                        rel_tol=1e-5)


def test_bench_adapters_errors(world, tmp_path, capsys):
    out = tmp_path / "bench"

    def error(*extra, person=None):
        args = ["bench", "adapters", "--person", str(person or world["person"]), "--motion-generator",
                str(world["vae"]), "--syncnet", str(world["syncnet"]), "--out", str(out), "--quiet", *extra]
        code = main(args)
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        return err

    assert "did you mean 'identity'" in error("--adapter", "identiy")
    wrong = error("--adapter", f"landmark_projection={world['syncnet']}")
    assert wrong.startswith("error: --adapter landmark_projection: ") and "holds a syncnet" in wrong
    assert "--motion-generator: " in error("--motion-generator", str(world["syncnet"]))
    assert "not 'identity'" in error("--adapter", f"identity={world['proj']}")
    assert not out.exists()
    assert "not a dataset" in error(person=tmp_path)
    bare = tmp_path / "bare"
    write_toy_dataset(bare, toy_clip("bare", 9, 120, 16, 5), features=False)
    assert "no 'toy' audio features" in error(person=bare)
    out.mkdir()
    assert "--overwrite" in error()
    (out / "stray.txt").write_text("not ours")
    assert "not made by this command" in error("--overwrite")
