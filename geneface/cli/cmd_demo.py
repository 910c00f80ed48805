"""`geneface demo`: the whole method, from nothing, into ./demo_out (geneface.app.demo)."""

from __future__ import annotations

from pathlib import Path

import typer

from geneface.cli.app import app


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", "-o", help="Folder for the video, the report and the work."),
    renderer_minutes: float = typer.Option(5.0, "--renderer-minutes", help="Training budget of the renderer."),
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch in the training steps (0: its choice)."),
) -> None:
    """Make a person and a corpus, train every stage quickly, render new speech and evaluate it.

    About 9 minutes on 2 CPU cores; run it again after an interruption to go on."""
    from geneface.app.demo import DemoSettings, run_demo
    from geneface.errors import UsageError

    if not renderer_minutes > 0:
        raise UsageError(f"--renderer-minutes: expected minutes > 0, got {renderer_minutes:g}")
    settings = DemoSettings(renderer_minutes=renderer_minutes, threads=threads)
    report = run_demo(out, settings, echo=lambda line: typer.echo(line, err=True))
    sync = report["evaluation"].get("sync") or {}
    typer.echo(f"demo: done in {report['total_minutes']:.1f} min of steps. Watch {out / 'video.mp4'}; "
               f"figures in {out / 'report.md'}"
               + (f" (sync confidence {sync['confidence']:.3f}, best offset {sync['offset']:+d})" if sync else ""))
