"""Training `adversarial_postnet`: generic motion -> the person's style, adversarially.

    geneface train domain_adapter --plugin adversarial_postnet --person DATASET \
        --corpus CORPUS [--corpus ...] --motion-generator VAE.safetensors --syncnet SYNC.safetensors --out DIR

Every step (METHOD.md): the frozen motion generator's output for (a) corpus audio and (b) the
person's own audio passes through the postnet; a per-frame discriminator learns the person's
real frames from (a); the postnet minimises
    0.85 * adversarial(a) + 0.1 * sync(a, through the frozen SyncNet) + 0.05 * MSE(b, person's landmarks)
with RMSprop (lr 1e-4) for both; the model says how (geneface/plugins/adversarial_postnet.py:
its discriminator, parameter groups and both steps' losses over the `PostnetBatch` drawn
here). The frozen generator's outputs are computed once, before
training (one draw per clip), so a step costs only the postnet, the discriminator and the
SyncNet.

Every validation records the held-out sync loss and MSE (the person's last 1/11), the
discriminator's mean output on the person's held-out frames and on generated ones, and how
much of its input's variation the generated motion keeps. The run stops itself when it
collapses, and afterwards chooses its model by the rule in geneface.training.checkpoint_choice
(OUT/choice.json, OUT/curves.png).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import attrs
import numpy as np
import torch

from geneface.core.checkpoint import Checkpoint, stage_checkpoint
from geneface.core.records import AudioFeatures
from geneface.errors import StageMismatchError, UsageError
from geneface.models.batches import PostnetBatch
from geneface.models.syncnet import MOUTH_SLICE, V_FRAMES, offset_search
from geneface.training.checkpoint_choice import (ChoiceRule, CollapseRule, choose, chosen_model, collapse,
                                                 write_choice)
from geneface.training.person_data import PersonData, load_person, rebase
from geneface.training.recipe import BuiltTask, Recipe, TrainInputs, TrainOption
from geneface.training.task import OptimizerSpec, TrainTask


@attrs.define
class PostnetTrainConfig:
    segment: int = attrs.field(default=32, validator=attrs.validators.gt(0))  # frames per training sequence
    w_adv: float = 0.85
    w_sync: float = 0.1
    w_mse: float = 0.05
    sync_windows: int = attrs.field(default=4, validator=attrs.validators.gt(0))  # per sequence
    val_corpus_clips: int = attrs.field(default=16, validator=attrs.validators.gt(0))
    # checkpoint choice (geneface.training.checkpoint_choice)
    tolerance: float = 0.02
    balance_tolerance: float = 0.1
    # average the weights of the candidates within `average_tolerance` of the lowest loss
    # instead of picking one (the measured better default: docs/adapters.md)
    average: bool = True
    average_tolerance: float = 0.25
    # collapse: stop when the output keeps less than `min_variance` of its input's variation,
    # or the held-out MSE rose at `rising` evaluations in a row to `rise` above its best
    min_variance: float = 0.3
    rising: int = 3
    rise: float = 0.1


@attrs.frozen(eq=False)
class Pair:
    """One clip through the frozen generator: its output (`gen`), the truth (`true`, the
    person's clips only) in the person's normalisation (T x 204), and the features (2T x D)."""

    name: str
    gen: np.ndarray
    features: np.ndarray
    true: Optional[np.ndarray] = None

    @property
    def n_frames(self) -> int:
        return len(self.gen)


def generate_pairs(generator, clips: Sequence, person: PersonData, encoder: str, with_truth: bool) -> list[Pair]:
    """Run the frozen motion generator over `clips` once (through the stage contract)."""
    pairs = []
    for clip in clips:
        motion = generator.generate(AudioFeatures(clip.features, encoder=encoder))
        gen = rebase(motion, person.mean, person.std)
        n = min(len(gen), clip.n_frames)
        pairs.append(Pair(clip.name, gen[:n], clip.features[: 2 * n], clip.landmarks[:n] if with_truth else None))
    return pairs


class PostnetNets(torch.nn.Module):
    """Everything trained: the exported adapter and the discriminator (saved together for resume)."""

    def __init__(self, adapter: torch.nn.Module, disc: torch.nn.Module):
        super().__init__()
        self.adapter, self.disc = adapter, disc


class PostnetTask(TrainTask):
    name = "adversarial_postnet"
    best_metric = "mse"
    best_mode = "min"
    ddp_wrap = False  # the step calls the generator and the discriminator separately
    keep_candidates = True
    progress_metrics = ("d_real", "d_fake")

    def __init__(self, stage, syncnet, person: PersonData, corpus: list[Pair], person_train: list[Pair],
                 held_out: list[Pair], config: Optional[PostnetTrainConfig] = None, info: Optional[dict] = None):
        self.config = c = config or PostnetTrainConfig()
        self.stage, self.person, self.info = stage, person, info or {}
        stage.set_person(person.mean, person.std)
        self.model = PostnetNets(stage.net, stage.discriminator())
        self.syncnet = syncnet.net
        self.syncnet.eval()
        for p in self.syncnet.parameters():
            p.requires_grad_(False)
        seg = c.segment
        self.corpus = [p for p in corpus if p.n_frames >= max(seg, V_FRAMES)]
        self.person_train = [p for p in person_train if p.n_frames >= seg]
        if not self.corpus:
            raise UsageError(f"no corpus clip is {seg} frames long; lower task.segment in --config")
        if not self.person_train:
            longest = max((p.n_frames for p in person_train), default=0)
            raise UsageError(f"{person.path}: no stretch of {seg} well-tracked training frames (longest {longest}); "
                             "lower task.segment in --config")
        self.held_out = [p for p in held_out if p.n_frames >= V_FRAMES]
        self.corpus_val = self.corpus[: c.val_corpus_clips]
        self.history: list[dict] = []  # validations so far, for collapse detection
        self.collapsed_at: Optional[int] = None

    # -- training ------------------------------------------------------------------------
    def optimizers(self, run_schedule):
        rmsprop = lambda groups: torch.optim.RMSprop(groups)  # noqa: E731  (METHOD.md: RMSprop for both)
        c = self.config
        return [OptimizerSpec("disc", self.stage.discriminator_groups(self.model.disc, c, run_schedule), rmsprop),
                OptimizerSpec("gen", self.stage.param_groups(c, run_schedule), rmsprop)]

    def to(self, device) -> None:
        self.model.to(device)
        self.syncnet.to(device)

    def config_dict(self) -> dict:
        from geneface.core.config import unstructure

        return {"task": unstructure(self.config), "model": unstructure(self.stage.config)}

    def state(self) -> dict:
        return {"history": self.history, "collapsed_at": self.collapsed_at}

    def load_state(self, state: dict) -> None:
        self.history = list(state.get("history", []))
        self.collapsed_at = state.get("collapsed_at")

    @staticmethod
    def _segments(rng, pairs: list[Pair], n: int, seg: int, truth: bool):
        """(generated, features, truth or None) of `n` segments, B x seg x ... tensors each."""
        weights = np.array([p.n_frames - seg + 1 for p in pairs], np.float64)
        gen, feats, true = [], [], []
        for i in rng.choice(len(pairs), size=n, p=weights / weights.sum()):
            p = pairs[int(i)]
            t = int(rng.integers(p.n_frames - seg + 1))
            gen.append(p.gen[t: t + seg])
            feats.append(p.features[2 * t: 2 * (t + seg)])
            if truth:
                true.append(p.true[t: t + seg])
        return (torch.from_numpy(np.stack(gen)), torch.from_numpy(np.stack(feats)),
                torch.from_numpy(np.stack(true)) if truth else None)

    def sample_batch(self, rng, batch_size):
        seg = self.config.segment
        corpus, corpus_features, _ = self._segments(rng, self.corpus, batch_size, seg, False)
        person, _, person_true = self._segments(rng, self.person_train, batch_size, seg, True)
        starts = rng.integers(0, seg - V_FRAMES + 1, size=(batch_size, self.config.sync_windows))
        return PostnetBatch(corpus, corpus_features, person, person_true, torch.from_numpy(starts))

    def train_step(self, ctx, batch: PostnetBatch, step):
        # One draw of the generator serves both steps: the discriminator's, then its own.
        stage, disc, c = self.stage, self.model.disc, self.config
        with ctx.autocast():
            fake = stage.generated(batch)
            d = stage.discriminator_losses(disc, batch, fake, c)
            d_loss = d.total()
        ctx.step("disc", d_loss)
        with ctx.autocast():
            g = stage.generator_losses(disc, batch, fake, c, judge=self.syncnet)
            g_loss = g.total()
        ctx.step("gen", g_loss)
        return {"loss": g_loss.detach(), **d.metrics, **g.metrics}

    # -- validation ----------------------------------------------------------------------
    def _run(self, z: np.ndarray) -> np.ndarray:
        return self.stage.correct(np.ascontiguousarray(z, dtype=np.float32))

    def validate(self) -> dict:
        disc = self.model.disc
        device = next(disc.parameters()).device
        mse_sum = sync_sum = frames = windows = 0.0
        real = []
        for p in self.held_out:
            out = self._run(p.gen)
            mse_sum += float(np.sum(np.mean((out - p.true) ** 2, axis=1)))
            frames += p.n_frames
            found = offset_search(self.syncnet, torch.from_numpy(out[:, MOUTH_SLICE]), torch.from_numpy(p.features), 0)
            n_win = p.n_frames - V_FRAMES + 1
            sync_sum += -np.log(max(found.prob_at_zero, 1e-6)) * n_win
            windows += n_win
            real.append(p.true)
        generated = [self._run(p.gen) for p in self.corpus_val]
        with torch.no_grad():
            d_real = float(disc(torch.from_numpy(np.concatenate(real)).to(device)).mean())
            d_fake = float(disc(torch.from_numpy(np.concatenate(generated)).to(device)).mean())
        # Collapse shows as generated motion that no longer varies like its input does.
        spread_in = np.mean([p.gen.std(0).mean() for p in self.corpus_val])
        spread_out = np.mean([g.std(0).mean() for g in generated])
        return {"mse": mse_sum / frames, "sync_loss": sync_sum / windows, "d_real": d_real, "d_fake": d_fake,
                "variance_ratio": float(spread_out / max(spread_in, 1e-12))}

    def on_validation(self, metrics: dict, step: int) -> Optional[str]:
        self.history = [h for h in self.history if h["step"] < step] + [{"step": step, "metrics": metrics}]
        c = self.config
        reason = collapse(self.history, CollapseRule(c.min_variance, c.rising, c.rise))
        if reason:
            self.collapsed_at = step
        return reason

    def choose_model(self, validations: list[dict], out) -> Optional[Path]:
        c = self.config
        rule = ChoiceRule(c.tolerance, c.balance_tolerance, c.average, c.average_tolerance)
        excluded = [self.collapsed_at] if self.collapsed_at is not None else []
        choice = choose(validations, rule, excluded)
        if choice is None:
            print(f"{self.name}: no usable validation to choose from; the model is the last step's", file=sys.stderr)
            return None
        stopped = {"step": self.collapsed_at, "reason": "collapse"} if self.collapsed_at is not None else None
        write_choice(Path(out), choice, rule, stopped)
        print(f"{self.name}: chose {choice.reason}", file=sys.stderr)
        return chosen_model(Path(out), choice)

    def export(self, meta: dict) -> Checkpoint:
        return stage_checkpoint(self.stage, meta={**meta, "data": self.info})


class PostnetRecipe(Recipe):
    """`geneface train domain_adapter --plugin adversarial_postnet`: see the module doc."""

    options = (
        TrainOption("person", "the person's dataset (geneface process) or synthetic clip/corpus of one identity",
                    kind="path", required=True),
        TrainOption("corpus", "a dataset, folder of datasets or synthetic corpus of other speakers (repeatable)",
                    kind="paths", required=True),
        TrainOption("motion-generator", "a trained motion generator checkpoint (e.g. geneface train audio2motion)",
                    kind="path", required=True),
        TrainOption("syncnet", "a trained syncnet checkpoint (geneface train syncnet)", kind="path", required=True),
        TrainOption("encoder", "audio features to read when the motion generator does not name its own",
                    default="mel"),
    )
    needs_data = False
    # METHOD.md: RMSprop lr 1e-4, 20k steps at most (the choice and the collapse check stop earlier).
    loop_defaults = {"steps": 20_000, "batch_size": 16, "lr": 1e-4, "schedule": "constant", "val_every": 500,
                     "ckpt_every": 500, "keep_best": 1}

    def build(self, inputs: TrainInputs) -> BuiltTask:
        from geneface.training.data import check_width, load_clips

        o, registry = inputs.options, inputs.registry
        generator = registry.load(o["motion_generator"], "motion_generator", "--motion-generator")
        judge = registry.load(o["syncnet"], "syncnet", "--syncnet")
        name = getattr(generator, "encoder", "") or o["encoder"]
        encoder = registry.get("audio_encoder", name, where="--encoder").cls()
        started = time.perf_counter()
        person = load_person(o["person"], encoder, where="--person")
        corpus = load_clips(o["corpus"], encoder)
        for what, stage, path in (("motion generator", generator, o["motion_generator"]),
                                  ("syncnet", judge, o["syncnet"])):
            check_width([*person.train, *corpus], stage.expected_width, f"{what} {path}")
        check_layout(generator, person, o["motion_generator"])
        stage = inputs.stage_cls(inputs.model_config())
        print(f"running the frozen motion generator over {len(corpus)} corpus clips and the person's "
              f"{len(person.train) + len(person.held_out)} pieces", file=sys.stderr)
        pairs = {"corpus": generate_pairs(generator, corpus, person, name, False),
                 "train": generate_pairs(generator, person.train, person, name, True),
                 "held": generate_pairs(generator, person.held_out, person, name, True)}
        info = {**person.info(), "corpus": [str(p) for p in o["corpus"]], "corpus_clips": len(corpus),
                "encoder": name, "motion_generator": str(o["motion_generator"]), "syncnet": str(o["syncnet"])}
        print(f"data ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        task = PostnetTask(stage, judge, person, pairs["corpus"], pairs["train"], pairs["held"],
                           inputs.task_config(PostnetTrainConfig), info)
        return BuiltTask(task, {"data": info})


def check_layout(generator, person: PersonData, path) -> None:
    """The generator's landmarks must be the person's kind: same layout and units."""
    from geneface.core.landmarks68 import layout_problem

    clip = person.train[0]
    motion = generator.generate(AudioFeatures(clip.features, encoder=getattr(generator, "encoder", "")))
    reference = motion.mean if motion.mean is not None else motion.landmarks.mean(0)
    problem = layout_problem(person.mean, reference[None])
    if problem:
        raise StageMismatchError(f"--motion-generator {path}: its landmark normalisation does not match the "
                                 f"person's ({problem})")
