"""Core commands: `plugins`, `validate`, `run`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from geneface.cli.app import app


def _plugin_rows(registry) -> list[dict]:
    rows = []
    duplicates = {key for key, found in registry.entries.items() if len(found) > 1}
    for entry in registry.all_entries():
        reason = entry.unavailable_reason
        if (entry.kind, entry.name) in duplicates:
            reason = f"name clash: {len(registry.entries[(entry.kind, entry.name)])} plugins are named '{entry.name}'"
        rows.append({
            "kind": entry.kind,
            "name": entry.name,
            "origin": entry.origin.dist,
            "version": entry.origin.version,
            "entry_point": entry.origin.entry_point,
            "description": entry.description,
            "available": reason is None,
            "trainable": entry.cls.trainable(),
            "reason": reason,
            # Device, kernels and precision this machine gives the component (None: no choice).
            "compute": entry.cls.compute_backend() if reason is None else None,
        })
    return rows


@app.command()
def plugins(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List every component: kind, name, origin distribution and version, availability, and for
    those with a choice of device or kernels (a renderer's), which one this machine gives them."""
    from geneface.core.kinds import STAGE_KINDS
    from geneface.registry import get_registry

    registry = get_registry()
    rows = _plugin_rows(registry)
    broken = [{"origin": b.origin.dist, "version": b.origin.version, "entry_point": b.origin.entry_point,
               "error": b.error} for b in registry.broken]
    if as_json:
        typer.echo(json.dumps({"kinds": list(STAGE_KINDS), "plugins": rows, "broken": broken}, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # Every text from a plugin or the machine is escaped: rich would read `[whisper]` in
    # "pip install 'geneface[whisper]'" (or a plugin's own brackets) as markup and drop it.
    table = Table(title="geneface plugins")
    for column in ("kind", "name", "origin", "description", "status"):
        table.add_column(column, overflow="fold")
    for row in rows:
        status = "[green]available[/]" if row["available"] else f"[red]unavailable[/]: {escape(row['reason'])}"
        description = escape(row["description"]) + (f"\n[dim]compute: {escape(row['compute'])}[/]"
                                                     if row["compute"] else "")
        table.add_row(escape(row["kind"]), escape(row["name"]), escape(f"{row['origin']} {row['version']}"),
                      description, status)
    for b in broken:
        table.add_row("?", escape(b["entry_point"]), escape(f"{b['origin']} {b['version']}"), "",
                      f"[red]broken[/]: {escape(b['error'])}")
    Console().print(table)


@app.command()
def validate(spec: Path = typer.Argument(..., help="Pipeline spec (YAML).")) -> None:
    """Check a pipeline spec: keys, plugins, configs, inputs and how the stages connect."""
    from geneface.core.spec import load_spec, validate_spec
    from geneface.registry import get_registry

    parsed = load_spec(spec)
    validate_spec(parsed, get_registry())
    chain = " -> ".join(f"{s.kind}:{s.plugin}" for s in parsed.stages)
    typer.echo(f"{spec}: ok ({chain})")


@app.command()
def run(
    spec: Path = typer.Argument(..., help="Pipeline spec (YAML)."),
    audio: Optional[Path] = typer.Option(None, "--audio", "-a", help="Driving speech; overrides input.audio."),
    motion: Optional[Path] = typer.Option(None, "--motion", "-m", help="Landmark file; overrides input.motion."),
    poses: Optional[Path] = typer.Option(None, "--poses", help="Camera path (pose file or dataset); overrides input.poses."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file; overrides `output`."),
    paste_back: bool = typer.Option(False, "--paste-back", help="Put the rendered crop back into the full-size "
                                    "source video of the renderer's dataset (as output.paste_back: true)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output if it exists."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Run the stages a spec names, from its input to its output."""
    from geneface.app.run import run_spec
    from geneface.core.progress import track
    from geneface.core.spec import load_spec
    from geneface.registry import get_registry

    result = run_spec(load_spec(spec), get_registry(), audio=audio, motion=motion, output=output,
                      progress=None if quiet else track, poses=poses, overwrite=overwrite, paste_back=paste_back)
    speed = f", rendered at {result.fps:.1f} fps" if result.fps else ""
    typer.echo(f"wrote {result.output} ({result.kind}, {result.n_frames} frames, {result.duration:.2f} s{speed})")
