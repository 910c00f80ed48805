"""Domain adapters on a synthetic person with exact ground truth (issue 14's "purpose" check).

The person speaks with a known style the generic corpus does not have (mouth amplitude x1.5
and a lip-corner habit, `synth-corpus --identity-id --mouth-amplitude --lip-corner-offset`).
The adapters learn from the first 16 of 22 clips (their last 1/11 held out for the postnet's
checkpoint choice); the last 6 clips are never seen by any of them and are scored against
their exact ground truth: mouth statistics, landmark distance, sync confidence. Every
candidate checkpoint of the postnet is scored on those 6 clips too, to see where the
automatic choice ranks among them.

    python benchmarks/bench_adapters_synth.py --work /tmp/adsyn --corpus a2m_out/corpus \
        --motion-generator a2m_out/vae/model.safetensors --syncnet a2m_out/syncnet/model.safetensors

Steps already done in --work are kept (delete the folder to start over). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PERSON_CLIPS, EVAL_CLIPS = 16, 6


def geneface(*args: str) -> None:
    print("+ geneface " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "geneface", *args], check=True)


def split_corpus(all_dir: Path, out: Path, ids: list[str]) -> None:
    """A corpus folder holding some of `all_dir`'s clips (links, and a filtered manifest)."""
    manifest = json.loads((all_dir / "corpus.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    manifest["clips"] = [c for c in manifest["clips"] if c["id"] in ids]
    for clip in ids:
        if not (out / clip).exists():
            os.symlink((all_dir / clip).resolve(), out / clip)
    (out / "corpus.json").write_text(json.dumps(manifest))


def make_person(w: Path, person_clips: int, eval_clips: int) -> None:
    """W/person (the clips adapters learn from) and W/eval (clips none of them sees) of one
    synthetic person with a known style, made once into W/person_all."""
    all_dir = w / "person_all"
    if not (all_dir / "corpus.json").exists():
        geneface("synth-corpus", str(all_dir), "--clips", str(person_clips + eval_clips), "--identities", "3",
                 "--identity-id", "2", "--voices", "en-us", "--test-fraction", "0", "--mouth-amplitude", "1.5",
                 "--lip-corner-offset", "0.5", "--sentences", "2", "--size", "64", "--seed", "11", "--quiet")
    ids = [c["id"] for c in json.loads((all_dir / "corpus.json").read_text())["clips"]]
    if len(ids) != person_clips + eval_clips:
        raise SystemExit(f"{all_dir} holds {len(ids)} clips, not {person_clips + eval_clips}: use another --work")
    split_corpus(all_dir, w / "person", ids[:person_clips])
    split_corpus(all_dir, w / "eval", ids[person_clips:])


def common_arguments(description: str) -> argparse.ArgumentParser:
    """The flags every synthetic-person adapter benchmark takes."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--corpus", type=Path, required=True, help="synthetic corpus of other speakers (style 1.0)")
    ap.add_argument("--motion-generator", type=Path, required=True)
    ap.add_argument("--syncnet", type=Path, required=True)
    return ap


def main() -> None:
    ap = common_arguments(__doc__)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--val-every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="the postnet's training seed (a run of its own per seed)")
    args = ap.parse_args()
    w = args.work
    w.mkdir(parents=True, exist_ok=True)
    timings = {}

    make_person(w, PERSON_CLIPS, EVAL_CLIPS)

    common = ["--motion-generator", str(args.motion_generator), "--syncnet", str(args.syncnet)]
    if not (w / "projection" / "model.safetensors").exists():
        t = time.perf_counter()
        geneface("train", "domain_adapter", "--plugin", "landmark_projection", "--person", str(w / "person"),
                 "--out", str(w / "projection"), "--overwrite")
        timings["projection_fit_s"] = time.perf_counter() - t
    post = w / ("postnet" if args.seed == 0 else f"postnet_seed{args.seed}")
    if not (post / "model.safetensors").exists():
        t = time.perf_counter()
        resume = ["--resume"] if (post / "state").is_dir() else []
        geneface("train", "domain_adapter", "--plugin", "adversarial_postnet", "--person", str(w / "person"),
                 "--corpus", str(args.corpus), *common, "--out", str(post), "--steps", str(args.steps), "--seed", str(args.seed),
                 "--val-every", str(args.val_every), "--ckpt-every", str(args.val_every), "--threads",
                 str(args.threads), "--quiet", *resume)
        timings["postnet_train_s"] = time.perf_counter() - t

    # The three adapters (and the person's statistics alone: projection with share 0, no clip)
    # on the 6 unseen clips.
    import attrs

    from geneface.app.bench_adapters import compare_adapters, format_table
    from geneface.registry import get_registry

    generator = get_registry().load(args.motion_generator, "motion_generator", "--motion-generator")
    syncnet = get_registry().load(args.syncnet, "syncnet", "--syncnet")
    proj = get_registry().load(w / "projection" / "model.safetensors", "domain_adapter", "projection")
    stats_only = type(proj)(attrs.evolve(proj.config, share=0.0, clip_low=0.0, clip_high=100.0))
    stats_only.load_state_dict(proj.state_dict())
    identity = get_registry().get("domain_adapter", "identity").cls()
    postnet = get_registry().load(post / "model.safetensors", "domain_adapter", "postnet")
    rows = [("identity", identity), ("person statistics only", stats_only), ("landmark_projection", proj),
            ("adversarial_postnet", postnet)]
    result = compare_adapters(w / "person", generator, rows, syncnet, eval_path=w / "eval", registry=get_registry())
    print(format_table(result), file=sys.stderr)

    # Where the automatic choice ranks by the unseen clips' ground truth.
    choice = json.loads((post / "choice.json").read_text())
    candidates = sorted((post / "candidates").glob("step-*.safetensors"))
    cand_rows = [(c.stem, get_registry().load(c, "domain_adapter", "candidate")) for c in candidates]
    scored = compare_adapters(w / "person", generator, cand_rows, syncnet, eval_path=w / "eval", registry=get_registry())
    held = {r["label"]: r["scores"] for r in scored["rows"] if r["label"] != "truth"}
    # Held-out score: mouth gap + LMD relative to the best candidate (both from ground truth).
    best_gap = min(s["mouth_gap"] for s in held.values())
    best_lmd = min(s["lmd_mm"] for s in held.values())
    ranked = sorted(held, key=lambda k: held[k]["mouth_gap"] / best_gap + held[k]["lmd_mm"] / best_lmd)
    chosen = f"step-{choice['chosen_step']:08d}"
    by_label = {r["label"]: r["scores"] for r in result["rows"]}
    gap0 = by_label["identity"]["mouth_gap"]
    out = {
        "bench": "adapters_synth", "eval_clips": EVAL_CLIPS, "rows": {k: v for k, v in by_label.items()},
        "gap_shrink": {k: 1 - by_label[k]["mouth_gap"] / gap0 for k in by_label if k not in ("truth", "identity")},
        "sync_drop": {k: 1 - by_label[k]["sync_confidence"] / by_label["identity"]["sync_confidence"]
                      for k in by_label if k not in ("truth", "identity")},
        "choice": {"chosen_step": choice["chosen_step"], "rank_by_ground_truth": ranked.index(chosen) + 1,
                   "of": len(ranked), "ranking": ranked[:5]},
        "candidates": {k: {"mouth_gap": v["mouth_gap"], "lmd_mm": v["lmd_mm"]} for k, v in held.items()},
        **timings,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
