"""The report of `geneface bench renderers`: renderers.json, renderers.md (the markdown table,
printed too) and side_by_side.png, from the result `compare_renderers` returns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

COLUMNS = ("renderer", "source", "steps", "train min", "PSNR", "SSIM", "PSNR face", "SSIM face", "LMD px", "fps",
           "render MiB", "error")


def _num(value, digits: int = 2, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value * scale:.{digits}f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def format_table(result: dict) -> str:
    """The markdown table of a `compare_renderers` result, one line per renderer."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(" --- " for _ in COLUMNS) + "|"]
    for row in result["rows"]:
        s = row.get("scores") or {}
        lmd = "-" if s.get("lmd_px") is None else f"{s['lmd_px']:.2f} ({s['lmd_frames']}/{s['frames']})"
        mem = row.get("memory_mb")
        cells = [
            row["name"],
            row["source"],
            "-" if row.get("steps") is None else str(row["steps"]),
            _num(row.get("train_seconds"), 1, 1 / 60),
            _num(s.get("psnr")),
            _num(s.get("ssim"), 3),
            _num(s.get("psnr_face")),
            _num(s.get("ssim_face"), 3),
            lmd,
            _num(row.get("fps"), 1),
            "-" if mem is None else f"{mem:.0f}" + (" (cuda)" if row.get("memory_kind") == "cuda" else ""),
            _cell(row.get("error") or ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


SNAPSHOT_COLUMNS = ("renderer", "at min", "step", "PSNR", "SSIM", "PSNR face", "SSIM face", "reaches the final PSNR of")


def format_snapshots(result: dict) -> str:
    """The table of the `--snapshot` models (empty when none): each one's scores, and which
    renderers' final models (trained for the whole budget, or loaded) it already matches in PSNR."""
    finals = [(r["name"], r["scores"]["psnr"], r.get("train_seconds")) for r in result["rows"]
              if r.get("scores") and r["scores"].get("psnr") is not None]
    lines = []
    for row in result["rows"]:
        for snap in row.get("snapshots") or []:
            psnr = snap.get("psnr")
            reached = [f"{name} ({value:.2f} dB" + (f", {seconds / 60:.1f} min)" if seconds else ")")
                       for name, value, seconds in finals if name != row["name"] and psnr is not None and psnr >= value]
            cells = [row["name"], _num(snap.get("elapsed_minutes") or snap.get("snapshot_minutes"), 1),
                     "-" if snap.get("step") is None else str(snap["step"]), _num(psnr), _num(snap.get("ssim"), 3),
                     _num(snap.get("psnr_face")), _num(snap.get("ssim_face"), 3),
                     _cell(snap["error"]) if snap.get("error") else (", ".join(reached) or "none")]
            lines.append("| " + " | ".join(cells) + " |")
    if not lines:
        return ""
    head = ["| " + " | ".join(SNAPSHOT_COLUMNS) + " |", "|" + "|".join(" --- " for _ in SNAPSHOT_COLUMNS) + "|"]
    return "\n".join(head + lines)


def format_markdown(result: dict) -> str:
    """renderers.md: the settings in words, the table, the notes, the snapshots' table, the image."""
    s = result["settings"]
    start, n = s["held_out"]
    head = (f"# Renderers on {s['data']}\n\n"
            f"Held out: frames {start}-{n - 1} of {n} (the last 1/11; {s['held_out_frames']} scored), rendered at "
            f"{s['size']} x {s['size']} px from their own tracked landmarks and camera. Each renderer trained with its "
            f"recipe's defaults for a {s['budget_minutes']:g} min wall-clock budget (source `trained`) or was loaded "
            f"from a finished run (`run`). Rendering on {s['render_device']}.\n\n"
            f"- PSNR (dB) and SSIM: mean over frames, full frame and face box ({s['face_box']}).\n"
            f"- LMD: {s['lmd']}; in brackets frames scored / frames.\n"
            f"- fps: {s['fps']}.\n"
            f"- render MiB: {s['memory']}.\n"
            f"- train min: wall clock of the whole training call (data, model, loop, export); steps: optimiser steps.\n")
    if s.get("lmd_note"):
        head += f"- {s['lmd_note']}\n"
    notes = [f"- {r['name']}: {r['note']}" for r in result["rows"] if r.get("note")]
    notes += [f"- {r['name']}: loaded run, {r['stopped']}" for r in result["rows"]
              if r["source"] == "run" and r.get("stopped")]
    notes += [f"- {r['name']}: {r['scores']['lmd_note']}" for r in result["rows"]
              if r.get("scores") and r["scores"].get("lmd_note")]
    skipped = [f"- {x['name']}: skipped ({x['reason']})" for x in result.get("skipped", [])]
    tail = "\n" + "\n".join(notes + skipped) + "\n" if notes or skipped else ""
    snapshots = format_snapshots(result)
    if snapshots:
        tail += ("\n## Earlier in training (--snapshot)\n\nThe model as it was when its training's wall clock "
                 "passed each mark (at min: when it was taken), scored on the same held-out frames; the last column "
                 "lists the renderers whose final model's PSNR it already matches.\n\n" + snapshots + "\n")
    return (head + "\n" + format_table(result) + "\n" + tail
            + "\n![held-out frames: truth and each renderer](side_by_side.png)\n")


def write_report(result: dict, folder: Path) -> tuple[Path, Path, Path]:
    """FOLDER/renderers.json, renderers.md and side_by_side.png (the folder is the bench's
    temporary one: the CLI renames it when everything is written)."""
    from geneface.core.atomic import atomic_output
    from geneface.core.image_grid import write_png

    folder = Path(folder)
    image = result.get("image")
    record = {k: v for k, v in result.items() if k != "image"}
    paths = folder / "renderers.json", folder / "renderers.md", folder / "side_by_side.png"
    with atomic_output(paths[0]) as tmp:
        tmp.write_text(json.dumps(record, indent=2, allow_nan=False, default=_json_default) + "\n")
    with atomic_output(paths[1]) as tmp:
        tmp.write_text(format_markdown(record))
    if image is not None:
        with atomic_output(paths[2]) as tmp:
            write_png(tmp, image)
    return paths


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if not math.isfinite(float(value)) else float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
