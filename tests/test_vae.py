"""The `vae` motion generator: flow prior, seamless windows, seeds, training via the CLI, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from support.toy import TINY_VAE_YAML, ToyEncoder, register_toy_encoder, train_toy_syncnet

from geneface.cli import main
from geneface.core.checkpoint import read_checkpoint
from geneface.core.records import AudioFeatures
from geneface.errors import StageMismatchError, UsageError
from geneface.models.vae import FlowPrior, MotionVAE
from geneface.plugins.vae import VAEConfig, VAEGenerator

SMALL = dict(audio_width=12, hidden=32, enc_layers=2, dec_layers=2, flow_layers=2, cond_hidden=32)


@pytest.fixture(autouse=True)
def _toy_encoder():
    register_toy_encoder()  # `--encoder toy` names the toy corpus's stored features


def _random_generator(**kw) -> VAEGenerator:
    torch.manual_seed(0)
    gen = VAEGenerator(VAEConfig(**{**SMALL, **kw}))
    # Non-zero flow output layers, so the prior is not the identity and really is tested.
    for p in gen.net.prior.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return gen


def _features(n_frames: int, width: int = 12, seed: int = 0) -> AudioFeatures:
    return AudioFeatures(np.random.default_rng(seed).normal(size=(2 * n_frames, width)), encoder="toy")


def test_flow_prior_is_invertible():
    torch.manual_seed(0)
    flow = FlowPrior(channels=16, hidden=16, n_layers=2, n_flows=4, cond=8)
    for p in flow.parameters():
        torch.nn.init.normal_(p, std=0.1)
    z, c = torch.randn(2, 16, 10), torch.randn(2, 8, 10)
    u, logdet = flow(z, c)
    assert torch.allclose(flow.reverse(u, c), z, atol=1e-5)
    assert not torch.allclose(u, z) and logdet.shape == (2,)


def test_kl_and_reconstruction_shapes():
    net = MotionVAE(12, hidden=32, enc_layers=2, dec_layers=2, flow_layers=2)
    out = net(torch.randn(3, 16, 204), torch.randn(3, 32, 12))
    assert out["recon"].shape == (3, 16, 204) and out["kl"].ndim == 0


def test_windows_are_seamless():
    gen = _random_generator()
    feats = _features(700)
    whole = gen.sample_normalized(feats.values, 1.0, 3, window=10_000)
    windowed = gen.sample_normalized(feats.values, 1.0, 3, window=64)
    assert gen.net.reach() > 0 and windowed.shape == (700, 204)
    np.testing.assert_array_equal(windowed, whole)  # bit for bit (length_invariant_convs)


def test_streamed_windows_equal_the_whole_and_the_noise_ignores_the_length():
    from geneface.core.stages import RunContext
    from geneface.plugins.vae import latent_noise

    gen = _random_generator()
    feats = _features(300)
    whole = gen.generate(feats).landmarks
    # The noise of a latent frame depends on (seed, frame) only: any stretch of any run.
    assert np.array_equal(latent_noise(3, 16, 0, 200)[..., 70:130], latent_noise(3, 16, 70, 130))
    assert not np.array_equal(latent_noise(3, 16, 0, 60), latent_noise(4, 16, 0, 60))
    # A prefix of the audio gives the prefix of the motion, up to the look-ahead the stage declares.
    context = gen.stream_context()
    assert context.exact and context.ahead >= gen.net.reach() and context.back >= context.ahead
    for end in (5, 130, 299):
        prefix = gen.generate(AudioFeatures(feats.values[: 2 * end], encoder="toy")).landmarks
        keep = max(0, end - context.ahead)
        assert np.array_equal(prefix[:keep], whole[:keep])
    # A window starting anywhere (on or off the latent grid) gives the whole run's frames
    # beyond its look-back: what a stream computes.
    for start in (3, 100, 150, 155, 201):  # windows from frames 0, 8, 58, 63, 109
        lo = start - min(start, context.back)
        part = gen.apply(AudioFeatures(feats.values[2 * lo:], encoder="toy"), RunContext(offset=lo))
        assert np.array_equal(part.landmarks[start - lo:], whole[start:]), start
    assert not gen.stream_context().why
    assert not _random_generator(utterance_norm=True).stream_context().exact


def test_seed_and_temperature():
    gen = _random_generator()
    feats = _features(80)
    a = gen.generate(feats, seed=1).landmarks
    assert np.array_equal(a, gen.generate(feats, seed=1).landmarks)
    assert not np.allclose(a, gen.generate(feats, seed=2).landmarks)
    cold = gen.generate(feats, temperature=0.0, seed=1).landmarks
    assert np.allclose(cold, gen.generate(feats, temperature=0.0, seed=2).landmarks)


def test_audio_shorter_than_a_window():
    gen = _random_generator(window=64)
    for n in (1, 3, 17):
        motion = gen.generate(_features(n))
        assert motion.n_frames == n and motion.mean is not None
    with pytest.raises(UsageError, match="too short"):
        gen.generate(AudioFeatures(np.zeros((1, 12)), encoder="toy"))


def test_feature_width_must_match_checkpoint(tmp_path):
    from geneface.core.checkpoint import save_checkpoint, stage_checkpoint
    from geneface.core.spec import StageSpec
    from geneface.registry import get_registry

    gen = _random_generator()
    save_checkpoint(tmp_path / "vae.safetensors", stage_checkpoint(gen, meta={"encoder": "toy"}))
    stage = get_registry().build(StageSpec("motion_generator", "vae", {}, tmp_path / "vae.safetensors"))
    assert stage.expected_width == 12 and stage.encoder == "toy"
    with pytest.raises(StageMismatchError, match="12 wide"):
        stage.generate(AudioFeatures(np.zeros((40, 80)), encoder="mel"))
    assert "trained on 'toy'" in stage.check_input(AudioFeatures(np.zeros((40, 12)), encoder="mel"))


def test_train_audio2motion_end_to_end(tmp_path_factory, capsys):
    root = tmp_path_factory.getbasetemp() / "toy_audio2motion"
    syncnet = train_toy_syncnet(root)
    (root / "tiny_vae.yaml").write_text(TINY_VAE_YAML)
    out = root / "vae"
    args = ["train", "audio2motion", "--data", str(root / "data"), "--syncnet", str(syncnet), "--out", str(out),
            "--config", str(root / "tiny_vae.yaml"), "--encoder", "toy", "--val-speakers", "spk1", "--quiet"]
    assert main(args + ["--steps", "200"]) == 0, capsys.readouterr().err
    ckpt = read_checkpoint(out / "model.safetensors", expect_kind="motion_generator", expect_plugin="vae")
    assert ckpt.meta["encoder"] == "toy" and ckpt.config["hidden"] == 64

    # Held-out speaker: the mouth follows the speech, in sync (the figures the issue asks for).
    from geneface.app.motion_figures import evaluate

    from geneface.registry import get_registry

    figures = evaluate([root / "data"], ToyEncoder(), ["spk1"], syncnet, out / "model.safetensors",
                       registry=get_registry())
    assert figures["speakers"] == ["spk1"] and figures["clips"] == 3
    assert figures["syncnet"]["offset"]["within_1"] >= 0.9
    vae = figures["vae"]
    assert vae["mouth_r_mean"] > 0.6, vae
    assert vae["sync_confidence"]["true_audio"] > vae["sync_confidence"]["shifted_audio"]
    assert vae["sync_confidence"]["clips_true_higher"] == 3
    # The same figures from the command line (`geneface bench generic`), written to --json too.
    capsys.readouterr()
    assert main(["bench", "generic", "--data", str(root / "data"), "--syncnet", str(syncnet), "--vae",
                 str(out / "model.safetensors"), "--encoder", "toy", "--val-speakers", "spk1", "--json",
                 str(root / "figures.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((root / "figures.json").read_text())
    assert printed["speakers"] == ["spk1"] and printed["vae"]["mouth_r_mean"] == pytest.approx(vae["mouth_r_mean"])
    # An existing --json file is refused in one line before any work, unless --overwrite.
    again = ["bench", "generic", "--data", str(root / "data"), "--syncnet", str(syncnet), "--encoder", "toy",
             "--val-speakers", "spk1", "--json", str(root / "figures.json")]
    assert main(again) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "figures.json" in err and "--overwrite" in err
    assert json.loads((root / "figures.json").read_text()) == printed

    # A width that does not fit the SyncNet is refused before any training.
    (root / "wide").mkdir(exist_ok=True)
    from support.toy import toy_datasets

    toy_datasets(root / "wide", 2, 1, 60, 20)
    code = main(["train", "audio2motion", "--data", str(root / "wide"), "--syncnet", str(syncnet), "--out",
                 str(tmp_path_factory.mktemp("x") / "o"), "--encoder", "toy"])
    assert code == 2 and "16 wide" in capsys.readouterr().err

    # Extending a finished run: only with --resume, and the sync switch survives the resume.
    assert main(args + ["--steps", "200"]) == 2
    state = read_checkpoint(sorted((out / "state").iterdir())[-1])
    assert "sync_on" in state.meta["task"]


def test_the_vae_says_how_it_trains():
    """Its losses over a typed batch are METHOD.md's sum, term by term in that order: the sync
    term only with a judge, the amplitude term only with its weight."""
    from geneface.models.batches import MotionWindows
    from geneface.models.syncnet import MOUTH_SLICE, LandmarkSyncNet, sync_loss, windows_sync_prob
    from geneface.training.vae_task import VAETrainConfig

    gen = _random_generator()
    judge = LandmarkSyncNet(12, (8, 16, 16), 16).eval()
    g = torch.Generator().manual_seed(1)
    batch = MotionWindows(torch.randn(2, 16, 204, generator=g), torch.randn(2, 32, 12, generator=g),
                          torch.tensor([[0, 3], [5, 11]]))
    c = VAETrainConfig(segment=16, w_amplitude=0.3)
    torch.manual_seed(5)
    losses = gen.losses(batch, c, judge=judge)
    assert list(losses.terms) == ["mse", "continuity", "kl", "sync", "amplitude"]
    assert list(losses.metrics) == ["mse", "continuity", "kl", "sync", "amplitude"]

    torch.manual_seed(5)  # the same draws: the posterior's, then the prior's
    x, a = batch.motion, batch.audio
    out = gen.net(x, a)
    recon = out["recon"]
    mse = torch.mean((recon - x) ** 2)
    cont = torch.mean(((recon[:, 1:] - recon[:, :-1]) - (x[:, 1:] - x[:, :-1])) ** 2)
    sync = sync_loss(windows_sync_prob(judge, recon, a, batch.sync_starts))
    drawn = gen.net.sample(a, torch.randn(2, gen.net.latent, 16 // gen.net.down))[:, :, MOUTH_SLICE]
    amp = torch.mean((drawn.std(1) - x[:, :, MOUTH_SLICE].std(1)) ** 2)
    want = c.w_mse * mse + c.w_continuity * cont + c.w_kl * out["kl"] + c.w_sync * sync + c.w_amplitude * amp
    assert torch.equal(losses.total(), want)
    assert losses.metrics["sync"] == sync.item() and losses.metrics["amplitude"] == amp.item()

    plain = gen.losses(batch, VAETrainConfig(segment=16))  # no judge yet, no amplitude weight
    assert list(plain.terms) == ["mse", "continuity", "kl"]
