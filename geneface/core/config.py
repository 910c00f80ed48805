"""Plain data (from YAML or a checkpoint) <-> a plugin's attrs Config, with key-path errors.

`structure(Config, {"n_mels": 80}, "stages.audio_encoder.config")` builds the record,
rejecting unknown keys (with the closest known one) and values of the wrong type, and names
the full key path in every message. `unstructure(config)` gives back plain data for YAML,
JSON and checkpoint metadata.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any, Mapping, Optional

import attrs

from geneface.core.text import did_you_mean
from geneface.errors import SpecError


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str, base: Optional[Path] = None) -> Any:
    """Check (and gently convert) `value` against the annotation `tp`; a relative Path
    resolves against `base` when given (a spec's folder)."""
    if tp is Any or tp is None:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "types.UnionType"):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where, base)
            except SpecError as exc:
                errors.append(str(exc))
        raise SpecError(errors[0] if len(errors) == 1 else f"{where}: {value!r} does not match {_type_name(tp)}")
    if origin is typing.Literal:
        if value not in args:
            options = ", ".join(repr(a) for a in args)
            raise SpecError(f"{where}: {value!r} is not one of {options}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise SpecError(f"{where}: expected {len(args)} items, got {len(value)}")
            items = [_convert(v, a, f"{where}[{i}]", base) for i, (v, a) in enumerate(zip(value, args))]
        else:
            item_tp = args[0] if args else Any
            items = [_convert(v, item_tp, f"{where}[{i}]", base) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise SpecError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if attrs.has(tp):
        return structure(tp, value, where, base)
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise SpecError(f"{where}: expected a path, got {value!r}")
        path = Path(value).expanduser()
        return path if base is None or path.is_absolute() else Path(os.path.normpath(Path(base) / path))
    return value


def structure(cls: type, data: Any, where: str = "config", base: Optional[Path] = None) -> Any:
    """Build attrs class `cls` from a mapping, naming `where` in every error; relative paths
    (fields typed Path) resolve against `base` when given."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in attrs.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise SpecError(f"{where}.{key}: unknown key{did_you_mean(key, fields)} (known: {', '.join(fields) or 'none'})")
        kwargs[key] = _convert(value, hints.get(key, Any), f"{where}.{key}", base)
    missing = [
        name
        for name, f in fields.items()
        if f.default is attrs.NOTHING and name not in kwargs and f.init
    ]
    if missing:
        raise SpecError(f"{where}: missing required key(s): {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise SpecError(f"{where}: {exc}") from None


def _plain(value: Any) -> Any:
    if attrs.has(type(value)):
        return unstructure(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def unstructure(record: Any) -> dict:
    """Plain, YAML/JSON-safe data from an attrs record."""
    return {f.name: _plain(getattr(record, f.name)) for f in attrs.fields(type(record))}
