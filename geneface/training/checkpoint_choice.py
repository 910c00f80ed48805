"""Choosing a GAN's checkpoint from its validation curves, and noticing when it collapses.

GeneFace's authors chose the postnet's checkpoint by hand (METHOD.md): validation sync loss
and MSE low, the discriminator's confidence on real and on generated frames both near 0.5
(it can no longer tell them apart), and as few steps as possible. `choose` writes that
practice down as a rule, in its order of importance:

    1. near-best: loss = sync_loss / lowest sync_loss + mse / lowest mse (each relative to
                  the run's best, so neither dominates by its units) within `tolerance` of
                  the lowest loss
    2. balanced:  among those, balance = |d_real - 0.5| + |d_fake - 0.5| within
                  `balance_tolerance` of the lowest balance
    3. chosen:    the earliest balanced step

or, with `average` (the default), the element-wise mean of the weights of every candidate
whose loss is within `average_tolerance` (25 %) of the lowest (`average_checkpoints`): a pick
among candidates that held-out frames cannot tell apart is luck, while their mean is one
model that stands in the middle of them. On a synthetic person of minutes (four seeds,
docs/adapters.md) the mean's regret was 0.15 of the candidates' spread on average and 0.17
at worst, the pick's 0.23 and 0.54. The pick is still computed and reported.

The losses come first: a discriminator near 0.5 does not make up for worse sync or MSE;
fewer steps only break near-ties (docs/adapters.md has how the rule was arrived at and
checked). `collapse`
says when training has gone wrong: the generated motion has lost its variance (mode
collapse), or the held-out MSE has risen at several evaluations in a row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import attrs
import numpy as np

from geneface.core.atomic import atomic_output

CURVES = ("sync_loss", "mse", "d_real", "d_fake")


@attrs.define
class ChoiceRule:
    tolerance: float = attrs.field(default=0.02, validator=attrs.validators.ge(0))  # of the lowest loss
    balance_tolerance: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))
    # Average the weights of the candidates within `average_tolerance` of the lowest loss
    # instead of picking one (measured better: docs/adapters.md, "The choice re-posed").
    average: bool = True
    average_tolerance: float = attrs.field(default=0.25, validator=attrs.validators.ge(0))


@attrs.define
class CollapseRule:
    min_variance: float = attrs.field(default=0.3, validator=attrs.validators.ge(0))  # output std / input std
    rising: int = attrs.field(default=3, validator=attrs.validators.ge(0))  # 0: off
    rise: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))  # above the best MSE by this share


@attrs.frozen
class Choice:
    step: int
    reason: str
    candidates: tuple  # [{"step", "near_best", "balanced", ...curves}] in step order
    averaged: tuple = ()  # with ChoiceRule.average: the steps whose weights are averaged (>= 2)


def _usable(v: dict) -> bool:
    m = v.get("metrics") or {}
    return all(np.isfinite(m.get(k, np.nan)) for k in CURVES)


def choose(validations: Sequence[dict], rule: ChoiceRule = ChoiceRule(),
           excluded: Sequence[int] = ()) -> Optional[Choice]:
    """The chosen step among `validations` ([{"step", "metrics"}]); None if none is usable."""
    cands = [v for v in validations if _usable(v) and v["step"] not in set(excluded)]
    if not cands:
        return None
    m = {k: np.array([c["metrics"][k] for c in cands], np.float64) for k in CURVES}
    best_sync, best_mse = max(m["sync_loss"].min(), 1e-12), max(m["mse"].min(), 1e-12)
    rel = m["sync_loss"] / best_sync + m["mse"] / best_mse
    near = rel <= rel.min() * (1 + rule.tolerance)
    balance = np.abs(m["d_real"] - 0.5) + np.abs(m["d_fake"] - 0.5)
    balanced = near & (balance <= balance[near].min() + rule.balance_tolerance)
    pick = int(np.flatnonzero(balanced)[0])  # candidates are in step order: the earliest
    c = cands[pick]["metrics"]
    reason = (f"step {cands[pick]['step']}: sync/lowest + MSE/lowest {rel[pick]:.3f}, within {rule.tolerance:.0%} of "
              f"the lowest {rel.min():.3f} ({int(near.sum())} of {len(cands)} steps are), the discriminator "
              f"the most undecided among them (real {c['d_real']:.2f}, generated {c['d_fake']:.2f}; 0.5 = "
              f"undecided) and the earliest such; sync loss {c['sync_loss']:.3f} (lowest {best_sync:.3f}), "
              f"MSE {c['mse']:.4f} (lowest {best_mse:.4f})")
    rows = tuple({"step": int(v["step"]), "near_best": bool(n), "balanced": bool(b), "balance": float(bal),
                  "relative_loss": float(r),
                  **{k: float(v["metrics"][k]) for k in v["metrics"] if _is_number(v["metrics"][k])}}
                 for v, n, b, bal, r in zip(cands, near, balanced, balance, rel))
    within = rel <= rel.min() * (1 + rule.average_tolerance)
    averaged = tuple(int(cands[i]["step"]) for i in np.flatnonzero(within)) if rule.average else ()
    if len(averaged) >= 2:
        reason = (f"the mean of the weights of steps {', '.join(map(str, averaged))}: sync/lowest + MSE/lowest "
                  f"within {rule.average_tolerance:.0%} of the lowest {rel.min():.3f} (the rule alone would pick "
                  f"step {cands[pick]['step']})")
        return Choice(int(cands[pick]["step"]), reason, rows, averaged)
    return Choice(int(cands[pick]["step"]), reason, rows)


def average_checkpoints(paths: Sequence[Path], meta: Optional[dict] = None):
    """One checkpoint whose floating-point tensors are the element-wise mean of `paths`'
    (checkpoints of one model: the same plugin, config and tensor names and shapes; other
    tensors must be equal). Kind, plugin and config are the first one's; `meta` replaces its meta."""
    import torch

    from geneface.core.checkpoint import Checkpoint, read_checkpoint
    from geneface.errors import UsageError

    if not paths:
        raise UsageError("no checkpoints to average")
    first = read_checkpoint(Path(paths[0]))
    sums = {k: v.to(torch.float64) if v.is_floating_point() else v for k, v in first.state.items()}
    for path in paths[1:]:
        ck = read_checkpoint(Path(path))
        if (ck.plugin, ck.config, sorted(ck.state)) != (first.plugin, first.config, sorted(first.state)):
            raise UsageError(f"{path}: not the same model as {paths[0]} (plugin, config or tensors differ); "
                             "cannot average them")
        for k, v in ck.state.items():
            if v.shape != sums[k].shape:
                raise UsageError(f"{path}: tensor {k} is {tuple(v.shape)}, {tuple(sums[k].shape)} in {paths[0]}")
            if v.is_floating_point():
                sums[k] += v.to(torch.float64)
            elif not torch.equal(v, sums[k]):
                raise UsageError(f"{path}: tensor {k} (not floating point) differs from {paths[0]}'s; "
                                 "cannot average it")
    state = {k: (v / len(paths)).to(first.state[k].dtype) if v.is_floating_point() else v for k, v in sums.items()}
    return Checkpoint(first.kind, first.plugin, first.plugin_version, first.config, state,
                      dict(first.meta if meta is None else meta))


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def collapse(history: Sequence[dict], rule: CollapseRule = CollapseRule()) -> Optional[str]:
    """Why training has collapsed, judged on the validations so far ([{"step", "metrics"}]), or None."""
    if not history:
        return None
    last = history[-1]["metrics"]
    ratio = last.get("variance_ratio")
    if ratio is not None and ratio < rule.min_variance:
        return (f"collapse: generated motion kept {ratio:.0%} of its input's variation over time "
                f"(limit {rule.min_variance:.0%})")
    if rule.rising and len(history) > rule.rising:
        mses = [h["metrics"].get("mse", np.nan) for h in history]
        tail = mses[-(rule.rising + 1):]
        best_i = int(np.nanargmin(mses))
        if all(b > a for a, b in zip(tail, tail[1:])) and tail[-1] > mses[best_i] * (1 + rule.rise):
            return (f"collapse: held-out MSE rose at {rule.rising} evaluations in a row ({tail[0]:.4f} -> "
                    f"{tail[-1]:.4f}; best {mses[best_i]:.4f} at step {history[best_i]['step']})")
    return None


def write_choice(out: Path, choice: Choice, rule: ChoiceRule, stopped: Optional[dict] = None) -> None:
    """OUT/choice.json (every candidate's scores, the rule, the reason) and OUT/curves.png."""
    record = {"chosen_step": choice.step, "averaged_steps": list(choice.averaged), "reason": choice.reason,
              "rule": attrs.asdict(rule),
              "formula": "near-best: sync_loss/lowest + mse/lowest <= (1+tolerance)*its lowest; balanced: "
                         "|d_real-0.5|+|d_fake-0.5| <= lowest among near-best + balance_tolerance; chosen: the "
                         "earliest balanced step; with average, the mean of the weights of the steps within "
                         "average_tolerance of the lowest loss instead",
              "stopped": stopped, "candidates": list(choice.candidates)}
    out = Path(out)
    with atomic_output(out / "choice.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    plot_curves(out / "curves.png", choice)


def plot_curves(path: Path, choice: Choice) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    steps = [c["step"] for c in choice.candidates]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = ((("sync_loss",), "validation sync loss"), (("mse",), "held-out MSE (normalised)"),
              (("d_real", "d_fake"), "discriminator confidence"))
    for ax, (keys, title) in zip(axes, panels):
        for k in keys:
            ax.plot(steps, [c[k] for c in choice.candidates], marker=".", label=k)
        if choice.averaged:
            for i, step in enumerate(choice.averaged):
                ax.axvline(step, color="crimson", linestyle=":", label="averaged" if i == 0 else None)
        else:
            ax.axvline(choice.step, color="crimson", linestyle="--", label=f"chosen: step {choice.step}")
        if "d_real" in keys:
            ax.axhline(0.5, color="grey", linewidth=0.8)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def rechoose(run: Path, rule: ChoiceRule) -> Choice:
    """Choose again in a finished run folder (its saved validations and candidates) with
    another rule, without training: rewrites choice.json, curves.png and model.safetensors."""
    import shutil

    from geneface.core.checkpoint import read_checkpoint
    from geneface.errors import UsageError
    from geneface.training.trainer import Trainer

    run = Path(run)
    state = Trainer.latest_state(run)
    if state is None or not (run / "candidates").is_dir():
        raise UsageError(f"{run}: not a run folder with candidates (train with a task that chooses its model)")
    meta = read_checkpoint(state).meta
    collapsed = (meta.get("task") or {}).get("collapsed_at")
    choice = choose(meta.get("validations", []), rule, [collapsed] if collapsed is not None else [])
    if choice is None:
        raise UsageError(f"{run}: no usable validation to choose from")
    write_choice(run, choice, rule, {"step": collapsed, "reason": "collapse"} if collapsed is not None else None)
    with atomic_output(run / "model.safetensors") as tmp:
        shutil.copyfile(chosen_model(run, choice), tmp)
    return choice


def chosen_model(run: Path, choice: Choice) -> Path:
    """The file of the chosen model in a run folder: the chosen candidate, or for an averaged
    choice RUN/averaged.safetensors (written here from the candidates)."""
    from geneface.core.checkpoint import read_meta, save_checkpoint

    candidate = lambda step: Path(run) / "candidates" / f"step-{step:08d}.safetensors"  # noqa: E731
    if not choice.averaged:
        return candidate(choice.step)
    meta = {**read_meta(candidate(choice.averaged[-1])), "selected_by": "average",
            "averaged_steps": list(choice.averaged)}
    out = Path(run) / "averaged.safetensors"
    save_checkpoint(out, average_checkpoints([candidate(s) for s in choice.averaged], meta))
    return out
