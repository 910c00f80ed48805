"""`geneface bench ...`: compare trained components on held-out truth.

    geneface bench adapters --person DATASET --motion-generator CKPT --syncnet CKPT \\
        --adapter identity --adapter landmark_projection=runs/proj/model.safetensors --out DIR

Each benchmark writes DIR/<name>.json (settings, pooled rows, per-clip numbers) and
DIR/<name>.md (a markdown table, printed too); the scoring lives in `geneface.bench`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from geneface.cli.app import app

bench_app = typer.Typer(help="Benchmarks: compare trained components on held-out truth.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

_OUT = typer.Option(..., "--out", help="Folder for the report (NAME.json and NAME.md).")
_OVERWRITE = typer.Option(False, "--overwrite", help="Replace the report folder if it exists.")
_QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")


@bench_app.command("adapters")
def bench_adapters(
    person: Path = typer.Option(..., "--person", help="The target person: a dataset, a synthetic clip or a "
                                "corpus of one synthetic identity."),
    motion_generator: Path = typer.Option(..., "--motion-generator", help="Motion generator checkpoint (its "
                                          "audio encoder names the features read)."),
    syncnet: Path = typer.Option(..., "--syncnet", help="SyncScorer checkpoint, the lip-sync judge."),
    adapter: Optional[List[str]] = typer.Option(
        None, "--adapter", help="[LABEL:]NAME[=CHECKPOINT]: a domain adapter to compare (repeat; default: identity). "
        "Without a checkpoint the plugin runs with its default config."),
    eval_path: Optional[Path] = typer.Option(
        None, "--eval", help="Score every clip of this folder (more clips of the same person, never trained on) "
        "instead of the person's held-out last 1/11."),
    out: Path = _OUT,
    overwrite: bool = _OVERWRITE,
    quiet: bool = _QUIET,
) -> None:
    """Compare domain adapters on the person's held-out clips: mouth statistics, LMD, lip sync."""
    from geneface.bench.adapters import (build_adapter, compare_adapters, format_table, load_stage, parse_adapters,
                                         write_report)
    from geneface.core.outputs import prepare_output

    specs = parse_adapters(adapter or ["identity"])
    inputs = [person, motion_generator, syncnet, eval_path, *(s.checkpoint for s in specs)]
    prepare_output(out, kind="dir", overwrite=overwrite, inputs=inputs, what="--out",
                   replaceable=lambda p: (p / "adapters.json").is_file())
    stages = [(s.label, build_adapter(s)) for s in specs]
    generator = load_stage(motion_generator, "motion_generator", "--motion-generator")
    judge = load_stage(syncnet, "syncnet", "--syncnet")
    result = compare_adapters(person, generator, stages, judge, eval_path=eval_path, progress=not quiet)
    result["settings"]["motion_generator"]["checkpoint"] = str(motion_generator)
    result["settings"]["syncnet"]["checkpoint"] = str(syncnet)
    for info, spec in zip(result["settings"]["adapters"], specs):
        info["checkpoint"] = None if spec.checkpoint is None else str(spec.checkpoint)
    json_path, _ = write_report(result, out, overwrite=overwrite)
    typer.echo(format_table(result))
    typer.echo(f"wrote {json_path} and {out / 'adapters.md'}")
