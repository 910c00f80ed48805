"""The postnet's checkpoint choice judged by its regret, on a synthetic person long enough
to tell the candidates apart (issue 21, item 7).

The person speaks with a known style (mouth amplitude x1.5, a lip-corner habit) for
`--person-clips` clips (60 two-sentence clips: about 6 minutes, so the held-out last 1/11
that the chooser reads is about 800 frames, against 212 in bench_adapters_synth.py); the
last `--eval-clips` clips are never seen by the postnet and give every candidate its
ground-truth score: mouth gap / best + mouth LMD / best over the candidates (1 + 1 = 2 for
a candidate best on both).

For each seed a postnet is trained with a candidate at every validation, then each way of
turning the run into one model is scored on the unseen clips:

- `pick`: the default rule (geneface.training.checkpoint_choice.choose);
- `last`: the last step;
- `average@T`: the mean of the weights of the near-best candidates at tolerance T;
- `average_late_half`: the mean of every candidate of the run's second half (needs no
  validation at all).

regret = the way's score - the best candidate's; `regret / spread` divides by the range of
the candidates' scores (0 = as good as the best candidate, 1 = as bad as the worst;
negative = better than every candidate, which only an average can be).

    python benchmarks/bench_postnet_choice.py --work /tmp/pc --corpus SYNTH_CORPUS \
        --motion-generator VAE --syncnet SYNCNET --seeds 0,1,2 --steps 3000 --val-every 200

Steps already done in --work are kept. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_adapters_synth import common_arguments, geneface, make_person  # noqa: E402

TOLERANCES = (0.02, 0.05, 0.1, 0.25)


def train(w: Path, args, seed: int) -> tuple[Path, float]:
    run = w / f"postnet_seed{seed}"
    if (run / "model.safetensors").exists():
        return run, float("nan")
    started = time.perf_counter()
    resume = ["--resume"] if (run / "state").is_dir() else []
    geneface("train", "domain_adapter", "--plugin", "adversarial_postnet", "--person", str(w / "person"),
             "--corpus", str(args.corpus), "--motion-generator", str(args.motion_generator), "--syncnet",
             str(args.syncnet), "--out", str(run), "--steps", str(args.steps), "--seed", str(seed), "--val-every",
             str(args.val_every), "--ckpt-every", str(args.val_every), "--threads", str(args.threads), "--quiet",
             *resume)
    return run, time.perf_counter() - started


def ways(run: Path) -> dict[str, Path]:
    """Every way of turning the run into one model -> its checkpoint file (averages written here)."""
    from geneface.core.checkpoint import read_checkpoint, save_checkpoint
    from geneface.training.checkpoint_choice import ChoiceRule, average_checkpoints, choose
    from geneface.training.trainer import Trainer

    meta = read_checkpoint(Trainer.latest_state(run)).meta
    validations = meta.get("validations", [])
    collapsed = (meta.get("task") or {}).get("collapsed_at")
    excluded = [collapsed] if collapsed is not None else []
    cand = lambda step: run / "candidates" / f"step-{step:08d}.safetensors"  # noqa: E731
    steps = sorted(int(p.stem.split("-")[1]) for p in (run / "candidates").glob("step-*.safetensors"))
    steps = [s for s in steps if s not in excluded]
    out = {"pick": cand(choose(validations, ChoiceRule(average=False), excluded).step), "last": cand(steps[-1])}

    def averaged(name: str, chosen: list[int]) -> None:
        path = run / "ways" / f"{name}.safetensors"
        if not path.exists():
            save_checkpoint(path, average_checkpoints([cand(s) for s in chosen], {"averaged_steps": chosen}))
        out[name] = path

    for t in TOLERANCES:
        averaged(f"average@{t:g}", list(choose(validations, ChoiceRule(average_tolerance=t), excluded).averaged)
                 or [choose(validations, ChoiceRule(average=False), excluded).step])
    averaged("average_late_half", steps[len(steps) // 2:])
    return out


def main() -> None:
    ap = common_arguments(__doc__)
    ap.add_argument("--person-clips", type=int, default=60)
    ap.add_argument("--eval-clips", type=int, default=12)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--val-every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    w = args.work
    w.mkdir(parents=True, exist_ok=True)
    make_person(w, args.person_clips, args.eval_clips)

    import torch

    from geneface.app.bench_adapters import compare_adapters
    from geneface.registry import get_registry

    torch.set_num_threads(args.threads)
    generator = get_registry().load(args.motion_generator, "motion_generator", "--motion-generator")
    syncnet = get_registry().load(args.syncnet, "syncnet", "--syncnet")
    result = {"bench": "postnet_choice", "person_clips": args.person_clips, "eval_clips": args.eval_clips,
              "steps": args.steps, "val_every": args.val_every, "runs": {}}
    for seed in (int(s) for s in args.seeds.split(",")):
        run, train_s = train(w, args, seed)
        cands = sorted((run / "candidates").glob("step-*.safetensors"))
        named = ways(run)
        stages = [(c.stem, get_registry().load(c, "domain_adapter", "candidate")) for c in cands]
        stages += [(k, get_registry().load(p, "domain_adapter", k)) for k, p in named.items()]
        rows = compare_adapters(w / "person", generator, stages, syncnet, eval_path=w / "eval", registry=get_registry())["rows"]
        scores = {r["label"]: r["scores"] for r in rows if r["label"] != "truth"}
        cand_labels = [c.stem for c in cands]
        best_gap = min(scores[k]["mouth_gap"] for k in cand_labels)
        best_lmd = min(scores[k]["lmd_mm"] for k in cand_labels)
        score = {k: s["mouth_gap"] / best_gap + s["lmd_mm"] / best_lmd for k, s in scores.items()}
        cand_scores = np.array([score[k] for k in cand_labels])
        lo, spread = float(cand_scores.min()), float(np.ptp(cand_scores))
        ranked = sorted(cand_labels, key=score.get)
        record = json.loads((run / "run.json").read_text())
        result["runs"][str(seed)] = {
            "train_s": train_s, "stopped": record.get("stopped"), "candidates": len(cand_labels),
            "candidate_scores": {k: round(score[k], 4) for k in cand_labels},
            "best_candidate": ranked[0], "spread": spread,
            "ways": {k: {"file": str(p.relative_to(run)), "score": score[k], "regret": score[k] - lo,
                         "regret_over_spread": (score[k] - lo) / spread if spread > 0 else 0.0,
                         "mouth_gap": scores[k]["mouth_gap"], "lmd_mm": scores[k]["lmd_mm"],
                         "sync_confidence": scores[k].get("sync_confidence"),
                         **({"rank": ranked.index(Path(p).stem) + 1} if Path(p).parent.name == "candidates" else {})}
                     for k, p in named.items()},
            "held_out_frames": (record.get("data") or {}).get("held_out_frames"),
        }
        print(json.dumps({"seed": seed, **{k: round(v["regret_over_spread"], 3)
                                          for k, v in result["runs"][str(seed)]["ways"].items()}}), file=sys.stderr)
    names = next(iter(result["runs"].values()))["ways"].keys()
    result["mean_regret_over_spread"] = {k: float(np.mean([r["ways"][k]["regret_over_spread"]
                                                           for r in result["runs"].values()])) for k in names}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
