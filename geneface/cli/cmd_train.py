"""`geneface train syncnet` and `geneface train audio2motion`: the generic audio-to-motion models.

Both read any list of datasets (`--data`, repeatable; a folder of datasets counts as all of
them), hold out whole speakers for validation, and write to `--out`:

    OUT/model.safetensors   the best model by validation (load it in a spec or with --syncnet)
    OUT/last.safetensors    the model after the last step
    OUT/best/               the best `keep_best` models
    OUT/state/              resume states (`--resume` continues from the newest)
    OUT/metrics.csv         step, phase, name, value (and OUT/tensorboard/ when installed)
    OUT/run.json            every setting of the run

Settings: loop flags below, or `--config FILE.yaml` with sections `train` (loop), `model`
(the plugin's config) and `task` (losses, sampling); flags win over the file. Multi-GPU:
`torchrun --standalone --nproc_per_node N --no-python geneface train ...` (docs/training.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from geneface.cli.app import app

train_app = typer.Typer(help="Train the audio-to-motion models (SyncNet, VAE) from datasets.", no_args_is_help=True)
app.add_typer(train_app, name="train")

_DATA = typer.Option(..., "--data", "-d", help="A dataset or a folder of datasets; repeat for more.")
_OUT = typer.Option(..., "--out", "-o", help="Output folder for models, states and metrics.")


def _load_yaml(path: Optional[Path]) -> dict:
    from geneface.errors import SpecError

    if path is None:
        return {}
    import yaml

    if not path.is_file():
        raise SpecError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping with sections train, model, task")
    unknown = sorted(set(data) - {"train", "model", "task"})
    if unknown:
        raise SpecError(f"{path}: unknown section(s) {', '.join(unknown)} (known: train, model, task)")
    return data


def _train_config(file: dict, where: Path, overrides: dict, defaults: dict):
    from geneface.core.config import structure
    from geneface.training.config import TrainConfig

    data = {**defaults, **(file.get("train") or {})}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return structure(TrainConfig, data, f"{where or '--config'}:train")


def _loop_overrides(steps, batch_size, lr, seed, device, val_every, ckpt_every, log_every, keep_best, threads) -> dict:
    return {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "device": device,
            "val_every": val_every, "ckpt_every": ckpt_every, "log_every": log_every, "keep_best": keep_best,
            "threads": threads}


def _clips(data: list[Path], encoder: str, val_speakers: Optional[str], seed: int,
           expected_width: Optional[int] = None, what: str = ""):
    """Load and split the clips; one feature width throughout (the checkpoint's, if given)."""
    from geneface.training.data import check_width, load_clips, split_by_speaker

    clips = load_clips(data, encoder)
    check_width(clips, expected_width, what)
    chosen = [s.strip() for s in val_speakers.split(",") if s.strip()] if val_speakers else None
    split = split_by_speaker(clips, chosen, seed=seed)
    info = {"datasets": sorted({c.source for c in clips}), "encoder": encoder,
            "train_speakers": sorted({c.speaker for c in split.train}), "val_speakers": list(split.val_speakers)}
    return clips, split, info


def _report(result: dict) -> None:
    if "model" not in result:
        return  # not rank 0
    best = result["best"][0] if result["best"] else None
    line = f"wrote {result['model']} (step {result['step']}"
    if best:
        line += f"; best at step {best['step']}: {best['value']:.4f}"
    typer.echo(line + ")")


def _run(trainer) -> dict:
    from geneface.training.distributed import shutdown

    try:
        return trainer.fit()
    finally:
        shutdown(trainer.dist)


@train_app.command("syncnet")
def train_syncnet(
    data: list[Path] = _DATA,
    out: Path = _OUT,
    encoder: str = typer.Option("mel", "--encoder", "-e", help="Which audio features of the datasets to use."),
    val_speakers: Optional[str] = typer.Option(None, "--val-speakers", help="Comma-separated speakers to hold out."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML with train/model/task sections."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimiser steps (default 40000)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Pairs per step and process (default 64)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default 5e-4, cosine decay)."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    val_every: Optional[int] = typer.Option(None, "--val-every"),
    ckpt_every: Optional[int] = typer.Option(None, "--ckpt-every"),
    log_every: Optional[int] = typer.Option(None, "--log-every"),
    keep_best: Optional[int] = typer.Option(None, "--keep-best"),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (0: its default)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run saved in --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train the landmark SyncNet (lip-sync judge and loss) on datasets."""
    from geneface.core.config import structure
    from geneface.plugins.syncnet import SyncNet, SyncNetConfig
    from geneface.training.syncnet_task import SyncNetTask, SyncNetTrainConfig
    from geneface.training.trainer import Trainer

    file = _load_yaml(config)
    cfg = _train_config(file, config, _loop_overrides(steps, batch_size, lr, seed, device, val_every, ckpt_every,
                                                      log_every, keep_best, threads), {})
    clips, split, info = _clips(data, encoder, val_speakers, cfg.seed)
    model_cfg = structure(SyncNetConfig, {**(file.get("model") or {}), "audio_width": clips[0].width},
                          f"{config or '--config'}:model")
    task_cfg = structure(SyncNetTrainConfig, file.get("task") or {}, f"{config or '--config'}:task")
    print(split.describe(), file=sys.stderr)
    torch_seed(cfg.seed)
    task = SyncNetTask(SyncNet(model_cfg), split.train, split.val, task_cfg, encoder, info)
    trainer = Trainer(task, cfg, out, resume=resume, progress=not quiet, extra_run_info={"data": info})
    _report(_run(trainer))


@train_app.command("audio2motion")
def train_audio2motion(
    data: list[Path] = _DATA,
    out: Path = _OUT,
    syncnet: Path = typer.Option(..., "--syncnet", help="A trained syncnet checkpoint (geneface train syncnet)."),
    encoder: str = typer.Option("mel", "--encoder", "-e", help="Which audio features of the datasets to use."),
    val_speakers: Optional[str] = typer.Option(None, "--val-speakers", help="Comma-separated speakers to hold out."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML with train/model/task sections."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimiser steps (default 40000)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Sequences per step and process (default 16)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default 5e-4, exponential decay)."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    val_every: Optional[int] = typer.Option(None, "--val-every"),
    ckpt_every: Optional[int] = typer.Option(None, "--ckpt-every"),
    log_every: Optional[int] = typer.Option(None, "--log-every"),
    keep_best: Optional[int] = typer.Option(None, "--keep-best"),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (0: its default)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run saved in --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train the audio-to-motion VAE (MotionGenerator `vae`) with a frozen SyncNet."""
    from geneface.core.checkpoint import read_checkpoint
    from geneface.core.config import structure
    from geneface.plugins.syncnet import SyncNet, SyncNetConfig
    from geneface.plugins.vae import VAEConfig, VAEGenerator
    from geneface.training.trainer import Trainer
    from geneface.training.vae_task import VAETask, VAETrainConfig

    file = _load_yaml(config)
    # METHOD.md: warm-up 1k steps, exponential decay, gradient clipping at 1.
    defaults = {"batch_size": 16, "schedule": "exponential", "warmup": 1000, "grad_clip": 1.0}
    cfg = _train_config(file, config, _loop_overrides(steps, batch_size, lr, seed, device, val_every, ckpt_every,
                                                      log_every, keep_best, threads), defaults)
    ckpt = read_checkpoint(syncnet, expect_kind="syncnet", expect_plugin="syncnet")
    judge = SyncNet(structure(SyncNetConfig, ckpt.config, f"{syncnet}:config"))
    judge.load_checkpoint(ckpt)
    clips, split, info = _clips(data, encoder, val_speakers, cfg.seed, judge.expected_width, f"syncnet {syncnet}")
    if judge.encoder and judge.encoder != encoder:
        from geneface.errors import StageMismatchError

        raise StageMismatchError(f"syncnet {syncnet} was trained on '{judge.encoder}' features, not '{encoder}'")
    model_cfg = structure(VAEConfig, {**(file.get("model") or {}), "audio_width": clips[0].width},
                          f"{config or '--config'}:model")
    task_cfg = structure(VAETrainConfig, file.get("task") or {}, f"{config or '--config'}:task")
    print(split.describe(), file=sys.stderr)
    torch_seed(cfg.seed)
    task = VAETask(VAEGenerator(model_cfg), judge, split.train, split.val, task_cfg, encoder,
                   {**info, "syncnet": str(syncnet)})
    trainer = Trainer(task, cfg, out, resume=resume, progress=not quiet, extra_run_info={"data": info})
    _report(_run(trainer))


def torch_seed(seed: int) -> None:
    """Seed before the model is built, so its initial weights depend on --seed only."""
    import torch

    torch.manual_seed(seed)
