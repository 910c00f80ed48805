"""adversarial_postnet: trains on the toy world, chooses its checkpoint, detects collapse,
resumes, refuses bad input in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from support.toy import register_toy_encoder, toy_clip, toy_person, train_toy_vae, write_toy_dataset
from support.training import crash_then_resume

from geneface.cli import main
from geneface.core.checkpoint import read_checkpoint
from geneface.core.records import AudioFeatures
from geneface.training.checkpoint_choice import ChoiceRule, CollapseRule, choose, collapse
from geneface.training.data import make_clip
from geneface.registry import get_registry

TINY = """
model: {widths: [32, 48, 32], kernel: 3}
task: {segment: 24, val_corpus_clips: 4}
"""


@pytest.fixture
def toy(tmp_path_factory, one_torch_thread):
    root = tmp_path_factory.getbasetemp() / "toy_audio2motion"
    vae = train_toy_vae(root)
    register_toy_encoder()
    (root / "tiny_postnet.yaml").write_text(TINY)
    return {"root": root, "vae": vae, "syncnet": root / "syncnet" / "model.safetensors",
            "person": toy_person(root / "person"), "config": root / "tiny_postnet.yaml"}


def _args(toy, out, person=None, steps=150, extra=()):
    return ["train", "domain_adapter", "--plugin", "adversarial_postnet", "--person", str(person or toy["person"]),
            "--corpus", str(toy["root"] / "data"), "--motion-generator", str(toy["vae"]), "--syncnet",
            str(toy["syncnet"]), "--out", str(out), "--config", str(toy["config"]), "--steps", str(steps),
            "--val-every", "25", "--lr", "0.001", "--quiet", *extra]


def test_postnet_trains_chooses_and_adapts(toy, tmp_path, capsys):
    out = tmp_path / "postnet"
    assert main(_args(toy, out)) == 0, capsys.readouterr().err
    choice = json.loads((out / "choice.json").read_text())
    steps = [c["step"] for c in choice["candidates"]]
    assert steps == list(range(25, 151, 25)) and choice["chosen_step"] in steps
    assert (out / "curves.png").stat().st_size > 10_000
    # The run's model is what choice.json names, byte for byte: by default the mean of the
    # candidates within 25 % of the lowest loss, or the rule's pick when fewer than two are.
    if choice["averaged_steps"]:
        assert len(choice["averaged_steps"]) >= 2 and "mean of the weights" in choice["reason"]
        named = out / "averaged.safetensors"
    else:
        assert "earliest" in choice["reason"]
        named = out / "candidates" / f"step-{choice['chosen_step']:08d}.safetensors"
    assert (out / "model.safetensors").read_bytes() == named.read_bytes()
    assert f"chosen: {named.relative_to(out).as_posix()}" in capsys.readouterr().out

    # The adapter speaks in the person's units: generic motion comes out in the person's face
    # (the toy world's mouth statistics are too rough to judge style; benchmarks do that).
    from geneface.training.person_data import load_person
    from support.toy import ToyEncoder

    adapter = get_registry().load(out / "model.safetensors", "domain_adapter", "test")
    generator = get_registry().load(toy["vae"], "motion_generator", "test")
    person = load_person(toy["person"], ToyEncoder())
    clip = person.train[0]
    generic = generator.generate(AudioFeatures(clip.features, encoder="toy"))
    adapted = adapter.adapt(generic)
    assert adapted.n_frames == generic.n_frames and np.allclose(adapted.mean, person.mean)
    far = lambda m: float(np.abs(m.landmarks.mean(0) - person.mean).mean())  # noqa: E731
    assert far(adapted) < 0.3 * far(generic)
    # Windowed inference equals one pass.
    z = np.random.default_rng(0).standard_normal((300, 204)).astype(np.float32)
    assert np.allclose(adapter.correct(z, window=64), adapter.correct(z, window=1000), atol=1e-5)
    # Choosing again with another rule needs no training.
    from geneface.training.checkpoint_choice import rechoose

    again = rechoose(out, ChoiceRule(tolerance=10.0, balance_tolerance=10.0, average=False))
    assert again.step == 25 and json.loads((out / "choice.json").read_text())["chosen_step"] == 25
    assert (out / "model.safetensors").read_bytes() == (out / "candidates" / "step-00000025.safetensors").read_bytes()
    # Averaging: every candidate is near-best under this tolerance, so the model is the mean of
    # all six candidates' weights (and still an adapter that loads and runs).
    import torch

    averaged = rechoose(out, ChoiceRule(average_tolerance=10.0))
    assert averaged.averaged == tuple(steps) and "mean of the weights" in averaged.reason
    assert json.loads((out / "choice.json").read_text())["averaged_steps"] == steps
    model = read_checkpoint(out / "model.safetensors")
    cands = [read_checkpoint(out / "candidates" / f"step-{s:08d}.safetensors").state for s in steps]
    for k, v in model.state.items():
        assert torch.allclose(v, sum(c[k] for c in cands) / len(cands), atol=1e-6), k
    assert model.meta["averaged_steps"] == steps and model.meta["selected_by"] == "average"
    assert not torch.equal(model.state["generator.out.weight"], cands[-1]["generator.out.weight"])
    assert get_registry().load(out / "model.safetensors", "domain_adapter", "test").adapt(generic).n_frames == \
        generic.n_frames


def test_average_refuses_different_models(toy, tmp_path):
    from geneface.core.checkpoint import save_checkpoint
    from geneface.errors import UsageError
    from geneface.training.checkpoint_choice import average_checkpoints

    a = read_checkpoint(toy["vae"])
    b = read_checkpoint(toy["syncnet"])
    save_checkpoint(tmp_path / "a.safetensors", a)
    save_checkpoint(tmp_path / "b.safetensors", b)
    with pytest.raises(UsageError, match="b.safetensors: not the same model"):
        average_checkpoints([tmp_path / "a.safetensors", tmp_path / "b.safetensors"])
    same = average_checkpoints([tmp_path / "a.safetensors", tmp_path / "a.safetensors"])
    assert all((same.state[k] == a.state[k]).all() for k in a.state)


def _task_maker(toy, config):
    from geneface.registry import get_registry
    from geneface.training.postnet_task import PostnetRecipe
    from geneface.training.recipe import TrainInputs, parse_options

    import torch
    import yaml

    recipe = PostnetRecipe()
    options = parse_options(recipe.options, _args(toy, "x")[4:12], "test")
    cls = get_registry().get("domain_adapter", "adversarial_postnet").cls

    def make_task():
        torch.manual_seed(0)
        return recipe.build(TrainInputs(cls, (), options, yaml.safe_load(TINY), None, config, get_registry())).task

    return make_task


def _loop(**kw):
    from geneface.core.config import structure
    from geneface.training.config import TrainConfig
    from geneface.training.postnet_task import PostnetRecipe

    return structure(TrainConfig, {**PostnetRecipe.loop_defaults, "lr": 0.001, **kw})


def test_collapse_is_detected_and_stops_the_run(toy, tmp_path, monkeypatch, capsys):
    # Forced: from step 40 the validation finds that the generated motion keeps 5 % of its
    # input's variation over time (a collapsed GAN's "lips that barely move"); the run must
    # stop at the next validation, say why, and never choose the collapsed checkpoint. (The
    # measure itself is `test_choice_rule_and_collapse_rule`'s; squashing the generator's
    # output instead left the measured ratio to the toy models' training, which differs by
    # CPU: on an AVX-512 machine the collapse went unseen until a later validation.)
    from geneface.training.postnet_task import PostnetTask
    from geneface.training.trainer import Trainer

    validate, collapsed = PostnetTask.validate, []

    def squashed(self):
        metrics = validate(self)
        return {**metrics, "variance_ratio": 0.05} if collapsed else metrics

    monkeypatch.setattr(PostnetTask, "validate", squashed)
    config = _loop(steps=200, val_every=20, ckpt_every=20)
    result = Trainer(_task_maker(toy, config)(), config, tmp_path / "run", progress=False,
                     on_step=lambda step: collapsed.append(step) if step == 40 else None).fit()
    assert result["stopped"]["step"] == 60 and "collapse: generated motion kept" in result["stopped"]["reason"]
    assert "stopped at step 60: collapse" in capsys.readouterr().err
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["stopped"]["step"] == 60
    choice = json.loads((tmp_path / "run" / "choice.json").read_text())
    assert choice["chosen_step"] in (20, 40) and 60 not in [c["step"] for c in choice["candidates"]]


def test_choice_rule_and_collapse_rule():
    def v(step, sync, mse, real, fake, ratio=1.0):
        return {"step": step, "metrics": {"sync_loss": sync, "mse": mse, "d_real": real, "d_fake": fake,
                                          "variance_ratio": ratio}}

    runs = [v(100, 1.0, 1.0, 0.5, 0.5), v(200, 0.61, 0.33, 0.5, 0.5), v(300, 0.60, 0.30, 0.9, 0.1),
            v(400, 0.60, 0.30, 0.55, 0.45), v(500, 0.60, 0.30, 0.56, 0.44), v(600, 0.59, 0.295, 0.95, 0.05)]
    choice = choose(runs, ChoiceRule(average=False))
    # Losses within 2 % of the lowest (sync/lowest + MSE/lowest): 300-600; the most undecided
    # discriminator among them (within 0.1): 400 and 500; the earliest: 400. 200's undecided
    # discriminator does not make up for its MSE, 12 % above the lowest.
    assert choice.step == 400 and "earliest" in choice.reason and choice.averaged == ()
    # The default averages every step within 25 % of the lowest loss (100 is 2.5x it) and
    # still reports the rule's pick.
    default = choose(runs, ChoiceRule())
    assert default.averaged == (200, 300, 400, 500, 600) and default.step == 400 and "pick step 400" in default.reason
    assert [c["near_best"] for c in choice.candidates] == [False, False, True, True, True, True]
    assert choose(runs, ChoiceRule(tolerance=0.0, average=False)).step == 600
    assert choose(runs, ChoiceRule(balance_tolerance=1.0)).step == 300  # balance barely matters: earliest
    assert choose(runs, ChoiceRule(), excluded=[400]).step == 500
    assert collapse([v(100, 1, 1, .5, .5, ratio=0.1)]) .startswith("collapse: generated motion kept 10%")
    rising = [v(i * 100, 1, m, .5, .5) for i, m in enumerate([0.3, 0.2, 0.25, 0.3, 0.35])]
    assert "rose at 3 evaluations" in collapse(rising, CollapseRule(rising=3))
    assert collapse(rising[:4], CollapseRule(rising=3)) is None


def test_resume_matches_an_uninterrupted_run(toy, tmp_path):
    import torch

    from geneface.training.trainer import Trainer

    config = _loop(steps=60, val_every=20, ckpt_every=20)
    make_task = _task_maker(toy, config)
    whole = Trainer(make_task(), config, tmp_path / "whole", progress=False).fit()
    resumed, frm = crash_then_resume(make_task, config, tmp_path / "resumed", crash_after=30)
    assert frm == "step-00000020.safetensors" and whole["chosen"] == resumed["chosen"]
    a = read_checkpoint(tmp_path / "whole" / "last.safetensors").state
    b = read_checkpoint(tmp_path / "resumed" / "last.safetensors").state
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "whole" / "choice.json").read_text())["candidates"] == \
        json.loads((tmp_path / "resumed" / "choice.json").read_text())["candidates"]


def test_bad_input_one_line(toy, tmp_path, capsys):
    short = tmp_path / "short"
    toy_person(short, n_frames=40)
    assert main(_args(toy, tmp_path / "o1", person=short)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "too few" not in err and "40 usable frames" in err

    # Landmarks in other units (centimetres instead of the corpus's scale): the generator's
    # normalisation does not fit this person.
    cm = tmp_path / "cm"
    clip = toy_clip("cm", 9, 200, 16, 5)
    write_toy_dataset(cm, make_clip("cm", "spk9", clip.denormalized() * 100, clip.features, encoder="toy"))
    assert main(_args(toy, tmp_path / "o2", person=cm)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "landmark normalisation does not match" in err

    # A corpus without audio features of the generator's encoder.
    bare = tmp_path / "bare" / "c0"
    write_toy_dataset(bare, toy_clip("c0", 2, 100, 16, 9), features=False)
    args = _args(toy, tmp_path / "o3")
    args[args.index("--corpus") + 1] = str(bare.parent)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "toy" in err and "c0" in err


def test_the_postnet_says_how_it_trains():
    """As a GAN: its discriminator, a parameter group for each optimiser, and each step's losses
    over a typed batch, METHOD.md's least squares and weighted sum term by term."""
    import torch

    from geneface.models.batches import PostnetBatch
    from geneface.models.syncnet import LandmarkSyncNet, sync_loss, windows_sync_prob
    from geneface.plugins.adversarial_postnet import AdversarialPostnet, PostnetConfig
    from geneface.training.postnet_task import PostnetTrainConfig

    torch.manual_seed(0)
    stage = AdversarialPostnet(PostnetConfig(widths=(8, 8), kernel=3))
    torch.nn.init.normal_(stage.net.generator.out.weight, std=0.05)  # not the identity
    disc = stage.discriminator().eval()  # no dropout: both sides see the same scores
    judge = LandmarkSyncNet(6, (8, 16, 16), 16).eval()
    c = PostnetTrainConfig(segment=8)
    assert [g.name for g in stage.param_groups(c, None)] == ["gen"]
    assert [g.name for g in stage.discriminator_groups(disc, c, None)] == ["disc"]
    assert {id(p) for p in stage.param_groups(c, None)[0].params} == {id(p) for p in stage.net.generator.parameters()}

    g = torch.Generator().manual_seed(1)
    batch = PostnetBatch(torch.randn(2, 8, 204, generator=g), torch.randn(2, 16, 6, generator=g),
                         torch.randn(2, 8, 204, generator=g), torch.randn(2, 8, 204, generator=g),
                         torch.tensor([[0], [3]]))
    fake = stage.generated(batch)
    d = stage.discriminator_losses(disc, batch, fake, c)
    real, gen = disc(batch.person_true.reshape(-1, 204)), disc(fake.detach().reshape(-1, 204))
    assert torch.equal(d.total(), 0.5 * (((real - 1) ** 2).mean() + (gen ** 2).mean()))
    assert d.metrics["d_real"] == real.mean().item() and d.metrics["d_fake"] == gen.mean().item()

    losses = stage.generator_losses(disc, batch, fake, c, judge=judge)
    assert list(losses.terms) == ["adv", "sync", "mse"]
    adv = ((disc(fake.reshape(-1, 204)) - 1) ** 2).mean()
    sync = sync_loss(windows_sync_prob(judge, fake, batch.corpus_features, batch.sync_starts))
    mse = ((stage.net.generator(batch.person) - batch.person_true) ** 2).mean()
    assert torch.equal(losses.total(), c.w_adv * adv + c.w_sync * sync + c.w_mse * mse)
    losses.total().backward()  # the generator's losses reach its weights
    assert stage.net.generator.out.weight.grad is not None
