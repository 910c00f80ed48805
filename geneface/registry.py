"""One plugin registry for every kind of component.

- One pluggy PluginManager; hooks in `geneface.hookspecs`.
- Every plugin module, built-in or third-party, comes from the entry-point group `geneface`
  and is registered the same way. `GENEFACE_PLUGINS=dist1,dist2` narrows which third-party
  distributions load (built-ins always do), so tests and bug reports are reproducible.
- A module that fails to import or whose hook raises is recorded as broken, with its error,
  and the rest still load. Two plugins with one name in one kind are both kept and using the
  name fails with an error naming both origins.
- Stages are made here and nowhere else: `build(stage_spec)` (a spec's stage: config, or a
  checkpoint plus config overrides) and `load(checkpoint, kind, where)` (a trained component
  from its file alone). One rule for their errors: whatever the file or the plugin gets
  wrong is prefixed with `where` (the spec key or the flag the user wrote); a config's own
  errors carry its key path instead.

The registry is made once per command, by the CLI (`get_registry`), and handed down as an
argument (`tests/test_layers.py` holds that); library layers never import this module.
"""

from __future__ import annotations

import os
import traceback
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import attrs
import pluggy

from geneface import hookspecs
from geneface.core.config import structure
from geneface.core.kinds import HOOK_KINDS, STAGE_KINDS
from geneface.core.stages import Stage
from geneface.core.text import did_you_mean
from geneface.errors import CheckpointError, GenefaceError, PluginError

GROUP = "geneface"
BUILTIN_DIST = "geneface"
ENV_ALLOW = "GENEFACE_PLUGINS"


@attrs.frozen
class Origin:
    """Where a plugin came from: distribution, its version and the entry point."""

    dist: str
    version: str
    entry_point: str

    def __str__(self) -> str:
        return f"{self.dist} {self.version} ({self.entry_point})"


@attrs.frozen
class PluginEntry:
    kind: str
    name: str
    cls: type
    origin: Origin

    @property
    def description(self) -> str:
        return self.cls.description

    @property
    def unavailable_reason(self) -> Optional[str]:
        return self.cls.unavailable_reason()


@attrs.frozen
class BrokenPlugin:
    origin: Origin
    error: str
    detail: str = ""  # the traceback, for --debug


def kind_base(kind: str) -> type[Stage]:
    return STAGE_KINDS[kind].base


class Registry:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.entries: dict[tuple[str, str], list[PluginEntry]] = {}
        self.broken: list[BrokenPlugin] = []

    # -- loading -------------------------------------------------------------------------
    def load_entry_points(self, allow: Optional[set[str]] = None) -> None:
        for ep in entry_points(group=GROUP):
            dist = ep.dist.name if ep.dist is not None else "?"
            version = ep.dist.version if ep.dist is not None else "?"
            if allow is not None and dist != BUILTIN_DIST and dist not in allow:
                continue
            origin = Origin(dist, version, f"{ep.name} = {ep.value}")
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not break the CLI
                self.broken.append(
                    BrokenPlugin(origin, f"import failed: {type(exc).__name__}: {exc}", traceback.format_exc())
                )
                continue
            self.register_module(module, origin)

    def register_module(self, module: ModuleType, origin: Origin) -> None:
        """Register one plugin module's hook implementations (public: used by tests too)."""
        plugin_name = f"{origin.dist}:{origin.entry_point}"
        if self.pm.is_registered(module) or self.pm.has_plugin(plugin_name):
            return
        try:
            self.pm.register(module, name=plugin_name)
        except Exception as exc:
            self.broken.append(BrokenPlugin(origin, f"not a valid plugin: {exc}", traceback.format_exc()))
            return
        for hook_name, kind in HOOK_KINDS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                if impl.plugin is not module:
                    continue
                try:
                    impl.function(register=lambda cls, _k=kind: self._add(_k, cls, origin))
                except Exception as exc:
                    self.broken.append(
                        BrokenPlugin(origin, f"{hook_name} failed: {type(exc).__name__}: {exc}", traceback.format_exc())
                    )

    def _add(self, kind: str, cls: type, origin: Origin) -> None:
        base = kind_base(kind)
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise TypeError(f"{cls!r} is not a subclass of {base.__name__}")
        if not cls.name:
            raise TypeError(f"{cls.__name__} has no `name`")
        self.entries.setdefault((kind, cls.name), []).append(PluginEntry(kind, cls.name, cls, origin))

    # -- queries -------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(name for (k, name) in self.entries if k == kind)

    def all_entries(self) -> list[PluginEntry]:
        return [e for key in sorted(self.entries) for e in self.entries[key]]

    def get(self, kind: str, name: str, where: str = "") -> PluginEntry:
        """The plugin `name` of `kind`; `where` (a spec key path) prefixes the error message."""
        prefix = f"{where}: " if where else ""
        if kind not in STAGE_KINDS:
            raise PluginError(f"{prefix}unknown kind of component '{kind}' (known: {', '.join(STAGE_KINDS)})")
        found = self.entries.get((kind, name))
        if not found:
            known = self.names(kind)
            msg = f"{prefix}unknown {kind} plugin '{name}'{did_you_mean(name, known)}"
            msg += f" (known: {', '.join(known) or 'none'})"
            raise PluginError(msg)
        if len(found) > 1:
            origins = " and ".join(str(e.origin) for e in found)
            raise PluginError(f"{prefix}two {kind} plugins are named '{name}': from {origins}; uninstall one")
        entry = found[0]
        reason = entry.unavailable_reason
        if reason:
            raise PluginError(f"{prefix}{kind} plugin '{name}' is not available: {reason}")
        return entry

    def trainable(self, kind: str) -> list[PluginEntry]:
        """Every installed plugin of `kind` that trains (broken names and clashes left out)."""
        return [found[0] for (k, _), found in sorted(self.entries.items())
                if k == kind and len(found) == 1 and found[0].cls.trainable()]

    # -- making stages -------------------------------------------------------------------
    def build(self, stage_spec: Any, base: Optional[Path] = None, loaded: Any = None) -> Stage:
        """One stage of a spec (`geneface.core.spec.StageSpec`): the plugin with the spec's
        config, or restored from its checkpoint with the config as overrides. Relative paths in
        the config resolve against `base` (the spec's folder); `loaded`: the checkpoint already
        read (`validate_spec` hands it over), so no file is read twice."""
        where = f"stages.{stage_spec.kind}"
        if stage_spec.checkpoint is None:
            cls = self.get(stage_spec.kind, stage_spec.plugin, where=f"{where}.plugin").cls
            return cls(structure(cls.Config, stage_spec.config, f"{where}.config", base))
        self.get(stage_spec.kind, stage_spec.plugin, where=f"{where}.plugin")  # unknown names first
        return self.load(stage_spec.checkpoint, stage_spec.kind, f"{where}.checkpoint", plugin=stage_spec.plugin,
                         overrides=stage_spec.config, config_where=f"{where}.config", base=base, loaded=loaded)

    def load(self, checkpoint: Path, kind: str, where: str, plugin: Optional[str] = None,
             overrides: Optional[dict] = None, config_where: Optional[str] = None,
             base: Optional[Path] = None, loaded: Any = None) -> Stage:
        """A trained component of `kind` from its checkpoint: the plugin it names (it must be
        `plugin` when given), its saved config under `overrides`, its weights. `where` (a flag
        such as `--syncnet`, or a spec key) prefixes every error about the file or the plugin."""
        from geneface.core.checkpoint import read_checkpoint  # torch: only when a stage is loaded

        path = Path(checkpoint).expanduser()
        try:
            ckpt = loaded if loaded is not None else read_checkpoint(path, expect_kind=kind, expect_plugin=plugin)
            cls = self.get(kind, ckpt.plugin, where=str(path)).cls
        except GenefaceError as exc:
            raise _prefixed(exc, where) from None
        stage = cls(structure(cls.Config, {**ckpt.config, **(overrides or {})}, config_where or f"{path}:config", base))
        try:
            stage.load_checkpoint(ckpt)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise _prefixed(CheckpointError(f"{path}: does not fit plugin '{cls.name}' ({exc})"), where) from None
        return stage


def _prefixed(exc: GenefaceError, where: str) -> GenefaceError:
    """The registry's one rule for errors about a file or plugin: `WHERE: message`."""
    if not where or str(exc).startswith(f"{where}:"):
        return exc
    return type(exc)(f"{where}: {exc}")


_REGISTRY: Optional[Registry] = None


def allowed_distributions() -> Optional[set[str]]:
    value = os.environ.get(ENV_ALLOW)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def get_registry(reload: bool = False) -> Registry:
    """The process-wide registry, loaded on first use."""
    global _REGISTRY
    if _REGISTRY is None or reload:
        registry = Registry()
        registry.load_entry_points(allowed_distributions())
        _REGISTRY = registry
    return _REGISTRY
