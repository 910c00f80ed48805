"""Can any signal the postnet's checkpoint chooser sees predict the unseen-clip ranking?

Runs on a work folder of `bench_adapters_synth.py` (its person, its 6 unseen clips and one
or more postnet runs with their candidates). For every candidate checkpoint it computes

- the ground-truth score the bench ranks by (mouth gap / best + mouth LMD / best on the 6
  unseen clips), and the same score on two halves of those clips (is the ranking itself
  stable?);
- what the chooser can see: its validation curves (held-out MSE, sync loss) and the
  person's held-out last 1/11 scored like the unseen clips (mouth gap, LMD), plus the same
  on the person's training frames;

and prints Spearman correlations between each signal and the ground truth, per run, as one
JSON line.

    python benchmarks/bench_choice_signals.py --work /tmp/adsyn --corpus a2m_out/corpus \
        --motion-generator VAE --syncnet SYNCNET --run postnet --run postnet_seed1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_adapters_synth import split_corpus  # noqa: E402


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def relative_score(rows: dict) -> dict:
    best_gap = min(v["mouth_gap"] for v in rows.values())
    best_lmd = min(v["lmd_mm"] for v in rows.values())
    return {k: v["mouth_gap"] / best_gap + v["lmd_mm"] / best_lmd for k, v in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--motion-generator", type=Path, required=True)
    ap.add_argument("--syncnet", type=Path, required=True)
    ap.add_argument("--run", action="append", required=True, help="a postnet run folder under --work")
    args = ap.parse_args()

    import torch

    from geneface.app.bench_adapters import compare_adapters
    from geneface.metrics.motion import lmd_per_frame, mouth_gap, mouth_statistics
    from geneface.registry import get_registry
    from geneface.training.config import TrainConfig
    from geneface.training.recipe import TrainInputs, load_recipe

    torch.set_num_threads(1)
    w = args.work
    ids = [c["id"] for c in json.loads((w / "eval" / "corpus.json").read_text())["clips"]]
    halves = {"A": ids[0::2], "B": ids[1::2]}
    for h, sel in halves.items():
        split_corpus(w / "person_all", w / f"eval_{h}", sel)
    generator = get_registry().load(args.motion_generator, "motion_generator", "--motion-generator")
    syncnet = get_registry().load(args.syncnet, "syncnet", "--syncnet")

    # The chooser's own data, exactly as the postnet task builds it.
    entry = get_registry().get("domain_adapter", "adversarial_postnet")
    options = {"person": w / "person", "corpus": [args.corpus], "motion_generator": args.motion_generator,
               "syncnet": args.syncnet, "encoder": "mel"}
    task = load_recipe(entry.cls).build(TrainInputs(entry.cls, (), options, {}, None, TrainConfig(), get_registry())).task
    mean, std = task.person.mean, task.person.std

    def scored(pairs):
        outs = [task._run(p.gen).reshape(-1, 68, 3) * std + mean for p in pairs]
        trues = [p.true.reshape(-1, 68, 3) * std + mean for p in pairs]
        gap = mouth_gap(mouth_statistics(np.concatenate(outs)), mouth_statistics(np.concatenate(trues)))
        lmd = float(np.concatenate([lmd_per_frame(a, b) for a, b in zip(outs, trues)]).mean() * 1000)
        return gap, lmd

    result = {"bench": "choice_signals", "runs": {}}
    for run in args.run:
        folder = w / run
        choice = json.loads((folder / "choice.json").read_text())
        curves = {c["step"]: c for c in choice["candidates"]}
        cands = sorted((folder / "candidates").glob("step-*.safetensors"))
        stages = [(c.stem, get_registry().load(c, "domain_adapter", "candidate")) for c in cands]
        truth = {}
        for name, path in (("all", w / "eval"), ("A", w / "eval_A"), ("B", w / "eval_B")):
            rows = compare_adapters(w / "person", generator, stages, syncnet, eval_path=path, registry=get_registry())["rows"]
            truth[name] = relative_score({r["label"]: r["scores"] for r in rows if r["label"] != "truth"})
        signals = {k: {} for k in ("val_mse", "val_sync_loss", "held_out_gap", "held_out_lmd", "train_gap",
                                   "train_lmd")}
        for (label, stage) in stages:
            task.stage.net.load_state_dict(stage.net.state_dict())
            step = int(label.split("-")[1])
            signals["val_mse"][label] = curves[step]["mse"]
            signals["val_sync_loss"][label] = curves[step]["sync_loss"]
            signals["held_out_gap"][label], signals["held_out_lmd"][label] = scored(task.held_out)
            signals["train_gap"][label], signals["train_lmd"][label] = scored(task.person_train)
        labels = sorted(truth["all"])
        gt = [truth["all"][k] for k in labels]
        ranked = sorted(labels, key=truth["all"].get)
        result["runs"][run] = {
            "candidates": len(labels), "chosen_step": choice["chosen_step"],
            "chosen_rank": ranked.index(f"step-{choice['chosen_step']:08d}") + 1,
            "ground_truth_split_half_rho": spearman([truth["A"][k] for k in labels], [truth["B"][k] for k in labels]),
            "top3_half_A": sorted(labels, key=truth["A"].get)[:3], "top3_half_B": sorted(labels, key=truth["B"].get)[:3],
            "rho_with_ground_truth": {k: spearman([v[x] for x in labels], gt) for k, v in signals.items()},
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
