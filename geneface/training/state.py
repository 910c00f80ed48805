"""Resume state as safetensors tensors + JSON: model, optimiser, random generators, step.

Nothing here unpickles. Tensors (weights, Adam moments, torch RNG states, numpy's Mersenne
twister key) go into the safetensors body; everything else (step counters, parameter-group
settings, Python's RNG state, numpy Generator states) into the JSON metadata. Restoring all
of it makes a resumed run take exactly the steps an uninterrupted one would have taken.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

# -- optimiser ---------------------------------------------------------------------------


def flatten_optimizer(state_dict: dict, prefix: str = "optim.") -> tuple[dict, dict]:
    """torch optimiser state_dict -> ({name: tensor}, JSON-safe meta)."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict] = {}
    for pid, entry in state_dict["state"].items():
        keep = {}
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}{pid}.{key}"] = value.detach().cpu()
            else:
                keep[key] = value
        plain[str(pid)] = keep
    return tensors, {"state": plain, "param_groups": state_dict["param_groups"]}


def unflatten_optimizer(tensors: dict, meta: dict, like: dict, prefix: str = "optim.") -> dict:
    """Inverse of `flatten_optimizer`; `like` (the live optimiser's state_dict) gives back the
    tuples JSON turned into lists (Adam's betas)."""
    state: dict[int, dict] = {int(pid): dict(entry) for pid, entry in meta["state"].items()}
    for name, value in tensors.items():
        if not name.startswith(prefix):
            continue
        pid, key = name[len(prefix):].split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    groups = []
    for saved, live in zip(meta["param_groups"], like["param_groups"]):
        groups.append({k: tuple(v) if isinstance(live.get(k), tuple) and isinstance(v, list) else v
                       for k, v in saved.items()})
    return {"state": state, "param_groups": groups}


# -- random generators -------------------------------------------------------------------


def capture_rng(data_rng: np.random.Generator) -> tuple[dict, dict]:
    """Every RNG a training step may draw from -> (tensors, meta)."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda{i}"] = s
    name, key, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy_key"] = torch.from_numpy(key.astype(np.int64))
    version, internal, gauss_next = random.getstate()
    meta = {
        "numpy": [name, int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss_next],
        "data": data_rng.bit_generator.state,
    }
    return tensors, meta


def restore_rng(tensors: dict, meta: dict, data_rng: np.random.Generator) -> None:
    torch.set_rng_state(tensors["torch_cpu"].to(torch.uint8))
    cuda = sorted(k for k in tensors if k.startswith("torch_cuda"))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k].to(torch.uint8) for k in cuda])
    name, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, tensors["numpy_key"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = meta["python"]
    random.setstate((version, tuple(internal), gauss_next))
    data_rng.bit_generator.state = meta["data"]


def prefixed(tensors: dict, prefix: str) -> dict:
    return {f"{prefix}{k}": v for k, v in tensors.items()}


def unprefixed(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def json_safe(value: Any) -> Any:
    """Numbers from numpy/torch -> plain Python, so metrics can go into JSON metadata."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if torch.is_tensor(value):
        return value.item()
    return value
