"""Which renderers `geneface bench renderers` compares, and how: its flags checked before any work.

Every trainable renderer available here (`Registry.trainable`), or those named; each is
trained with its recipe's defaults or its own flags (`--options-for`), or loaded from a
finished run folder (`--run`), and may be scored at marks of its training too
(`--snapshot`). Unknown or untrainable names, a run folder without a model of that plugin,
flags a recipe does not take: one-line errors here, before anything is trained.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional, Sequence

import attrs

from geneface.errors import PluginError, UsageError, one_line


@attrs.frozen
class RendererChoice:
    """One renderer of the bench: trained with `args` (its recipe's own flags), or loaded from `run`."""

    name: str
    entry: object  # geneface.registry.PluginEntry
    run: Optional[Path] = None
    args: tuple = attrs.field(default=(), converter=tuple)
    snapshots: tuple = attrs.field(default=(), converter=tuple)  # minutes of training to score the model at too


def parse_assignments(texts: Sequence[str], flag: str) -> dict[str, str]:
    """`NAME=VALUE` words (repeatable flag) as a dict; one-line errors name the flag."""
    out: dict[str, str] = {}
    for text in texts:
        name, eq, value = text.partition("=")
        name = name.strip()
        if not eq or not name or not value.strip():
            raise UsageError(f"{flag} {text!r}: expected NAME=VALUE")
        if name in out:
            raise UsageError(f"{flag}: '{name}' is given twice")
        out[name] = value.strip()
    return out


def trainable_renderers(registry) -> tuple[list, list[dict]]:
    """(entries of every trainable renderer that can run here, [{name, reason}] of those skipped)."""
    found, skipped = [], []
    for entry in registry.trainable("renderer"):
        try:
            found.append(registry.get("renderer", entry.name))
        except PluginError as exc:  # unavailable here (a missing dependency)
            skipped.append({"name": entry.name, "reason": one_line(exc)})
    return found, skipped


def parse_snapshots(texts: Sequence[str], budget: float) -> dict[str, tuple[float, ...]]:
    """`--snapshot NAME=MIN[,MIN...]` words as {name: sorted minutes}, each > 0 and < `budget`."""
    out = {}
    for name, value in parse_assignments(texts, "--snapshot").items():
        try:
            minutes = sorted({float(m) for m in value.split(",") if m.strip()})
        except ValueError:
            raise UsageError(f"--snapshot {name}={value}: expected minutes, e.g. {name}=3,6") from None
        if not minutes or not all(0 < m < budget for m in minutes):
            raise UsageError(f"--snapshot {name}={value}: every mark must be > 0 and below the --budget of "
                             f"{budget:g} min")
        out[name] = tuple(minutes)
    return out


def snapshot_path(run: Path, minutes: float) -> Path:
    """Where a run keeps its model as it was `minutes` into training (the Trainer's `snapshot_minutes`)."""
    return Path(run) / "snapshots" / f"minute-{minutes:g}.safetensors"


def select_renderers(registry, plugins: Optional[Sequence[str]] = None, runs: Optional[dict] = None,
                     options_for: Optional[dict] = None,
                     snapshots: Optional[dict] = None) -> tuple[list[RendererChoice], list[dict]]:
    """The renderers to compare: `plugins` (names), else every trainable one available in
    `registry` (the application's).

    `runs`: name -> a finished run folder to load instead of training; `options_for`: name ->
    the recipe's own flags as one string ("--profile quick"); `snapshots`: name -> minutes of
    its training at which its model is exported and scored too. Everything is checked here,
    before any work: unknown or untrainable names, a run folder without a model of that
    plugin, flags the recipe does not take.
    """
    from geneface.core.checkpoint import check_checkpoint
    from geneface.training.recipe import load_recipe, parse_options

    runs, options_for, snapshots = dict(runs or {}), dict(options_for or {}), dict(snapshots or {})
    available, skipped = trainable_renderers(registry)
    if plugins:
        entries = []
        for name in plugins:
            entry = registry.get("renderer", name, where="--plugins")  # unknown: did you mean ...
            if not entry.cls.trainable():
                names = ", ".join(e.name for e in available) or "none available"
                raise UsageError(f"--plugins: renderer '{name}' is not trainable (trainable: {names})")
            if any(e.name == name for e in entries):
                raise UsageError(f"--plugins: '{name}' is named twice")
            entries.append(entry)
        skipped = []
    else:
        entries = available
    if not entries:
        raise UsageError("no trainable renderer plugin is available here"
                         + (f" (skipped: {'; '.join(s['name'] + ': ' + s['reason'] for s in skipped)})" if skipped else ""))
    names = [e.name for e in entries]
    for flag, given in (("--run", runs), ("--options-for", options_for), ("--snapshot", snapshots)):
        for name in given:
            if name not in names:
                raise UsageError(f"{flag} {name}: not among the renderers compared ({', '.join(names)})")
    choices = []
    for entry in entries:
        run = runs.get(entry.name)
        args: tuple = ()
        if run is not None:
            run = Path(run).expanduser()
            check_checkpoint(run / "model.safetensors", "renderer", entry.name, f"--run {entry.name}")
            if entry.name in options_for:
                raise UsageError(f"--options-for {entry.name}: it is loaded from --run, not trained")
            for minutes in snapshots.get(entry.name, ()):  # a loaded run's own snapshots (`snapshot_minutes`)
                if not snapshot_path(run, minutes).is_file():
                    raise UsageError(f"--snapshot {entry.name}: {snapshot_path(run, minutes)} does not exist (the run "
                                     f"was not trained with snapshot_minutes including {minutes:g})")
        elif entry.name in options_for:
            try:
                args = tuple(shlex.split(options_for[entry.name]))
            except ValueError as exc:
                raise UsageError(f"--options-for {entry.name}: {exc}") from None
            parse_options(load_recipe(entry.cls).options, args, f"training renderer '{entry.name}'")
        choices.append(RendererChoice(entry.name, entry, run, args, snapshots.get(entry.name, ())))
    return choices, skipped
