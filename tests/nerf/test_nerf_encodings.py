"""geneface.nerf.encodings: exact interpolation on the grids, fitting, the backend seam."""

from __future__ import annotations

import math

import attrs
import pytest
import torch

from geneface.nerf.encodings import (
    FrequencyEncoding,
    Grid2DConfig,
    Grid2DEncoding,
    GridConfig,
    GridEncoding,
    SHEncoding,
    TriPlaneConfig,
    TriPlaneEncoding,
    make_grid_encoding,
)
from geneface.nerf.mlp import MLP, MLPConfig


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    pass


# 4 levels at 4, 8, 16, 32 cells; a 1024-row table holds 5^3 and 9^3 vertices, not 17^3.
SMALL = GridConfig(levels=4, features=2, base_resolution=4, finest_resolution=32, log2_hashmap_size=10)


def _random_grid(config: GridConfig = SMALL) -> GridEncoding:
    torch.manual_seed(0)
    enc = GridEncoding(config)
    with torch.no_grad():
        enc.embeddings.normal_()
    return enc


def _vertex_point(ijk: torch.Tensor, res: int) -> torch.Tensor:
    return 2.0 * ijk.float() / res - 1.0


def test_frequency_encoding_layout():
    enc = FrequencyEncoding(in_dim=2, n_freqs=3)
    x = torch.tensor([[0.3, -0.7]])
    out = enc(x)[0]
    assert enc.out_dim == out.shape[0] == 2 * (1 + 2 * 3)
    expected = [0.3, -0.7]
    expected += [math.sin(f * v) for f in (1, 2, 4) for v in (0.3, -0.7)]
    expected += [math.cos(f * v) for f in (1, 2, 4) for v in (0.3, -0.7)]
    torch.testing.assert_close(out, torch.tensor(expected))
    assert FrequencyEncoding(3, 4, include_input=False).out_dim == 24


def test_spherical_harmonics_are_orthonormal():
    g = torch.Generator().manual_seed(0)
    d = torch.nn.functional.normalize(torch.randn(200_000, 3, generator=g), dim=-1)
    y = SHEncoding(4)(d)
    gram = 4 * math.pi * (y.T @ y) / len(d)  # Monte Carlo integral over the sphere
    torch.testing.assert_close(gram, torch.eye(16), atol=0.03, rtol=0)
    assert SHEncoding(2).out_dim == 4


def test_grid_has_dense_coarse_and_hashed_fine_levels():
    enc = GridEncoding(SMALL)
    assert enc.resolutions == [4, 8, 16, 32]
    assert enc.n_dense == 2
    assert enc.sizes == [125, 729, 1024, 1024]
    assert enc.embeddings.shape == (2, 125 + 729 + 2048)  # features x rows
    assert enc.out_dim == 8
    # A dense level gives every vertex its own row, inside the level's slice of the table.
    ijk = torch.stack(torch.meshgrid(*[torch.arange(9)] * 3, indexing="ij"), dim=-1).reshape(-1, 1, 3)
    rows = enc.vertex_rows(ijk.expand(-1, 4, 3))[:, 1]
    assert sorted(rows.tolist()) == list(range(125, 125 + 729))
    hashed = enc.vertex_rows(torch.randint(0, 33, (500, 4, 3)))[:, 3]
    assert ((hashed >= 125 + 729 + 1024) & (hashed < 125 + 729 + 2048)).all()


@pytest.mark.parametrize("level", [0, 1, 2, 3])  # dense and hashed
def test_grid_is_exact_at_vertices_and_linear_along_edges(level):
    enc = _random_grid()
    res, f = enc.resolutions[level], SMALL.features
    g = torch.Generator().manual_seed(level)
    ijk = torch.randint(0, res, (50, 3), generator=g)  # vertices with a neighbour at +1 on every axis
    rows = enc.vertex_rows(ijk[:, None, :].expand(-1, 4, 3))[:, level]
    cols = slice(level * f, (level + 1) * f)
    at_vertex = enc(_vertex_point(ijk, res))[:, cols]
    torch.testing.assert_close(at_vertex, enc.embeddings[:, rows].T.detach(), atol=1e-5, rtol=0)
    for axis in range(3):
        step = torch.zeros(3, dtype=torch.long)
        step[axis] = 1
        end = enc(_vertex_point(ijk + step, res))[:, cols]
        for s in (0.25, 0.5, 0.8):
            mid = enc(_vertex_point(ijk, res) + s * 2.0 / res * step.float())[:, cols]
            torch.testing.assert_close(mid, (1 - s) * at_vertex + s * end, atol=1e-5, rtol=0)


def test_grid_gradient_touches_only_the_corners():
    enc = _random_grid()
    enc(torch.tensor([[0.1234, -0.4321, 0.777]])).sum().backward()
    touched = (enc.embeddings.grad.abs().sum(0) > 0).sum()
    assert 0 < touched <= 8 * SMALL.levels


def test_grid_clamps_points_outside_the_bound():
    enc = _random_grid(attrs.evolve(SMALL, bound=0.5))
    x = torch.tensor([[0.9, -3.0, 0.2]])
    torch.testing.assert_close(enc(x), enc(torch.tensor([[0.5, -0.5, 0.2]])))


@pytest.mark.parametrize("combine", ["concat", "sum"])
def test_triplane_is_exact_at_vertices(combine):
    torch.manual_seed(0)
    config = TriPlaneConfig(levels=2, features=3, base_resolution=4, finest_resolution=8, combine=combine)
    enc = TriPlaneEncoding(config)
    with torch.no_grad():
        for grid in enc.planes.grids:
            grid.normal_()
    assert enc.out_dim == (18 if combine == "concat" else 6)
    level, res = 1, 8
    ijk = torch.tensor([[1, 6, 3], [8, 0, 5]])
    out = enc(_vertex_point(ijk, res))
    grid = enc.planes.grids[level].detach()  # (plane, feature, row = second axis, col = first axis)
    for n, (i, j, k) in enumerate(ijk.tolist()):
        planes = [grid[0, :, j, i], grid[1, :, k, i], grid[2, :, k, j]]  # xy, xz, yz
        if combine == "concat":
            got = out[n].reshape(3, 2, 3)[:, level]
            torch.testing.assert_close(got, torch.stack(planes), atol=1e-5, rtol=0)
        else:
            torch.testing.assert_close(out[n].reshape(2, 3)[level], sum(planes), atol=1e-5, rtol=0)


def test_grid2d_is_linear_along_an_edge():
    torch.manual_seed(0)
    enc = Grid2DEncoding(Grid2DConfig(levels=1, features=2, base_resolution=10, finest_resolution=10))
    with torch.no_grad():
        enc.planes.grids[0].normal_()
    a, b = torch.tensor([[-0.4, 0.2]]), torch.tensor([[-0.2, 0.2]])  # neighbouring vertices
    for s in (0.0, 0.3, 1.0):
        torch.testing.assert_close(enc(a + s * (b - a)), (1 - s) * enc(a) + s * enc(b), atol=1e-5, rtol=0)


def _fit(encoding: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    mlp = MLP(encoding.out_dim, 1, MLPConfig(hidden=32, layers=2))
    opt = torch.optim.Adam([*encoding.parameters(), *mlp.parameters()], lr=1e-2)
    losses = []
    for _ in range(steps):
        loss = (mlp(encoding(x))[:, 0] - y).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses[0], sum(losses[-10:]) / 10


def test_grid2d_fits_an_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2048, 2, generator=g) * 2 - 1
    y = torch.sin(4 * x[:, 0]) * torch.cos(3 * x[:, 1]) + (x.norm(dim=-1) < 0.5).float()
    enc = Grid2DEncoding(Grid2DConfig(levels=4, features=2, base_resolution=8, finest_resolution=64))
    first, last = _fit(enc, x, y, 200)
    assert last < first / 100


@pytest.mark.parametrize(
    "encoding",
    [
        lambda: GridEncoding(GridConfig(levels=6, base_resolution=4, finest_resolution=64, log2_hashmap_size=12)),
        lambda: TriPlaneEncoding(TriPlaneConfig(levels=3, base_resolution=16, finest_resolution=64)),
    ],
    ids=["grid3d", "triplane"],
)
def test_space_encodings_fit_a_3d_function(encoding):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2048, 3, generator=g) * 2 - 1
    y = torch.sin(3 * x[:, 0]) * torch.cos(2 * x[:, 1]) + x[:, 2] ** 2
    first, last = _fit(encoding(), x, y, 200)
    assert last < first / 100


def test_backend_seam_falls_back_to_torch_and_says_why():
    enc, backend, reason = make_grid_encoding(SMALL, "cpu")
    assert isinstance(enc, GridEncoding) and backend == "torch" and "CUDA" in reason
    enc, backend, reason = make_grid_encoding(SMALL, "cpu", backend="torch")
    assert backend == "torch" and "requested" in reason
    enc, backend, _ = make_grid_encoding(TriPlaneConfig(levels=2), "cpu")
    assert isinstance(enc, TriPlaneEncoding) and backend == "torch"
    with pytest.raises(ValueError, match="CUDA"):
        make_grid_encoding(SMALL, "cpu", backend="tcnn")
    with pytest.raises(ValueError, match="backend"):
        make_grid_encoding(SMALL, "cpu", backend="jax")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_encodings_match_on_cuda():
    x = torch.rand(1000, 3) * 2 - 1
    for enc in (_random_grid(), TriPlaneEncoding(TriPlaneConfig(levels=2, base_resolution=8, finest_resolution=16))):
        ref = enc(x)
        torch.testing.assert_close(enc.cuda()(x.cuda()).cpu(), ref, atol=1e-5, rtol=1e-5)
