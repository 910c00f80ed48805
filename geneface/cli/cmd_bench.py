"""`geneface bench ...`: compare trained components on held-out truth.

    geneface bench adapters --person DATASET --motion-generator CKPT --syncnet CKPT \\
        --adapter identity --adapter landmark_projection=runs/proj/model.safetensors --out DIR

    geneface bench renderers --data DATASET [--data DATASET2 ...] [--plugins a,b] --budget 10 --out DIR \\
        [--run NAME=RUN_DIR] [--options-for NAME="--profile quick"]

Each benchmark writes DIR/<name>.json (settings, pooled rows, per-clip numbers) and
DIR/<name>.md (a markdown table, printed too); the engines live in `geneface.app` (`bench_adapters`,
`bench_renderers`, `bench_motion`, `motion_figures` for `bench generic`).
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
    from geneface.app.bench_adapters import format_table, run_bench_adapters
    from geneface.registry import get_registry

    result, json_path, md_path = run_bench_adapters(get_registry(), person, motion_generator, syncnet, out,
                                                    adapters=adapter, eval_path=eval_path, overwrite=overwrite,
                                                    progress=not quiet)
    typer.echo(format_table(result))
    typer.echo(f"wrote {json_path} and {md_path}")


@bench_app.command("renderers")
def bench_renderers(
    data: List[Path] = typer.Option(..., "--data", "-d", help="The person's dataset (`geneface process`): every "
                                    "renderer trains on it and renders its held-out last 1/11. Repeat for several "
                                    "persons: one bench each (OUT/PERSON/) and a summary against --baseline."),
    baseline: str = typer.Option("nearest_frame", "--baseline", help="With several --data: the renderer the "
                                 "summary counts wins and losses against."),
    plugins: Optional[str] = typer.Option(None, "--plugins", help="Renderers to compare, comma-separated (default: "
                                          "every trainable renderer available here, third-party ones included)."),
    budget: float = typer.Option(10.0, "--budget", help="Wall-clock training budget per renderer, in minutes."),
    run: Optional[List[str]] = typer.Option(None, "--run", help="NAME=RUN_DIR: load that finished run's "
                                            "model.safetensors instead of training NAME (repeat)."),
    options_for: Optional[List[str]] = typer.Option(None, "--options-for", help="NAME=\"FLAGS\": the recipe's own "
                                                    "flags for NAME (e.g. --options-for hashgrid_nerf=\"--profile quick\"; repeat)."),
    snapshot: Optional[List[str]] = typer.Option(None, "--snapshot", help="NAME=MIN[,MIN...]: also score NAME's "
                                                 "model as it was at these minutes of its training (repeat)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Steps per renderer (default: out of reach, so the "
                                        "budget ends every run; give about what the budget allows for step-based "
                                        "schedules to finish)."),
    device: str = typer.Option("auto", "--device", help="Where to train and render: auto, cpu, cuda or cuda:N."),
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0: its default)."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(..., "--out", help="Folder for the report (renderers.json, renderers.md, "
                             "side_by_side.png) and the runs (runs/NAME)."),
    overwrite: bool = _OVERWRITE,
    quiet: bool = _QUIET,
) -> None:
    """Train every trainable renderer on one dataset for the same budget and score them on its held-out frames."""
    from geneface.app.bench_renderers import run_bench
    from geneface.app.bench_renderers_choice import parse_assignments, parse_snapshots, select_renderers
    from geneface.app.bench_renderers_report import format_snapshots, format_table
    from geneface.core.dataset import Dataset
    from geneface.core.person import open_dataset
    from geneface.core.outputs import prepare_output
    from geneface.errors import GenefaceError, UsageError
    from geneface.metrics.held_out import held_out_frames
    from geneface.registry import get_registry
    from geneface.training.distributed import choose_device

    if not budget > 0:
        raise UsageError(f"--budget: expected minutes > 0, got {budget:g}")
    if steps is not None and steps <= 0:
        raise UsageError(f"--steps: expected a count > 0, got {steps}")
    names = None
    if plugins is not None:
        names = [n.strip() for n in plugins.split(",") if n.strip()]
        if not names:
            raise UsageError("--plugins: expected NAME[,NAME...]")
    runs = {name: Path(p).expanduser() for name, p in parse_assignments(run or [], "--run").items()}
    flags = parse_assignments(options_for or [], "--options-for")
    choose_device(device)  # an unknown device or a missing GPU: one line, before any work
    for person in data:  # not a dataset, or too short to hold frames out: one line, before any work
        held_out_frames(open_dataset(person))
    if len(set(p.resolve() for p in data)) != len(data):
        raise UsageError("--data: the same dataset was given twice")
    if len(data) > 1 and runs:
        raise UsageError("--run loads one person's finished run: give one --data with it")
    snapshots = parse_snapshots(snapshot or [], budget)
    registry = get_registry()
    choices, skipped = select_renderers(registry, names, runs, flags, snapshots=snapshots)
    loop = {"steps": steps, "threads": threads, "seed": seed}
    if len(data) > 1:
        from geneface.app.bench_renderers_people import baseline_problem, format_summary, run_bench_people

        problem = baseline_problem(choices, baseline)
        if problem:
            raise UsageError(problem)
        prepare_output(out, kind="dir", overwrite=overwrite, inputs=list(data), what="--out",
                       replaceable=lambda p: (p / "summary.json").is_file())
        people = run_bench_people(data, choices, budget, out, registry, baseline, overwrite=overwrite,
                                  skipped=skipped, loop=loop, device=device, progress=not quiet,
                                  echo=lambda line: typer.echo(line, err=True))
        typer.echo(format_summary(people["summary"]))
        typer.echo(f"wrote {out / 'summary.json'}, {out / 'summary.md'} and one folder per person")
        failed = [f"{person}/{row['name']}" for person, res in people["results"].items() for row in res["rows"]
                  if row["status"] != "ok"]
        if failed:
            raise GenefaceError(f"{len(failed)} renderer runs failed ({', '.join(failed)}); the others are scored")
        return
    data = data[0]
    prepare_output(out, kind="dir", overwrite=overwrite, inputs=[data, *runs.values()], what="--out",
                   replaceable=lambda p: (p / "renderers.json").is_file())
    result = run_bench(data, choices, budget, out, registry, overwrite=overwrite, skipped=skipped,
                       loop=loop, device=device, progress=not quiet,
                       echo=lambda line: typer.echo(line, err=True))
    typer.echo(format_table(result))
    if format_snapshots(result):
        typer.echo("\nearlier in training (--snapshot):\n" + format_snapshots(result))
    typer.echo(f"wrote {out / 'renderers.json'}, {out / 'renderers.md'} and {out / 'side_by_side.png'}")
    failed = [row["name"] for row in result["rows"] if row["status"] != "ok"]
    if failed:  # the exit-code rule for a batch with failed items: 1, the rest done
        raise GenefaceError(f"{len(failed)} of {len(result['rows'])} renderers failed ({', '.join(failed)}); "
                            "their errors are in their rows, the others are scored")


@bench_app.command("motion")
def bench_motion(
    model: List[str] = typer.Option(..., "--model", help="NAME=CHECKPOINT: a trained motion generator (e.g. a `vae` "
                                    "run's model.safetensors) to score (repeat). Its audio encoder must be the "
                                    "SyncNet's."),
    data: Optional[List[Path]] = typer.Option(None, "--data", "-d", help="Datasets or corpora of held-out speakers "
                                              "(repeat): every clip is scored, or those of --speakers."),
    speakers: Optional[str] = typer.Option(None, "--speakers", help="Only these speakers of --data, comma-separated."),
    person: Optional[Path] = typer.Option(None, "--person", help="A person's dataset: its held-out last 1/11 is "
                                          "scored as a group of its own."),
    syncnet: Path = typer.Option(..., "--syncnet", help="SyncScorer checkpoint, the lip-sync judge; its audio "
                                 "encoder names the features read."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Sampling temperature (default: each "
                                                "checkpoint's own)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed: the same figures every run."),
    out: Path = typer.Option(..., "--out", help="Folder for the report (motion_bench.json and motion_bench.md)."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report instead of the table."),
    overwrite: bool = _OVERWRITE,
    quiet: bool = _QUIET,
) -> None:
    """Score audio-to-motion models on held-out speakers (and a person's held-out frames): mouth correlation and
    lag, amplitude, mouth LMD, lip sync."""
    import json

    from geneface.app.bench_motion import run_bench_motion
    from geneface.app.bench_motion_report import format_table
    from geneface.registry import get_registry

    result, json_path, md_path = run_bench_motion(get_registry(), model, syncnet, out, data=data or [],
                                                  speakers=speakers, person=person, temperature=temperature,
                                                  seed=seed, overwrite=overwrite, progress=not quiet)
    for line in result["settings"]["warnings"]:
        typer.echo(f"warning: {line}", err=True)
    typer.echo(json.dumps(result, indent=2, allow_nan=False) if as_json else format_table(result))
    typer.echo(f"wrote {json_path} and {md_path}", err=as_json)


@bench_app.command("generic")
def bench_generic(
    data: list[Path] = typer.Option(..., "--data", help="Datasets or corpora; repeat for more."),
    syncnet: Path = typer.Option(..., "--syncnet", help="The trained SyncNet checkpoint."),
    vae: Optional[Path] = typer.Option(None, "--vae", help="A trained audio-to-motion checkpoint to score too."),
    encoder: str = typer.Option("mel", "--encoder", help="The audio features the models read."),
    val_speakers: Optional[str] = typer.Option(None, "--val-speakers", help="Comma-separated held-out speakers "
                                               "(default: the validation split the trainers would pick)."),
    every_clip: bool = typer.Option(False, "--all", help="Score every clip given."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Default: the checkpoint's (1.0)."),
    seed: int = typer.Option(0, "--seed"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the JSON to this file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the --json file if it exists."),
) -> None:
    """The generic models' figures on held-out speakers as JSON: SyncNet accuracy and offset recovery; the VAE's
    mouth-opening r and sync confidence (docs/training.md)."""
    import json

    from geneface.app.components import audio_encoder
    from geneface.app.motion_figures import evaluate

    if json_out is not None:  # before any work: a folder, an input, an unwritable place
        from geneface.core.outputs import prepare_output

        prepare_output(json_out, kind="file", overwrite=overwrite, inputs=[*data, syncnet, vae], what="--json",
                       suffixes=(".json",))
    speakers = [s.strip() for s in val_speakers.split(",") if s.strip()] if val_speakers else None
    from geneface.registry import get_registry

    registry = get_registry()
    result = evaluate(data, audio_encoder(encoder, "--encoder", registry), speakers, syncnet, vae, temperature, seed,
                      every_clip, registry=registry)
    text = json.dumps(result, indent=2)
    if json_out is not None:
        from geneface.core.atomic import atomic_output

        with atomic_output(json_out, overwrite=overwrite) as tmp:
            tmp.write_text(text + "\n")
    typer.echo(text)
