"""`geneface train KIND [--plugin NAME]`: the command's flags and messages.

The engine is geneface.app.train (`train_plugin`); this module declares, once, the loop flags
every trainer shares and hands the rest of the command line to the plugin's recipe, whose
own flags `--options` lists. What a run writes: geneface/app/train.py and docs/training.md.
Multi-GPU: `torchrun --standalone --nproc_per_node N --no-python geneface train ...`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from geneface.cli.app import app


def _report(result: dict) -> None:
    if "model" not in result:
        return  # not rank 0
    best = result["best"][0] if result["best"] else None
    line = f"wrote {result['model']} (step {result['step']}"
    chosen = result.get("chosen")
    if chosen is not None:
        line += f"; chosen: {chosen}, reasons in choice.json"
    elif best:
        line += f"; best at step {best['step']}: {best['value']:.4f}"
    if result.get("stopped"):
        line += f"; stopped early: {result['stopped']['reason']}"
    typer.echo(line + ")")


@app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    kind: str = typer.Argument(..., help="What to train: syncnet, audio2motion, renderer, domain_adapter, ... "
                                          "(a kind of component, or a plugin's name)."),
    plugin: Optional[str] = typer.Option(None, "--plugin", "-p",
                                         help="The plugin to train (default: the only trainable one of the kind)."),
    data: list[Path] = typer.Option([], "--data", "-d", help="A dataset or a folder of datasets; repeat for more."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder for models, states and metrics."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML with train/model/task sections."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimiser steps (the plugin's default otherwise)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch per step and process."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate of the run's schedule."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    val_every: Optional[int] = typer.Option(None, "--val-every"),
    ckpt_every: Optional[int] = typer.Option(None, "--ckpt-every"),
    log_every: Optional[int] = typer.Option(None, "--log-every"),
    keep_best: Optional[int] = typer.Option(None, "--keep-best"),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (0: its default)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Wall-clock budget: stop cleanly "
                                                "(validated, saved, exported) after this many minutes (0: off)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run saved in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a finished or stale run in --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    show_options: bool = typer.Option(False, "--options", help="List the plugin's own training flags and exit."),
) -> None:
    """Train a plugin: loop flags here, the plugin's own flags after them (see --options).

    geneface train syncnet --data corpus --out runs/syncnet
    geneface train audio2motion --data corpus --syncnet runs/syncnet/model.safetensors --out runs/vae
    """
    from geneface.app.train import plugin_to_train, train_plugin
    from geneface.errors import UsageError
    from geneface.training.recipe import load_recipe

    from geneface.registry import get_registry

    registry = get_registry()
    entry = plugin_to_train(kind, plugin, registry)
    if show_options:
        recipe = load_recipe(entry.cls)
        lines = [option.usage() for option in recipe.options] or ["(none)"]
        typer.echo(f"training {entry.kind} '{entry.name}': its own flags\n  " + "\n  ".join(lines))
        return
    if out is None:
        raise UsageError("--out is required: the folder for the run's models, states and metrics")
    loop = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "device": device,
            "val_every": val_every, "ckpt_every": ckpt_every, "log_every": log_every, "keep_best": keep_best,
            "threads": threads, "max_minutes": max_minutes}
    result = train_plugin(entry, data, out, args=ctx.args, loop=loop, config=config, resume=resume,
                          overwrite=overwrite, progress=not quiet, registry=registry)
    if result.get("fitted"):
        typer.echo(f"wrote {out / 'model.safetensors'} (fitted, no training steps)")
    else:
        _report(result)
