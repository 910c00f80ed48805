"""One 3-D grid table, two backends: tinycudann's flat parameter vector <-> `GridEncoding`'s
`embeddings`, for a `GridConfig` with `lattice: tcnn` (the two then hold the same vertices).

Layouts (tinycudann's as its HashGrid is documented to lay out its parameters; not checked
against a tinycudann build here: `max_difference_from_tinycudann` is that check, for a CUDA
machine):

- tinycudann (`TcnnGridEncoding.encoding.params`): one vector; the levels' blocks one after
  the other (level l starts at entry `offsets[l]`), each block entry-major with an entry's
  features contiguous: entry e, feature f at `e * features + f`.
- geneface (`GridEncoding.embeddings`): features x entries, the same entries in the same order.

So one is the other's transpose, flattened. The default "geneface" lattice places its
vertices elsewhere (other resolutions, no half-cell shift, other table sizes): such a table
has no exact tinycudann form and is refused.
"""

from __future__ import annotations

from typing import Mapping

import torch

from geneface.nerf.encodings import GridConfig, GridEncoding, grid_layout

TORCH_KEY = "embeddings"  # GridEncoding's table
TCNN_KEY = "encoding.params"  # TcnnGridEncoding's
HEAD_SPACE = "head.space."  # where hashgrid_nerf's state dict keeps its space encoding
BACKENDS = ("torch", "tcnn")


def _check_lattice(config: GridConfig, key: str) -> None:
    if config.lattice != "tcnn":
        raise ValueError(f"{key}: grid.lattice is {config.lattice!r}, which cannot be converted exactly to "
                         "tinycudann's tables (the lattices differ); train with grid.lattice: tcnn")


def n_entries(config: GridConfig) -> int:
    """Table entries (vertex rows) of all levels together."""
    return grid_layout(config).rows


def to_tcnn(embeddings: torch.Tensor, config: GridConfig, key: str = TORCH_KEY) -> torch.Tensor:
    """`GridEncoding.embeddings` (features x entries) -> tinycudann's flat vector."""
    _check_lattice(config, key)
    shape = (config.features, n_entries(config))
    if tuple(embeddings.shape) != shape:
        raise ValueError(f"{key}: expected shape {shape[0]} x {shape[1]} (features x entries), "
                         f"got {' x '.join(map(str, embeddings.shape))}")
    return embeddings.detach().T.reshape(-1).clone()


def from_tcnn(params: torch.Tensor, config: GridConfig, key: str = TCNN_KEY) -> torch.Tensor:
    """tinycudann's flat vector -> `GridEncoding.embeddings` (features x entries), float32."""
    _check_lattice(config, key)
    entries = n_entries(config)
    expected = entries * config.features
    if params.dim() != 1 or params.numel() != expected:
        raise ValueError(f"{key}: expected a vector of {expected} values ({entries} entries x "
                         f"{config.features} features), got shape {tuple(params.shape)}")
    return params.detach().float().reshape(entries, config.features).T.contiguous()


def convert_space_state(state: Mapping[str, torch.Tensor], config: GridConfig, to: str,
                        prefix: str = "") -> dict:
    """A state dict holding a 3-D grid under `prefix` (either backend's key) with that grid
    in backend `to` ("torch" or "tcnn"); every other tensor as it is."""
    if to not in BACKENDS:
        raise ValueError(f"to must be one of {', '.join(BACKENDS)}, got {to!r}")
    torch_key, tcnn_key = prefix + TORCH_KEY, prefix + TCNN_KEY
    out = dict(state)
    if to == "tcnn" and torch_key in out:
        out[tcnn_key] = to_tcnn(out.pop(torch_key), config, torch_key)
    elif to == "torch" and tcnn_key in out:
        out[torch_key] = from_tcnn(out.pop(tcnn_key), config, tcnn_key)
    elif (tcnn_key if to == "tcnn" else torch_key) not in out:
        raise ValueError(f"{torch_key} / {tcnn_key}: not in the state dict (is the space a 3-D grid?)")
    return out  # converted, or already in `to`'s layout


def space_backend_of(state: Mapping[str, torch.Tensor], prefix: str = HEAD_SPACE) -> str:
    """Which backend's table a state dict holds under `prefix`: "torch", "tcnn" or "" (none)."""
    if prefix + TORCH_KEY in state:
        return "torch"
    return "tcnn" if prefix + TCNN_KEY in state else ""


def convert_hashgrid_state(state: Mapping[str, torch.Tensor], config, to: str) -> dict:
    """A whole `hashgrid_nerf` state dict (its config a geneface.nerf.talking_head
    TalkingHeadConfig) with its head's space encoding in backend `to`."""
    if config.head.space != "grid":
        raise ValueError(f"head.space is {config.head.space!r}: only a 3-D grid has a tinycudann form")
    return convert_space_state(state, config.head.grid, to, HEAD_SPACE)


def max_difference_from_tinycudann(config: GridConfig, n_points: int = 65536, seed: int = 0) -> float:
    """The check this module cannot run without a GPU: a tinycudann HashGrid (random table)
    and `GridEncoding` given the same table through `from_tcnn`, evaluated at the same random
    points on CUDA; the largest absolute difference of their outputs (tinycudann's half
    precision alone makes it about 1e-3 of the features' size)."""
    from geneface.nerf.encodings import TcnnGridEncoding

    torch.manual_seed(seed)
    fused = TcnnGridEncoding(config).cuda()
    with torch.no_grad():
        fused.encoding.params.uniform_(-1.0, 1.0)
        ours = GridEncoding(config).cuda()
        ours.embeddings.copy_(from_tcnn(fused.encoding.params, config))
        x = torch.rand(n_points, 3, device="cuda") * 2 * config.bound - config.bound
        return float((fused(x) - ours(x)).abs().max())
