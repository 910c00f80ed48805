"""Input encodings: frequency, spherical harmonics, and multi-resolution grids.

Grid encodings map a point to the features of a learned table interpolated at that point,
at several resolutions, concatenated level by level (`out_dim = levels * features`, x3 for a
tri-plane that concatenates its planes). Points are in `[-bound, bound]` per axis (the
config's `bound`, 1 by default); points outside are clamped to the border.

Three grids, two of them candidates for the head's space encoding (`benchmarks/bench_encodings.py`
measures them):

- `GridEncoding`: a 3-D grid. A level whose `(res + 1)^3` vertices fit in the table is dense
  (vertex -> row directly); finer levels share a table of `2^log2_hashmap_size` rows through a
  spatial hash. Pure PyTorch: the 8 corners of every level are gathered in one indexing op.
- `TriPlaneEncoding`: three dense 2-D grids (xy, xz, yz planes) read with `F.grid_sample`,
  one call per level for all three planes.
- `Grid2DEncoding`: one dense 2-D grid (the ambient coordinate, the torso's canonical image).

`make_grid_encoding` is the backend seam: tinycudann's fused hash grid on CUDA when it
imports and the grid has tinycudann's lattice (`GridConfig.lattice: tcnn`), PyTorch
otherwise, and it says which and why. With that lattice `GridEncoding` computes what
tinycudann's HashGrid computes, so one table serves both (geneface.nerf.tcnn_tables).
"""

from __future__ import annotations

import math
from typing import Optional, Union

import attrs
import torch
import torch.nn.functional as F
from torch import nn

_pos = attrs.validators.gt(0)

# The spatial hash of Teschner et al. as used by instant-ngp: xor of the coordinates times
# large primes (1 for x keeps neighbouring x in neighbouring rows, which is cache friendly).
HASH_PRIMES = (1, 2654435761, 805459861)

LATTICES = ("geneface", "tcnn")  # GridConfig.lattice: grid_layout says what each is


class FrequencyEncoding(nn.Module):
    """NeRF's positional encoding: `[x, sin(2^k x), cos(2^k x)]` for k < n_freqs.

    No factor of pi, as in NeRF's code: with inputs in [-1, 1] the lowest band is below one
    period over the whole box, so it cannot alias.
    """

    def __init__(self, in_dim: int = 3, n_freqs: int = 10, include_input: bool = True):
        super().__init__()
        self.in_dim, self.n_freqs, self.include_input = in_dim, n_freqs, include_input
        self.register_buffer("freqs", 2.0 ** torch.arange(n_freqs, dtype=torch.float32), persistent=False)

    @property
    def out_dim(self) -> int:
        return self.in_dim * (int(self.include_input) + 2 * self.n_freqs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb = (x[..., None, :] * self.freqs[:, None]).flatten(-2)  # (..., n_freqs * in_dim)
        parts = [x, torch.sin(xb), torch.cos(xb)] if self.include_input else [torch.sin(xb), torch.cos(xb)]
        return torch.cat(parts, dim=-1)


class SHEncoding(nn.Module):
    """Real spherical harmonics of a unit direction, `degree^2` outputs (degree 1 to 4).

    The view-direction encoding of the hash-grid renderer: smooth and cheap, and orthonormal
    on the sphere, so the colour MLP sees well-scaled inputs.
    """

    def __init__(self, degree: int = 4):
        super().__init__()
        if not 1 <= degree <= 4:
            raise ValueError(f"SHEncoding degree must be 1 to 4, got {degree}")
        self.degree = degree

    @property
    def out_dim(self) -> int:
        return self.degree**2

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        x, y, z = d.unbind(-1)
        out = [torch.full_like(x, 0.28209479177387814)]
        if self.degree > 1:
            out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
        if self.degree > 2:
            xx, yy, zz = x * x, y * y, z * z
            out += [
                1.0925484305920792 * x * y,
                -1.0925484305920792 * y * z,
                0.31539156525252005 * (2 * zz - xx - yy),
                -1.0925484305920792 * x * z,
                0.5462742152960396 * (xx - yy),
            ]
        if self.degree > 3:
            out += [
                -0.5900435899266435 * y * (3 * xx - yy),
                2.890611442640554 * x * y * z,
                -0.4570457994644658 * y * (4 * zz - xx - yy),
                0.3731763325901154 * z * (2 * zz - 3 * xx - 3 * yy),
                -0.4570457994644658 * x * (4 * zz - xx - yy),
                1.445305721320277 * z * (xx - yy),
                -0.5900435899266435 * x * (xx - 3 * yy),
            ]
        return torch.stack(out, dim=-1)


def growth_factor(levels: int, base: int, finest: int) -> float:
    """The per-level resolution factor taking `base` to `finest` in `levels` levels."""
    return (finest / base) ** (1.0 / (levels - 1)) if levels > 1 else 1.0


def level_resolutions(levels: int, base: int, finest: int) -> list[int]:
    """Cells per axis at each level: geometric from `base` to `finest`."""
    growth = growth_factor(levels, base, finest)
    return [int(round(base * growth**level)) for level in range(levels)]


def _to_unit(x: torch.Tensor, bound: float) -> torch.Tensor:
    return ((x / bound + 1.0) * 0.5).clamp(0.0, 1.0)


@attrs.define
class GridConfig:
    """A 3-D multi-resolution grid; defaults are RAD-NeRF's (16 levels x 2, 16 to 2048, 2^16 rows)."""

    levels: int = attrs.field(default=16, validator=_pos)
    features: int = attrs.field(default=2, validator=_pos)
    base_resolution: int = attrs.field(default=16, validator=_pos)
    finest_resolution: int = attrs.field(default=2048, validator=_pos)
    log2_hashmap_size: int = attrs.field(default=16, validator=_pos)
    bound: float = attrs.field(default=1.0, validator=_pos)
    init_scale: float = 1e-4  # uniform(-s, s), as instant-ngp: features start near zero
    # Where the vertices sit and which rows they own (`grid_layout`): "geneface" (this
    # package's own, the default) or "tcnn" (tinycudann's HashGrid, so that a table moves
    # between the two backends: geneface.nerf.tcnn_tables). The tcnn backend needs "tcnn".
    lattice: str = attrs.field(default="geneface", validator=attrs.validators.in_(LATTICES))

    @property
    def growth(self) -> float:
        return growth_factor(self.levels, self.base_resolution, self.finest_resolution)


def _next_multiple(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def tcnn_scales(config: GridConfig) -> list[float]:
    """tinycudann's per-level scale, `base * growth^l - 1`, in float32 as its kernels compute
    it (`exp2(l * log2(growth))`): the level's vertex count depends on its ceiling."""
    growth = torch.tensor(config.growth, dtype=torch.float32)
    levels = torch.arange(config.levels, dtype=torch.float32)
    scales = torch.exp2(levels * torch.log2(growth)) * torch.tensor(float(config.base_resolution)) - 1.0
    return scales.tolist()


@attrs.frozen
class GridLayout:
    """Per level: `scales` (a unit coordinate u in [0, 1] sits at `u * scale + shift` in
    vertex units), `strides` (vertices per axis: the dense row of vertex (i, j, k) is
    `i + j * stride + k * stride^2`), `sizes` and `offsets` (the level's rows in the table),
    `dense` (vertex -> row directly, else the xor prime hash); `clamp` (the lower corner is
    kept below the last cell: "geneface") and `wrap` (rows are taken modulo the level's size:
    "tcnn"). `resolutions`: each lattice's own number, cells per axis ("geneface") or
    tinycudann's grid resolution, vertices per axis ("tcnn")."""

    resolutions: tuple
    scales: tuple
    shift: float
    strides: tuple
    sizes: tuple
    offsets: tuple
    dense: tuple
    clamp: bool
    wrap: bool

    @property
    def rows(self) -> int:
        return sum(self.sizes)


def grid_layout(config: GridConfig) -> GridLayout:
    """The lattice of `config.lattice`.

    "geneface": level l has res = round(base * growth^l) cells per axis, vertex (i, j, k) at
    (i, j, k) / res; dense ((res + 1)^3 rows) while that fits in 2^log2_hashmap_size, else
    hashed into 2^log2_hashmap_size rows.

    "tcnn", tinycudann's HashGrid as it computes (not checked against a tinycudann build here:
    tests/nerf/test_tcnn_tables.py does that on a CUDA machine): scale = base * growth^l - 1,
    resolution R = ceil(scale) + 1, u at u * scale + 0.5; the level's table holds
    min(R^3 rounded up to a multiple of 8, 2^log2_hashmap_size) rows; dense when R^3 fits,
    else hashed; the row is taken modulo the table's size (it wraps: the upper corner of the
    last cell can be vertex R, one past the grid).
    """
    table = 2**config.log2_hashmap_size
    if config.lattice == "tcnn":
        scales = tcnn_scales(config)
        res = [math.ceil(s) + 1 for s in scales]
        sizes = [min(_next_multiple(r**3, 8), table) for r in res]
        dense = [r**3 <= size for r, size in zip(res, sizes)]
        strides, shift, clamp, wrap = res, 0.5, False, True
    else:
        res = level_resolutions(config.levels, config.base_resolution, config.finest_resolution)
        scales = [float(r) for r in res]
        dense = [(r + 1) ** 3 <= table for r in res]
        sizes = [(r + 1) ** 3 if d else table for r, d in zip(res, dense)]
        strides, shift, clamp, wrap = [r + 1 for r in res], 0.0, True, False
    if any(later and not earlier for earlier, later in zip(dense, dense[1:])):
        raise ValueError(f"grid: levels must grow finer (finest_resolution {config.finest_resolution} "
                         f"< base_resolution {config.base_resolution})")
    offsets = [0]
    for size in sizes[:-1]:
        offsets.append(offsets[-1] + size)
    return GridLayout(tuple(res), tuple(scales), shift, tuple(strides), tuple(sizes), tuple(offsets),
                      tuple(dense), clamp, wrap)


class GridEncoding(nn.Module):
    """3-D multi-resolution grid: dense coarse levels, hashed fine ones; trilinear, pure PyTorch.

    All levels live in one `embeddings` table (features x rows); level `l` owns rows
    `offsets[l]` to `offsets[l] + sizes[l]`. Where the vertices sit is the config's lattice
    (`grid_layout`): by default level `l` has `res` cells per axis and its vertex `(i, j, k)`
    (each 0..res) sits at `-bound + 2 * bound * (i, j, k) / res`; with `lattice: tcnn` the
    levels are tinycudann's HashGrid's, row for row.
    """

    def __init__(self, config: Optional[GridConfig] = None):
        super().__init__()
        self.config = config = config or GridConfig()
        self.layout = layout = grid_layout(config)
        # Resolutions grow with the level, so the dense levels are a prefix: one slice each way.
        self.n_dense = sum(layout.dense)
        self.resolutions, self.sizes, self.offsets = list(layout.resolutions), list(layout.sizes), list(layout.offsets)
        self.register_buffer("_scale", torch.tensor(layout.scales, dtype=torch.float32), persistent=False)
        self.register_buffer("_top", torch.tensor(layout.resolutions, dtype=torch.float32) - 1, persistent=False)
        self.register_buffer("_offsets", torch.tensor(layout.offsets, dtype=torch.long), persistent=False)
        self.register_buffer("_dense_sizes", torch.tensor(layout.sizes[:self.n_dense], dtype=torch.long),
                             persistent=False)
        # Row of vertex (i, j, k): dense levels sum i*1 + j*stride + k*stride^2; hashed levels
        # xor i*p0, j*p1, k*p2 and keep the low bits. Either way one multiplier per level and axis.
        mult = [[1, n, n * n] if d else list(HASH_PRIMES) for n, d in zip(layout.strides, layout.dense)]
        self.register_buffer("_mult", torch.tensor(mult, dtype=torch.long), persistent=False)
        # Hashed levels have 2^log2_hashmap_size rows in both lattices: the modulo is a mask.
        self.table_mask = 2**config.log2_hashmap_size - 1
        s = config.init_scale
        self.embeddings = nn.Parameter(torch.empty(config.features, layout.rows).uniform_(-s, s))

    @property
    def out_dim(self) -> int:
        return self.config.levels * self.config.features

    def _rows(self, ax: torch.Tensor, ay: torch.Tensor, az: torch.Tensor) -> torch.Tensor:
        """Rows of `embeddings` from the per-axis terms `i * mult` (L, ...) of each axis."""
        d = self.n_dense
        shape = torch.broadcast_shapes(ax.shape, ay.shape, az.shape)
        rows = torch.empty(shape, dtype=torch.long, device=ax.device)  # filled in place: no concatenation
        rows[:d].copy_(ax[:d]).add_(ay[:d]).add_(az[:d])
        if self.layout.wrap:  # tinycudann's lattice: vertex R (one past the grid) wraps around
            rows[:d].remainder_(self._dense_sizes.view(-1, *([1] * (rows.dim() - 1))))
        rows[d:].copy_(ax[d:]).bitwise_xor_(ay[d:]).bitwise_xor_(az[d:]).bitwise_and_(self.table_mask)
        return rows.add_(self._offsets.view(-1, *([1] * (rows.dim() - 1))))

    def vertex_rows(self, ijk: torch.Tensor) -> torch.Tensor:
        """Rows of `embeddings` holding the vertices `ijk` (N, L, 3), one per level -> (N, L)."""
        a = ijk.permute(1, 2, 0) * self._mult[:, :, None]  # (L, 3, N)
        return self._rows(a[:, 0], a[:, 1], a[:, 2]).T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        # Levels first and points last, so every elementwise op runs along contiguous points.
        u = _to_unit(x.reshape(-1, 3), self.config.bound).T  # (3, N)
        pos = u[None] * self._scale[:, None, None]  # (L, 3, N) in vertex units
        if self.layout.shift:
            pos = pos + self.layout.shift
        i0 = pos.floor()
        if self.layout.clamp:  # u = 1 interpolates inside the last cell
            i0 = torch.minimum(i0, self._top[:, None, None])
        frac = pos - i0
        lower = i0.long() * self._mult[:, :, None]
        upper = lower + self._mult[:, :, None]  # the next vertex along each axis
        terms = torch.stack([lower, upper], dim=1)  # (L, 2, 3, N)
        w = torch.stack([1 - frac, frac], dim=1)
        L, n = pos.shape[0], pos.shape[2]
        # The 8 corners by broadcasting x over dim 1, y over dim 2, z over dim 3: (L, 2, 2, 2, N).
        rows = self._rows(terms[:, :, None, None, 0], terms[:, None, :, None, 1], terms[:, None, None, :, 2])
        weights = w[:, :, None, None, 0] * w[:, None, :, None, 1] * w[:, None, None, :, 2]
        # The table is stored features x rows so that the gathered features, the weights and
        # the sum all run along contiguous points (about twice as fast on CPU as rows x
        # features); index_select's backward (index_add_) is also several times faster on
        # CPU than embedding's.
        feats = self.embeddings.index_select(1, rows.reshape(-1)).reshape(-1, L, 8, n)  # (F, L, 8, N)
        out = (feats * weights.reshape(L, 8, n)).sum(dim=2)  # (F, L, N)
        return out.permute(2, 1, 0).reshape(*lead, self.out_dim)


class _DensePlanes(nn.Module):
    """Multi-resolution dense 2-D grids for `n_planes` planes, read together by `grid_sample`.

    Level `l` of plane `p` is `grids[l][p]` (features x (res + 1) x (res + 1)); with
    `align_corners=True`, -1 and +1 land exactly on the first and last vertex.
    """

    def __init__(self, n_planes: int, levels: int, features: int, base: int, finest: int, init_scale: float):
        super().__init__()
        self.resolutions = level_resolutions(levels, base, finest)
        self.grids = nn.ParameterList(
            nn.Parameter(torch.empty(n_planes, features, r + 1, r + 1).uniform_(-init_scale, init_scale))
            for r in self.resolutions
        )

    def forward(self, uv: torch.Tensor) -> torch.Tensor:
        """`uv` (P, N, 2) in [-1, 1] (u along a grid's last axis) -> (P, N, levels * features)."""
        g = uv[:, :, None, :]  # grid_sample wants (P, H_out, W_out, 2): here N x 1
        out = [F.grid_sample(grid, g, mode="bilinear", padding_mode="border", align_corners=True) for grid in self.grids]
        return torch.cat(out, dim=1)[..., 0].transpose(1, 2)


@attrs.define
class TriPlaneConfig:
    """Three 2-D multi-resolution planes, all levels dense; defaults are ER-NeRF's size (12
    levels x 1 feature, 64 to 512): as fast as 6 x 2 here (benchmarks/bench_encodings.py)."""

    levels: int = attrs.field(default=12, validator=_pos)
    features: int = attrs.field(default=1, validator=_pos)
    base_resolution: int = attrs.field(default=64, validator=_pos)
    finest_resolution: int = attrs.field(default=512, validator=_pos)
    combine: str = attrs.field(default="concat", validator=attrs.validators.in_(("concat", "sum")))
    bound: float = attrs.field(default=1.0, validator=_pos)
    init_scale: float = 1e-4


class TriPlaneEncoding(nn.Module):
    """xyz -> features of the xy, xz and yz planes, concatenated (3 x levels x features) or summed.

    2-D levels stay dense: even 512^2 vertices x 3 planes is 0.8 M rows, and dense planes
    need no hash, so `grid_sample` (fast on CPU and CUDA, no custom kernel) does the work.
    """

    _AXES = ((0, 1), (0, 2), (1, 2))  # xy, xz, yz

    def __init__(self, config: Optional[TriPlaneConfig] = None):
        super().__init__()
        self.config = c = config or TriPlaneConfig()
        self.planes = _DensePlanes(3, c.levels, c.features, c.base_resolution, c.finest_resolution, c.init_scale)

    @property
    def out_dim(self) -> int:
        per_plane = self.config.levels * self.config.features
        return 3 * per_plane if self.config.combine == "concat" else per_plane

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        p = (x.reshape(-1, 3) / self.config.bound).clamp(-1.0, 1.0)
        uv = torch.stack([p[:, list(axes)] for axes in self._AXES])  # (3, N, 2)
        f = self.planes(uv)  # (3, N, levels * features)
        out = f.sum(0) if self.config.combine == "sum" else f.permute(1, 0, 2).reshape(f.shape[1], -1)
        return out.reshape(*lead, self.out_dim)


@attrs.define
class Grid2DConfig:
    """A 2-D multi-resolution grid, all levels dense (the ambient coordinate, the torso image)."""

    levels: int = attrs.field(default=8, validator=_pos)
    features: int = attrs.field(default=2, validator=_pos)
    base_resolution: int = attrs.field(default=16, validator=_pos)
    finest_resolution: int = attrs.field(default=256, validator=_pos)
    bound: float = attrs.field(default=1.0, validator=_pos)
    init_scale: float = 1e-4


class Grid2DEncoding(nn.Module):
    """(..., 2) points -> (..., levels * features), bilinear at each level."""

    def __init__(self, config: Optional[Grid2DConfig] = None):
        super().__init__()
        self.config = c = config or Grid2DConfig()
        self.planes = _DensePlanes(1, c.levels, c.features, c.base_resolution, c.finest_resolution, c.init_scale)

    @property
    def out_dim(self) -> int:
        return self.config.levels * self.config.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        uv = (x.reshape(1, -1, 2) / self.config.bound).clamp(-1.0, 1.0)
        return self.planes(uv)[0].reshape(*lead, self.out_dim)


class TcnnGridEncoding(nn.Module):
    """A `GridConfig` with `lattice: tcnn` through tinycudann's fused hash grid (CUDA only).

    The same lattice as `GridEncoding(config)` (both read the same config), so the two are
    interchangeable: its one flat parameter vector (`encoding.params`) and `GridEncoding`'s
    `embeddings` hold the same numbers in another order (geneface.nerf.tcnn_tables converts).
    tinycudann computes in half precision by default, so outputs agree to about 1e-3 of the
    features, not bit for bit.
    """

    def __init__(self, config: GridConfig):
        super().__init__()
        if config.lattice != "tcnn":
            raise ValueError(f"grid.lattice must be 'tcnn' for the tinycudann backend, got {config.lattice!r} "
                             "(the 'geneface' lattice places vertices differently)")
        import tinycudann as tcnn

        self.config = config
        self.encoding = tcnn.Encoding(
            3,
            {
                "otype": "HashGrid",
                "n_levels": config.levels,
                "n_features_per_level": config.features,
                "log2_hashmap_size": config.log2_hashmap_size,
                "base_resolution": config.base_resolution,
                "per_level_scale": config.growth,
                # Both are tinycudann's defaults, named so that a release with other defaults
                # still computes what the "tcnn" lattice does.
                "interpolation": "Linear",
                "hash": "CoherentPrime",
            },
        )
        expected = grid_layout(config).rows * config.features
        if self.encoding.params.numel() != expected:  # a tinycudann whose HashGrid is laid out otherwise
            raise ValueError(f"tinycudann's HashGrid holds {self.encoding.params.numel()} parameters, the 'tcnn' "
                             f"lattice {expected}: this tinycudann lays its tables out differently")

    @property
    def out_dim(self) -> int:
        return self.config.levels * self.config.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = _to_unit(x.reshape(-1, 3), self.config.bound)  # tinycudann reads [0, 1]
        return self.encoding(u).float().reshape(*x.shape[:-1], self.out_dim)


SpaceConfig = Union[GridConfig, TriPlaneConfig]


def tcnn_problem(device: Union[str, torch.device]) -> Optional[str]:
    """Why tinycudann cannot run on `device` (no CUDA, or it does not import), or None."""
    device = torch.device(device)
    if device.type != "cuda":
        return f"tinycudann needs CUDA; device is {device}"
    try:
        import tinycudann  # noqa: F401
    except Exception as err:  # ImportError, or a build for another CUDA/arch failing to load
        return f"tinycudann does not import ({type(err).__name__}: {err})"
    return None


def grid_backend(config: GridConfig, device: Union[str, torch.device], backend: str = "auto") -> tuple[str, str]:
    """Which backend a 3-D grid gets on `device`: `("tcnn" | "torch", reason)`.

    `backend`: "auto" (tinycudann when it runs there and the lattice is "tcnn", else PyTorch),
    "torch", or "tcnn" (a ValueError with the reason when it cannot be used).
    """
    if backend not in ("auto", "torch", "tcnn"):
        raise ValueError(f"backend must be auto, torch or tcnn, got {backend!r}")
    if backend == "torch":
        return "torch", "PyTorch backend requested"
    reason = tcnn_problem(device)
    if reason is None and config.lattice != "tcnn":
        reason = f"grid.lattice is {config.lattice!r}; tinycudann needs 'tcnn' (its vertices sit elsewhere)"
    if reason is None:
        return "tcnn", "tinycudann imports, the device is CUDA and grid.lattice is 'tcnn'"
    if backend == "tcnn":
        raise ValueError(f"cannot use the tcnn backend: {reason}")
    return "torch", reason


def make_grid_encoding(
    config: SpaceConfig, device: Union[str, torch.device] = "cpu", backend: str = "auto"
) -> tuple[nn.Module, str, str]:
    """Build a space encoding on `device`: `(module, backend, reason)`; the 3-D grid's backend
    as `grid_backend` chooses it."""
    if backend not in ("auto", "torch", "tcnn"):
        raise ValueError(f"backend must be auto, torch or tcnn, got {backend!r}")
    device = torch.device(device)
    if isinstance(config, TriPlaneConfig):
        if backend == "tcnn":
            raise ValueError("the tri-plane encoding has no tinycudann backend (dense planes need none)")
        return TriPlaneEncoding(config).to(device), "torch", "tri-plane: dense grid_sample, no fused kernel needed"
    chosen, reason = grid_backend(config, device, backend)
    module = TcnnGridEncoding(config) if chosen == "tcnn" else GridEncoding(config)
    return module.to(device), chosen, reason
