"""The report of `geneface bench motion`: motion_bench.json and motion_bench.md (the markdown
tables, the first printed too), from the result `bench_motion` returns."""

from __future__ import annotations

import json
import math
from pathlib import Path

from geneface.app.bench_motion_choice import TRUTH

REPORT = "motion_bench"  # the report's file names: REPORT.json, REPORT.md

COLUMNS = ("model", "group", "clips", "frames", "r lag0", "best lag", "abs lag", "r best", "amplitude ratio",
           "mouth LMD mm", "sync conf (offset)")
POOLED_COLUMNS = ("model", "group", "r lag0 pooled", "best lag pooled", "r best pooled", "amplitude ratio pooled")


def _num(value, digits: int = 3, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _table(columns, lines) -> str:
    head = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    return "\n".join(head + ["| " + " | ".join(cells) + " |" for cells in lines])


def _sync_cell(s: dict) -> str:
    if s.get("sync_confidence") is None:
        return "-"
    offset = s.get("sync_offset")
    return _num(s["sync_confidence"]) + ("" if offset is None else f" ({offset:+d})")


def format_table(result: dict) -> str:
    """The markdown table of a `bench_motion` result, one line per row (model x group)."""
    lines = []
    for row in result["rows"]:
        s = row["scores"]
        if row["model"] == TRUTH:
            lines.append([TRUTH, row["group"], str(s["clips"]), str(s["n_frames"]), *["-"] * 6, _sync_cell(s)])
            continue
        lines.append([row["model"] if row["plugin"] in (None, row["model"]) else f"{row['model']} ({row['plugin']})",
                      row["group"], str(s["clips"]), str(s["n_frames"]), _num(s["r_lag0"]),
                      _num(s["best_lag"], 2, signed=True), _num(s["abs_best_lag"], 2), _num(s["r_best"]),
                      _num(s["amplitude_ratio"]), _num(s["lmd_mm"], 2), _sync_cell(s)])
    return _table(COLUMNS, lines)


def format_pooled(result: dict) -> str:
    lines = []
    for row in result["rows"]:
        if row["model"] == TRUTH:
            continue
        s = row["scores"]
        lag = s["best_lag_pooled"]
        lines.append([row["model"], row["group"], _num(s["r_lag0_pooled"]), "-" if lag is None else f"{lag:+d}",
                      _num(s["r_best_pooled"]), _num(s["amplitude_ratio_pooled"])])
    return _table(POOLED_COLUMNS, lines)


def format_markdown(result: dict) -> str:
    st = result["settings"]
    groups = "; ".join(f"{g['name']}: {g['clips']} clip(s), {g['frames']} frames ({', '.join(g['speakers'])})"
                       for g in st["groups"])
    head = (f"# Audio-to-motion models on held-out clips\n\n"
            f"{groups}. Features '{st['encoder']}'; seed {st['seed']}; temperature "
            f"{'each checkpoint' + chr(39) + 's own' if st['temperature'] is None else st['temperature']}.\n"
            f"Mouth opening (inner-lip gap) of the generated motion, put into each clip's face, against the "
            f"clip's landmarks: Pearson r at lag 0 and at the best lag in -{st['max_lag']}..{st['max_lag']} "
            "(positive: the generated mouth is late), per clip then frame-weighted; amplitude ratio = std "
            "generated / std true; mouth LMD: points 48-67, each frame centred, mean L2 x1000 (mm); sync: the "
            "SyncNet's confidence at offset 0 (its best offset in brackets); the truth rows are the real "
            "landmarks' own sync.\n\n")
    pooled = "\n\nOn every frame of the group pooled:\n\n" + format_pooled(result)
    notes = "".join(f"\n\nwarning: {w}" for w in st["warnings"])
    return head + format_table(result) + pooled + notes + "\n"


def write_report(result: dict, out: Path, overwrite: bool = False) -> tuple[Path, Path]:
    """OUT/motion_bench.json and OUT/motion_bench.md, the folder written under a temporary name."""
    from geneface.core.atomic import atomic_directory

    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        (tmp / f"{REPORT}.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
        (tmp / f"{REPORT}.md").write_text(format_markdown(result))
    return out / f"{REPORT}.json", out / f"{REPORT}.md"
