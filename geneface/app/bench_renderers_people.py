"""`geneface bench renderers --data A --data B ...`: the renderer bench over several persons.

Each person gets the one-person bench (geneface.app.bench_renderers: every renderer trained for
the same wall-clock budget on the person's dataset, scored on its held-out last 1/11) in
OUT/PERSON/, and the run ends with a summary of every renderer against a baseline
(`nearest_frame` by default): per person the differences, and over the persons the wins and
losses on each score (PSNR and SSIM full frame and face box, LPIPS where scored, mouth LMD).
The whole OUT folder is built under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

# (score key, label, higher is better)
SCORES = (("psnr_face", "PSNR face", True), ("psnr", "PSNR", True), ("ssim_face", "SSIM face", True),
          ("ssim", "SSIM", True), ("lpips", "LPIPS", False), ("lpips_face", "LPIPS face", False),
          ("lmd_px", "LMD", False))
SUMMARY = "summary"


def person_names(datasets: Sequence[Path]) -> list[str]:
    """One folder name per dataset: its own name, with its parent's where two names clash."""
    names = [Path(d).resolve().name for d in datasets]
    return [f"{Path(d).resolve().parent.name}_{n}" if names.count(n) > 1 else n for d, n in zip(datasets, names)]


def summarize(results: dict[str, dict], baseline: str) -> dict:
    """Every renderer against `baseline`, person by person and in wins / losses / ties."""
    renderers = sorted({r["name"] for res in results.values() for r in res["rows"]} - {baseline})
    per_person, totals = {}, {}
    for person, res in results.items():
        rows = {r["name"]: r for r in res["rows"] if r["status"] == "ok" and r.get("scores")}
        base = rows.get(baseline)
        per_person[person] = {}
        for name in renderers:
            row = rows.get(name)
            entry = {}
            for key, _, higher in SCORES:
                mine = None if row is None else row["scores"].get(key)
                theirs = None if base is None else base["scores"].get(key)
                if mine is None or theirs is None:
                    continue
                diff = float(mine) - float(theirs)
                entry[key] = {"value": float(mine), "baseline": float(theirs), "diff": diff}
                tally = totals.setdefault(name, {}).setdefault(key, {"wins": 0, "losses": 0, "ties": 0, "lost_on": []})
                if diff == 0:
                    tally["ties"] += 1
                elif (diff > 0) == higher:
                    tally["wins"] += 1
                else:
                    tally["losses"] += 1
                    tally["lost_on"].append(person)
            per_person[person][name] = entry or {"error": "no score" + ("" if base else f" (no {baseline} score)")}
    means = {}
    for name in renderers:
        for key, _, _ in SCORES:
            pairs = [e[key] for p in per_person.values() for e in [p.get(name, {})] if key in e]
            if pairs:
                means.setdefault(name, {})[key] = {"value": float(np.mean([x["value"] for x in pairs])),
                                                   "baseline": float(np.mean([x["baseline"] for x in pairs]))}
    return {"baseline": baseline, "persons": list(results), "per_person": per_person, "totals": totals,
            "means": means}


def format_summary(summary: dict) -> str:
    """Markdown: wins / losses per renderer and score, then each person's differences."""
    base, persons = summary["baseline"], summary["persons"]
    used = [(k, label, higher) for k, label, higher in SCORES
            if any(k in t for t in summary["totals"].values())]
    lines = [f"Against `{base}` on {len(persons)} persons (wins / losses; a win is higher PSNR and SSIM, lower "
             "LPIPS and LMD):", "", "| renderer | " + " | ".join(label for _, label, _ in used) + " | lost on |",
             "|" + " --- |" * (len(used) + 2)]
    for name, tally in sorted(summary["totals"].items()):
        cells = [f"{tally[k]['wins']} / {tally[k]['losses']}" if k in tally else "-" for k, _, _ in used]
        lost = sorted({p for k, _, _ in used if k in tally for p in tally[k]["lost_on"]})
        lines.append(f"| {name} | " + " | ".join(cells) + " | " + (", ".join(lost) or "-") + " |")
    lines += ["", f"Per person: value (difference to `{base}`).", "",
              "| person | renderer | " + " | ".join(label for _, label, _ in used) + " |",
              "|" + " --- |" * (len(used) + 2)]
    for person in persons:
        for name, entry in sorted(summary["per_person"][person].items()):
            cells = [("-" if k not in entry else f"{entry[k]['value']:.3f} ({entry[k]['diff']:+.3f})")
                     for k, _, _ in used]
            lines.append(f"| {person} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_bench_people(datasets: Sequence[Path], choices, budget: float, out: Path, registry, baseline: str,
                     overwrite: bool = False, skipped: Sequence[dict] = (),
                     echo: Callable[[str], None] = lambda line: None, **kwargs) -> dict:
    """The one-person bench for each dataset into OUT/PERSON, then OUT/summary.{json,md}."""
    from geneface.app.bench_renderers import compare_renderers
    from geneface.app.bench_renderers_report import _json_default, write_report
    from geneface.core.atomic import atomic_directory, atomic_output

    out = Path(out)
    results: dict[str, dict] = {}
    with atomic_directory(out, overwrite=overwrite) as tmp:
        for person, data in zip(person_names(datasets), datasets):
            echo(f"person {len(results) + 1}/{len(datasets)}: {person} ({data})")
            result = compare_renderers(Path(data), choices, budget, tmp / person / "runs", registry, echo=echo,
                                       **kwargs)
            result["skipped"] = list(skipped)
            for row in result["rows"]:  # where the runs will be once the folder is renamed
                if row["source"] == "trained" and row["run"]:
                    row["run"] = str(out / person / "runs" / row["name"])
            write_report(result, tmp / person)
            results[person] = {k: v for k, v in result.items() if k != "image"}
        summary = summarize(results, baseline)
        summary["budget_minutes"] = budget
        summary["datasets"] = {p: str(d) for p, d in zip(results, datasets)}
        with atomic_output(tmp / f"{SUMMARY}.json") as file:
            file.write_text(json.dumps(summary, indent=2, allow_nan=False, default=_json_default) + "\n")
        with atomic_output(tmp / f"{SUMMARY}.md") as file:
            file.write_text(f"# Renderers on {len(results)} persons, {budget:g} min each\n\n"
                            + format_summary(summary) + "\n\nEach person's table: PERSON/renderers.md.\n")
    return {"summary": summary, "results": results}


def baseline_problem(choices, baseline: Optional[str]) -> Optional[str]:
    """Why the summary cannot compare against `baseline`, or None."""
    from geneface.app.bench_renderers import COPY

    if baseline != COPY and baseline not in {c.name for c in choices}:
        return (f"--baseline {baseline}: not among the renderers benched "
                f"({', '.join(c.name for c in choices) or 'none'}, or {COPY}: the video copied); add it to --plugins or install it")
    return None
