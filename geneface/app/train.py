"""The engine of `geneface train KIND [--plugin NAME]`: train any trainable plugin, built-in
or third-party, exactly as the command does (`geneface bench renderers` calls it once per
renderer).

The plugin says how it trains (`Stage.training` names its recipe, imported only here); the
loop flags every trainer shares are declared once in geneface/cli/cmd_train.py; the rest of
the command line goes to the recipe, whose own flags (`--syncnet CKPT`, ...) `--options`
lists. The registry is handed to the recipe with its inputs. Every run writes to `--out`:

    OUT/model.safetensors   the best model by validation (load it in a spec or with --syncnet)
    OUT/last.safetensors    the model after the last step
    OUT/best/               the best `keep_best` models
    OUT/state/              resume states (`--resume` continues from the newest)
    OUT/validation/         validation images, when the model makes any
    OUT/metrics.csv         step, phase, name, value (and OUT/tensorboard/ when installed)
    OUT/run.json            every setting of the run (and why it stopped early, if it did)

Settings: loop flags, or `--config FILE.yaml` with sections `train` (loop), `model` (the
plugin's config) and `task` (losses, sampling); each built in layers, each layer once: the
defaults, the recipe's `--profile` (when it has profiles), the file, the flags.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Optional, Sequence

# Names users know the generic models by, as kinds of component.
KIND_ALIASES = {"audio2motion": "motion_generator", "postnet": "domain_adapter"}


def _load_yaml(path: Optional[Path]) -> dict:
    from geneface.errors import SpecError

    if path is None:
        return {}
    import yaml

    from geneface.core.yaml_safe import load_yaml

    if not path.is_file():
        raise SpecError(f"{path}: no such config file")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), path, "config") or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read config ({exc})") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping with sections train, model, task")
    unknown = sorted(set(data) - {"train", "model", "task"})
    if unknown:
        raise SpecError(f"{path}: unknown section(s) {', '.join(unknown)} (known: train, model, task)")
    return data


def _train_config(file: dict, where: Optional[Path], overrides: dict, defaults: dict):
    from geneface.core.config import structure
    from geneface.training.config import TrainConfig

    data = {**defaults, **(file.get("train") or {})}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return structure(TrainConfig, data, f"{where or '--config'}:train")


def plugin_to_train(kind_word: str, plugin: Optional[str], registry):
    """The registry entry to train: --plugin, or the only trainable plugin of the kind."""
    from geneface.core.kinds import STAGE_KINDS
    from geneface.core.text import did_you_mean
    from geneface.errors import UsageError

    kind = KIND_ALIASES.get(kind_word, kind_word)
    if kind not in STAGE_KINDS:
        # `train vae` / `train syncnet`: a plugin name where a kind was expected.
        named = [k for k in STAGE_KINDS if kind_word in registry.names(k)]
        if len(named) == 1 and plugin is None:
            kind, plugin = named[0], kind_word
        else:
            words = [*STAGE_KINDS, *KIND_ALIASES]
            raise UsageError(f"unknown kind '{kind_word}'{did_you_mean(kind_word, words)} (kinds: {', '.join(words)})")
    if plugin is None:
        trainable = [e.name for e in registry.trainable(kind)]
        if len(trainable) != 1:
            raise UsageError(f"choose the {kind} plugin to train with --plugin "
                             f"(trainable: {', '.join(trainable) or 'none installed'})")
        plugin = trainable[0]
    entry = registry.get(kind, plugin, where="--plugin")
    if not entry.cls.trainable():
        raise UsageError(f"--plugin: {kind} '{plugin}' is not trainable (it takes no training)")
    return entry


def _write_fitted(out: Path, built, entry) -> None:
    """A model fitted without optimiser steps: OUT/model.safetensors and OUT/run.json."""
    import json

    from geneface.core.atomic import atomic_output
    from geneface.core.checkpoint import save_checkpoint

    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "model.safetensors", built.fitted)
    with atomic_output(out / "run.json") as tmp:
        tmp.write_text(json.dumps({"task": entry.name, "fitted": True, **built.run_info}, indent=2, sort_keys=True,
                                  default=str))


def train_plugin(entry, data: Sequence[Path], out: Path, *, args: Sequence[str] = (), loop: Optional[dict] = None,
                 config: Optional[Path] = None, resume: bool = False, overwrite: bool = False, progress: bool = True,
                 on_step: Optional[Callable[[int], None]] = None, registry) -> dict:
    """Train one registry entry into `out`, exactly as `geneface train` does (the command is
    this plus its messages; `geneface bench renderers` calls it once per renderer).
    `registry`: the one the recipe gets (the caller's).

    `args`: the recipe's own flags as command-line words (`["--profile", "quick"]`); `loop`:
    loop settings over the recipe's defaults and the `--config` file (None values ignored).
    Returns the Trainer's result (`model`, `last`, `step`, `best`, `stopped`, `chosen`) with
    `fitted: False`, or `{"model", "step": 0, "fitted": True}` for a model fitted in closed form.
    """
    import torch

    from geneface.core.outputs import run_folder
    from geneface.errors import UsageError
    from geneface.training.distributed import shutdown
    from geneface.training.recipe import TrainInputs, load_recipe, merged, parse_options
    from geneface.training.trainer import Trainer

    recipe = load_recipe(entry.cls)
    where = f"training {entry.kind} '{entry.name}'"
    options = parse_options(recipe.options, list(args), where)
    data = [Path(d) for d in data]
    if recipe.needs_data and not data:
        raise UsageError(f"{where} needs --data: a dataset or a folder of datasets")
    paths = [*data, config, *(v for v in options.values() if isinstance(v, Path)),
             *(p for v in options.values() if isinstance(v, list) for p in v if isinstance(p, Path))]
    run_folder(out, overwrite=overwrite, resume=resume, inputs=paths)

    file = _load_yaml(config)
    # Each config in layers, each layer once: defaults, the profile, the file, the flags.
    profile_name, profile = recipe.profile(options)
    loop_config = _train_config(file, config, dict(loop or {}), merged(recipe.loop_defaults, profile.get("train") or {}))
    torch.manual_seed(loop_config.seed)  # before the model is built: its initial weights depend on --seed only
    built = recipe.build(TrainInputs(entry.cls, tuple(data), options, file, config, loop_config,
                                     registry, profile, profile_name))
    if overwrite and not resume and out.is_dir():
        # Checked above: a folder holding a run, not one of the inputs. Under torchrun every
        # process does this on one shared folder: a file another rank already took is no error.
        shutil.rmtree(out, ignore_errors=True)
    if built.fitted is not None:
        _write_fitted(out, built, entry)
        return {"model": out / "model.safetensors", "step": 0, "fitted": True}
    trainer = Trainer(built.task, loop_config, out, resume=resume, progress=progress, extra_run_info=built.run_info,
                      on_step=on_step)
    try:
        return {**trainer.fit(), "fitted": False}
    finally:
        shutdown(trainer.dist)
