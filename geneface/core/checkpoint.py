"""One file per trained component: plugin name and version, config, extra metadata, weights.

Format: safetensors. Tensors are the component's state dict; the header's string metadata
holds `geneface.format`, `geneface.kind`, `geneface.plugin`, `geneface.plugin_version`,
`geneface.config` (JSON) and `geneface.meta` (JSON). Loading executes no code from the file
(unlike pickle), so checkpoints can be shared between users safely.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import attrs
import torch

from geneface.core.atomic import atomic_output
from geneface.errors import CheckpointError, UsageError

FORMAT = "geneface-checkpoint-1"


@attrs.frozen(eq=False)
class Checkpoint:
    kind: str
    plugin: str
    plugin_version: str
    config: dict
    state: dict  # name -> torch.Tensor
    meta: dict = attrs.field(factory=dict)  # training step, metrics, normalisation stats ...


def save_checkpoint(path: Path, ckpt: Checkpoint) -> None:
    """Write `ckpt` to `path` atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in ckpt.state.items()}
    metadata = {
        "geneface.format": FORMAT,
        "geneface.kind": ckpt.kind,
        "geneface.plugin": ckpt.plugin,
        "geneface.plugin_version": ckpt.plugin_version,
        "geneface.config": json.dumps(ckpt.config, sort_keys=True),
        "geneface.meta": json.dumps(ckpt.meta, sort_keys=True),
    }
    with atomic_output(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        # safetensors writes 0600 whatever the umask; a checkpoint is meant to be shared.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)


def read_meta(path: Path) -> dict:
    """A checkpoint's `meta` (training step, dataset, ...) without loading its tensors; {} when unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("geneface.meta", "{}"))
    except Exception:  # a damaged file is read_checkpoint's to report
        return {}
    return meta if isinstance(meta, dict) else {}


def read_checkpoint(path: Path, expect_kind: Optional[str] = None, expect_plugin: Optional[str] = None) -> Checkpoint:
    """Load a checkpoint; refuses a corrupt file or one meant for another plugin."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a checkpoint file")
    if not path.is_file():
        raise UsageError(f"{path}: no such checkpoint file")
    _refuse_pickle(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({exc})") from None
    if metadata.get("geneface.format") != FORMAT:
        raise CheckpointError(f"{path}: not a geneface checkpoint (format {metadata.get('geneface.format')!r})")
    try:
        config = json.loads(metadata["geneface.config"])
        meta = json.loads(metadata.get("geneface.meta", "{}"))
        ckpt = Checkpoint(
            kind=metadata["geneface.kind"],
            plugin=metadata["geneface.plugin"],
            plugin_version=metadata["geneface.plugin_version"],
            config=config,
            state=state,
            meta=meta,
        )
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: checkpoint metadata is damaged ({exc})") from None
    if not isinstance(ckpt.config, dict) or not isinstance(ckpt.meta, dict):
        raise CheckpointError(f"{path}: checkpoint metadata is damaged (config and meta must be JSON objects)")
    _check_finite(path, state)
    if expect_kind is not None and ckpt.kind != expect_kind:
        raise CheckpointError(f"{path}: holds a {ckpt.kind} ('{ckpt.plugin}'), not a {expect_kind}")
    if expect_plugin is not None and ckpt.plugin != expect_plugin:
        raise CheckpointError(
            f"{path}: was saved by plugin '{ckpt.plugin}' and cannot be loaded into '{expect_plugin}'"
        )
    return ckpt


def _refuse_pickle(path: Path) -> None:
    # torch.save writes a zip of pickles, older formats a bare pickle (protocol 2+ starts
    # with 0x80). Neither is ever unpickled here: it could run code. Say so plainly rather
    # than "corrupt".
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from None
    if head[8:9] == b"{":  # safetensors: 8-byte header length, then the JSON header
        return
    if head[:1] == b"\x80" or head[:4] == b"PK\x03\x04":
        raise CheckpointError(
            f"{path}: is a pickle or torch.save file, not a safetensors checkpoint; "
            "pickles are refused because loading one can run code"
        )


def _check_finite(path: Path, state: dict) -> None:
    # NaN weights (a diverged run) would load fine and render garbage or crash far away.
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: tensor '{name}' holds NaN or infinite values (a diverged training run?)")


def check_checkpoint(path: Path, kind: str, plugin: str, where: str) -> Checkpoint:
    """`read_checkpoint` for a spec's `where` key (e.g. stages.renderer.checkpoint).

    Readable, safetensors (a pickle is refused), finite weights, this stage's kind and
    plugin; the message names the key path as well as the file.
    """
    try:
        return read_checkpoint(path, expect_kind=kind, expect_plugin=plugin)
    except UsageError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    except CheckpointError as exc:
        raise CheckpointError(f"{where}: {exc}") from None


def stage_checkpoint(stage: Any, meta: Optional[dict] = None, version: str = "") -> Checkpoint:
    """A Checkpoint of a Stage instance (its kind, name, config and state dict)."""
    from geneface.core.config import unstructure

    return Checkpoint(
        kind=stage.kind,
        plugin=stage.name,
        plugin_version=version or getattr(stage, "version", "") or _geneface_version(),
        config=unstructure(stage.config),
        state=stage.state_dict(),
        meta=meta or {},
    )


def _geneface_version() -> str:
    from geneface import __version__

    return __version__
