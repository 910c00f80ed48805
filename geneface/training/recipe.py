"""How a trainable plugin trains: its `Recipe`, named by the stage class, imported lazily.

A trainable stage sets `training = "module:RecipeClass"`. `geneface train KIND --plugin NAME`
finds the plugin in the registry, imports its recipe, parses the recipe's own flags
(`options`, e.g. `--syncnet CKPT`) after the loop flags every trainer shares (declared once in
geneface.cli.cmd_train; the engine is geneface.app.train), and asks the recipe for a
`TrainTask`; the shared `Trainer` runs it. The registry comes with the inputs
(`inputs.registry`): training never imports it.
A third-party plugin trains the same way as a built-in one.

Every config of a run is built one way, in layers, each applied once: the class's defaults,
then the recipe's profile (`--profile`, when the recipe has `profiles`), then the `--config`
file's section, then the command line (the loop flags; for the model, the keys the data fixes).
`geneface.app.train` picks the profile once and builds the loop's `TrainConfig`; a recipe builds
the model's and the task's with `inputs.model_config(**fixed)` and `inputs.task_config(cls)`.

    class MyRecipe(Recipe):
        options = (TrainOption("teacher", "a trained teacher checkpoint", kind="path", required=True),)
        loop_defaults = {"batch_size": 16, "schedule": "exponential"}

        def build(self, inputs: TrainInputs) -> BuiltTask:
            stage = inputs.stage_cls(inputs.model_config())
            return BuiltTask(MyTask(stage, inputs.task_config(MyTaskConfig), ...), {"data": ...})
"""

from __future__ import annotations

import abc
import importlib
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence

import attrs

from geneface.core.config import structure
from geneface.errors import PluginError, UsageError

OPTION_KINDS = ("path", "paths", "str", "int", "float", "bool")


@attrs.frozen
class TrainOption:
    """One flag of a recipe: `--NAME VALUE` (`paths`: repeatable; `bool`: a switch)."""

    name: str  # as written after the dashes, e.g. "syncnet", "val-speakers"
    help: str
    kind: str = attrs.field(default="str", validator=attrs.validators.in_(OPTION_KINDS))
    required: bool = False
    default: Any = None

    @property
    def key(self) -> str:
        """The name as a Python identifier (`val-speakers` -> `val_speakers`)."""
        return self.name.replace("-", "_")

    def usage(self) -> str:
        value = "" if self.kind == "bool" else f" {self.kind.rstrip('s').upper()}" + (" ..." if self.kind == "paths" else "")
        need = "required" if self.required else (f"default {self.default}" if self.default not in (None, False) else "optional")
        return f"--{self.name}{value}: {self.help} ({need})"


@attrs.frozen
class TrainInputs:
    """What the command line hands a recipe."""

    stage_cls: type
    data: tuple = attrs.field(converter=tuple)  # --data paths (may be empty)
    options: dict  # the recipe's flags by key, parsed and defaulted
    file: dict  # the --config YAML: sections train, model, task
    config_path: Optional[Path]
    loop: Any  # the run's TrainConfig
    # The plugin registry, handed down by the application layer: a recipe that loads a trained
    # component (`registry.load(path, kind, "--flag")`) or names an audio encoder uses it.
    registry: Any = None
    # The profile the recipe's `--profile` chose ({} for a recipe without profiles): its
    # `model` and `task` sections lie under the file's (its `train` section is in `loop`).
    profile: dict = attrs.field(factory=dict)
    profile_name: Optional[str] = None

    def _where(self, section: str) -> str:
        return f"{self.config_path or '--config'}:{section}"

    def _layers(self, section: str, *over: dict) -> dict:
        return merged(self.profile.get(section) or {}, self.file.get(section) or {}, *over)

    def model_config(self, **fixed):
        """The plugin's Config: its defaults, the profile's `model` section, the file's, then
        `fixed` (values the data sets)."""
        return structure(self.stage_cls.Config, self._layers("model", fixed), self._where("model"))

    def task_config(self, cls: type):
        """A task config (losses, sampling): its defaults, the profile's `task` section, the file's."""
        return structure(cls, self._layers("task"), self._where("task"))


def merged(*layers: dict) -> dict:
    """Dicts over one another, later ones winning key by key, nested dicts merged the same way."""
    out: dict = {}
    for layer in layers:
        for k, v in layer.items():
            out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@attrs.frozen
class BuiltTask:
    """What a recipe built: a task to train, or, for a model fitted in closed form (no
    optimiser steps), the finished checkpoint (`fitted`), written as OUT/model.safetensors."""

    task: Any  # a geneface.training.task.TrainTask, or None with `fitted`
    run_info: dict = attrs.field(factory=dict)  # recorded in run.json and checked on resume
    fitted: Any = None  # a geneface.core.checkpoint.Checkpoint


class Recipe(abc.ABC):
    options: ClassVar[tuple[TrainOption, ...]] = ()
    loop_defaults: ClassVar[dict] = {}  # this model's TrainConfig defaults (below the profile, file and flags)
    needs_data: ClassVar[bool] = True  # whether --data is required
    # Named sets of defaults, each {"train": ..., "model": ..., "task": ...}, picked by a
    # `--profile` flag (added to `options` for a recipe that has them); the first is the default.
    profiles: ClassVar[dict] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.profiles and not any(o.name == "profile" for o in cls.options):
            names = list(cls.profiles)
            cls.options = (*cls.options, TrainOption("profile", f"the defaults to start from: {' or '.join(names)}",
                                                     default=names[0]))

    def profile(self, options: dict) -> tuple[Optional[str], dict]:
        """(name, sections) of the profile the parsed flags choose; (None, {}) without profiles."""
        if not self.profiles:
            return None, {}
        name = options.get("profile") or next(iter(self.profiles))
        if name not in self.profiles:
            raise UsageError(f"--profile: unknown profile '{name}' (known: {', '.join(self.profiles)})")
        return name, self.profiles[name]

    @abc.abstractmethod
    def build(self, inputs: TrainInputs) -> BuiltTask:
        """The task to train (model built, data loaded); seeded by the caller beforehand."""


def load_recipe(stage_cls: type) -> Recipe:
    """Import the recipe a trainable stage names ("module:Class")."""
    target = stage_cls.training
    where = f"{stage_cls.kind} '{stage_cls.name}'"
    if not target:
        raise UsageError(f"{where} is not trainable")
    module_name, _, attr = target.partition(":")
    try:
        recipe_cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"{where}: its training recipe {target} cannot be loaded ({type(exc).__name__}: {exc})") from None
    if not (isinstance(recipe_cls, type) and issubclass(recipe_cls, Recipe)):
        raise PluginError(f"{where}: {target} is not a geneface.training.recipe.Recipe")
    return recipe_cls()


def parse_options(options: Sequence[TrainOption], args: Sequence[str], where: str) -> dict:
    """The recipe's flags from the leftover command-line words; one-line errors name the flag."""
    from geneface.core.text import did_you_mean

    by_name = {o.name: o for o in options}
    values: dict[str, Any] = {}
    words = list(args)
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("--"):
            raise UsageError(f"unexpected argument '{word}'")
        name, eq, inline = word[2:].partition("=")
        option = by_name.get(name)
        if option is None:
            known = ", ".join(f"--{n}" for n in by_name) or "none"
            hint = did_you_mean(f"--{name}", [f"--{n}" for n in by_name])
            raise UsageError(f"no such option --{name} for {where}{hint} "
                             f"(its own options: {known}; see `geneface train --help` for the shared ones)")
        if option.kind == "bool":
            if eq:
                raise UsageError(f"--{name} is a switch and takes no value")
            values[option.key] = True
            i += 1
            continue
        if eq:
            raw = inline
            i += 1
        elif i + 1 < len(words) and not words[i + 1].startswith("--"):
            raw = words[i + 1]
            i += 2
        else:
            raise UsageError(f"--{name} needs a value")
        values.setdefault(option.key, []).append(_convert(option, raw))
    out = {}
    for option in options:
        got = values.get(option.key)
        if got is None:
            if option.required:
                raise UsageError(f"{where} needs --{option.name}: {option.help}")
            out[option.key] = [] if option.kind == "paths" else option.default
        elif option.kind in ("paths", "bool"):
            out[option.key] = got
        elif len(got) > 1:
            raise UsageError(f"--{option.name} was given {len(got)} times; give it once")
        else:
            out[option.key] = got[0]
    return out


def _convert(option: TrainOption, raw: str) -> Any:
    try:
        if option.kind in ("path", "paths"):
            return Path(raw).expanduser()
        if option.kind == "int":
            return int(raw)
        if option.kind == "float":
            return float(raw)
    except ValueError:
        raise UsageError(f"--{option.name}: expected {option.kind}, got '{raw}'") from None
    return raw
