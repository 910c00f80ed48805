"""The "tcnn" grid lattice and geneface.nerf.tcnn_tables: level sizes, dense and hashed levels,
a per-point reference of tinycudann's HashGrid as documented, the table converter, the
hashgrid_nerf plumbing (backend swap, checkpoints in one layout) and `geneface plugins`.

Nothing here runs tinycudann itself (no GPU on the machines that run the suite): the last
test does, on a CUDA machine where it imports, and skips elsewhere. The plumbing tests stand
in a PyTorch module laid out the way tcnn_tables says tinycudann's is.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import types

import attrs
import numpy as np
import pytest
import torch

from geneface.cli import main
from geneface.core.checkpoint import read_checkpoint, save_checkpoint, stage_checkpoint
from geneface.core.records import Motion
from geneface.errors import CheckpointError, PluginError
from geneface.nerf import encodings
from geneface.nerf.encodings import GridConfig, GridEncoding, TcnnGridEncoding, grid_layout
from geneface.nerf.rays import camera_rays
from geneface.nerf.tcnn_tables import (
    convert_hashgrid_state,
    from_tcnn,
    max_difference_from_tinycudann,
    to_tcnn,
)
from geneface.plugins.hashgrid_nerf import HashGridNeRF
from geneface.registry import get_registry


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    pass


# growth 2 (exact in float32): scales 3, 7, 15, 31 -> resolutions 4, 8, 16, 32.
EXACT = GridConfig(levels=4, features=2, base_resolution=4, finest_resolution=32, log2_hashmap_size=12,
                   lattice="tcnn")
# growth sqrt(2.4): scales 4, 6.75, 11 -> resolutions 5, 8, 12; 5^3 = 125 rows padded to 128;
# level 1's fraction over one half makes its last cells reach vertex 8, one past the grid.
ODD = GridConfig(levels=3, features=3, base_resolution=5, finest_resolution=12, log2_hashmap_size=10,
                 lattice="tcnn", bound=0.5)


def _random_table(enc: GridEncoding, seed: int = 0) -> GridEncoding:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        enc.embeddings.copy_(torch.randn(enc.embeddings.shape, generator=g))
    return enc


def test_tcnn_levels_match_a_hand_computed_config():
    layout = grid_layout(EXACT)
    assert layout.resolutions == (4, 8, 16, 32) and layout.scales == (3.0, 7.0, 15.0, 31.0)
    # min(R^3 rounded up to 8, 4096): 64, 512, 4096 (exactly the table: still dense), 4096 hashed.
    assert layout.sizes == (64, 512, 4096, 4096) and layout.offsets == (0, 64, 576, 4672)
    assert layout.dense == (True, True, True, False)
    assert GridEncoding(EXACT).embeddings.shape == (2, 8768)
    odd = grid_layout(ODD)
    assert odd.resolutions == (5, 8, 12) and odd.sizes == (128, 512, 1024) and odd.offsets == (0, 128, 640)
    assert odd.dense == (True, True, False)
    # The default lattice is untouched: (res + 1)^3 rows while they fit.
    assert grid_layout(attrs.evolve(EXACT, lattice="geneface")).sizes == (125, 729, 4096, 4096)


def test_dense_level_is_a_bijection_and_hashed_level_stays_in_its_block():
    enc = GridEncoding(EXACT)
    r = 8  # level 1, dense: vertex (i, j, k) -> row 64 + i + 8 j + 64 k
    ijk = torch.stack(torch.meshgrid(*[torch.arange(r)] * 3, indexing="ij"), dim=-1).reshape(-1, 1, 3)
    rows = enc.vertex_rows(ijk.expand(-1, 4, 3))[:, 1]
    assert sorted(rows.tolist()) == list(range(64, 64 + 512))
    assert int(enc.vertex_rows(torch.tensor([[[3, 2, 1]] * 4]))[0, 1]) == 64 + 3 + 2 * 8 + 1 * 64
    # One past the grid wraps modulo the level's size, as tinycudann's index does.
    assert int(enc.vertex_rows(torch.tensor([[[8, 7, 7]] * 4]))[0, 1]) == 64 + (8 + 7 * 8 + 7 * 64) % 512
    hashed = enc.vertex_rows(torch.randint(0, 33, (500, 4, 3)))[:, 3]
    assert ((hashed >= 4672) & (hashed < 4672 + 4096)).all()
    i, j, k = 5, 17, 30
    expected = (i * 1 ^ j * 2654435761 ^ k * 805459861) % 4096
    assert int(enc.vertex_rows(torch.tensor([[[i, j, k]] * 4]))[0, 3]) == 4672 + expected


def _reference(config: GridConfig, table: np.ndarray, point) -> list:
    """tinycudann's HashGrid at one point, written out per level and corner (float64)."""
    primes = (1, 2654435761, 805459861)
    growth = (config.finest_resolution / config.base_resolution) ** (1 / (config.levels - 1))
    u = [min(max((c / config.bound + 1) / 2, 0.0), 1.0) for c in point]
    out, offset = [], 0
    for level in range(config.levels):
        scale = config.base_resolution * growth**level - 1
        res = math.ceil(scale) + 1
        size = min((res**3 + 7) // 8 * 8, 2**config.log2_hashmap_size)
        pos = [x * scale + 0.5 for x in u]
        low = [math.floor(p) for p in pos]
        frac = [p - f for p, f in zip(pos, low)]
        acc = [0.0] * config.features
        for corner in itertools.product((0, 1), repeat=3):
            v = [low[d] + corner[d] for d in range(3)]
            weight = math.prod(frac[d] if corner[d] else 1 - frac[d] for d in range(3))
            if res**3 <= size:
                index = v[0] + v[1] * res + v[2] * res * res
            else:
                index = (v[0] * primes[0] ^ v[1] * primes[1] ^ v[2] * primes[2]) & 0xFFFFFFFF
            for f in range(config.features):
                acc[f] += weight * table[f, offset + index % size]
        out += acc
        offset += size
    return out


@pytest.mark.parametrize("config", [EXACT, ODD], ids=["exact", "odd"])
def test_grid_encoding_computes_the_reference_lattice(config):
    enc = _random_table(GridEncoding(config))
    g = torch.Generator().manual_seed(1)
    b = config.bound
    points = torch.cat([torch.rand(40, 3, generator=g) * 2 * b - b,
                        torch.tensor([[b, b, b], [-b, -b, -b], [b, -b, 0.3 * b], [2 * b, 0.1, -3 * b]])])
    table = enc.embeddings.detach().double().numpy()
    expected = torch.tensor([_reference(config, table, p) for p in points.double().tolist()], dtype=torch.float32)
    torch.testing.assert_close(enc(points).detach(), expected, atol=2e-5, rtol=0)


def test_converter_round_trips_exactly_and_lays_entries_out_entry_major():
    enc = _random_table(GridEncoding(ODD))
    flat = to_tcnn(enc.embeddings, ODD)
    assert flat.shape == (ODD.features * 1664,)
    entry, feature = 128 + 77, 2  # level 1, entry 77
    assert flat[entry * ODD.features + feature] == enc.embeddings[feature, entry]
    assert torch.equal(from_tcnn(flat, ODD), enc.embeddings.detach())


def _one_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def test_wrong_size_vector_is_refused_in_one_line():
    with pytest.raises(ValueError) as excinfo:
        from_tcnn(torch.zeros(100), ODD, "head.space.encoding.params")
    text = _one_line(excinfo)
    assert "head.space.encoding.params" in text and "4992 values" in text and "(100,)" in text
    with pytest.raises(ValueError, match="embeddings: expected shape 3 x 1664"):
        to_tcnn(torch.zeros(3, 10), ODD)


# -- hashgrid_nerf -------------------------------------------------------------------------

SIZE = 24


def _stage(lattice: str = "tcnn") -> HashGridNeRF:
    """A tiny untrained hashgrid_nerf with a 3-D grid: a camera on the -z axis looking at the
    head's box (as benchmarks/bench_render.py's synthetic models), every occupancy cell on."""
    grid = attrs.evolve(EXACT, lattice=lattice)
    c = HashGridNeRF.Config(size=SIZE, n_poses=1, n_latents=1)
    c = attrs.evolve(c, head=attrs.evolve(c.head, space="grid", grid=grid),
                     occupancy=attrs.evolve(c.occupancy, resolution=16))
    stage = HashGridNeRF(c)
    net, d, half = stage.net, 1.5, 0.15
    with torch.no_grad():
        net.c2w[0, 2, 3] = -d
        net.intrinsics.copy_(torch.tensor([0.48 * SIZE * d / (2 * half), SIZE / 2, SIZE / 2]))
        net.occupancy.lo.fill_(-half)
        net.occupancy.hi.fill_(half)
        net.occupancy.occupied.fill_(True)
    return stage


def _train(stage: HashGridNeRF, steps: int = 4) -> list:
    """A few Adam steps of the head's photometric loss towards a flat colour: (losses)."""
    net = stage.net
    net.train()
    camera = net.camera(net.c2w.numpy())
    pixels = torch.stack(torch.meshgrid(torch.arange(6, 18), torch.arange(6, 18), indexing="xy"), -1).reshape(-1, 2)
    rays = camera_rays(camera, 0, pixels)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        cond = net.condition(net.condition.mean[None]).expand(len(rays), -1)
        rendered, _ = net.render_head(rays, cond, net.latents.weight[[0] * len(rays)])
        loss = (rendered.rgb - torch.tensor([0.9, 0.2, 0.1])).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net.eval()
    return losses


def _render(stage: HashGridNeRF, n: int = 2) -> list:
    mean = stage.net.condition.mean.numpy()
    return list(stage.render(Motion(np.repeat(mean[None], n, 0))))


def test_hashgrid_nerf_with_the_tcnn_lattice_trains_and_renders_on_cpu(tmp_path):
    stage = _stage()
    stage.to_device("cpu")  # what training does first: the backend for the device
    assert stage.net.head.backend == "torch" and "CUDA" in stage.net.head.backend_reason
    before = stage.net.head.space.embeddings.detach().clone()
    losses = _train(stage)
    assert losses[-1] < losses[0] and not torch.equal(stage.net.head.space.embeddings, before)
    frames = _render(stage)
    assert len(frames) == 2 and frames[0].shape == (SIZE, SIZE, 3) and frames[0].dtype == np.uint8
    save_checkpoint(tmp_path / "m.safetensors", stage_checkpoint(stage))
    again = get_registry().load(tmp_path / "m.safetensors", "renderer", "test")
    assert again.config.head.grid.lattice == "tcnn"
    assert all(np.array_equal(a, b) for a, b in zip(frames, _render(again)))


class _FakeHashGrid(torch.nn.Module):
    """A stand-in for `tinycudann.Encoding` (HashGrid) in PyTorch: one flat parameter vector,
    laid out as geneface.nerf.tcnn_tables says tinycudann's is, read on the "tcnn" lattice."""

    def __init__(self, n_input_dims: int, config: dict):
        super().__init__()
        assert n_input_dims == 3 and config["otype"] == "HashGrid" and config["n_levels"] == EXACT.levels
        assert config["per_level_scale"] == pytest.approx(EXACT.growth) and config["hash"] == "CoherentPrime"
        self.params = torch.nn.Parameter(torch.empty(grid_layout(EXACT).rows * EXACT.features).uniform_(-1e-4, 1e-4))
        self.lookup = [GridEncoding(EXACT)]  # the lattice's indexing; a list: no state of its own

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # u in [0, 1]
        table = self.params.reshape(-1, EXACT.features).T  # entry-major -> features x entries
        return torch.func.functional_call(self.lookup[0], {"embeddings": table}, (u * 2 - 1,))


def _pretend_tinycudann_runs(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tinycudann", types.SimpleNamespace(Encoding=_FakeHashGrid))
    monkeypatch.setattr(encodings, "tcnn_problem", lambda device: None)


def test_the_stage_moves_its_table_between_backends_and_saves_one_layout(monkeypatch, tmp_path):
    stage = _stage()
    _random_table(stage.net.head.space)
    x = torch.rand(64, 3) * 2 - 1
    reference = stage.net.head.space(x).detach()
    table = stage.state_dict()["head.space.embeddings"].clone()
    _pretend_tinycudann_runs(monkeypatch)
    stage.to_device("cpu")  # "CUDA with tinycudann", as far as the stage can tell
    space = stage.net.head.space
    assert stage.net.head.backend == "tcnn" and isinstance(space, TcnnGridEncoding)
    torch.testing.assert_close(space(x).detach(), reference, atol=1e-6, rtol=0)  # the same table
    assert "head.space.encoding.params" in stage.net.state_dict()
    assert torch.equal(stage.state_dict()["head.space.embeddings"], table)  # checkpoints: PyTorch layout
    # Trained on "tinycudann", rendered by PyTorch: the same frames.
    params = space.encoding.params.detach().clone()
    _train(stage, steps=2)
    assert not torch.equal(space.encoding.params, params)  # the optimiser reached the fused table
    fused_frames = _render(stage)
    save_checkpoint(tmp_path / "m.safetensors", stage_checkpoint(stage))
    ckpt = read_checkpoint(tmp_path / "m.safetensors")
    plain = HashGridNeRF(attrs.evolve(stage.config, head=attrs.evolve(stage.config.head, backend="torch")))
    plain.load_checkpoint(ckpt)
    assert plain.net.head.backend == "torch"
    assert all(np.array_equal(a, b) for a, b in zip(fused_frames, _render(plain)))
    # A state dict in tinycudann's layout loads into the PyTorch backend, and the other way.
    plain.load_state_dict(convert_hashgrid_state(ckpt.state, stage.config, "tcnn"))
    assert torch.equal(plain.net.head.space.embeddings, ckpt.state["head.space.embeddings"])
    stage.load_state_dict(ckpt.state)
    assert torch.equal(stage.net.head.space.encoding.params.detach(),
                       to_tcnn(ckpt.state["head.space.embeddings"], EXACT))


def test_geneface_lattice_checkpoint_and_wrong_size_table_are_refused_in_one_line(tmp_path):
    stage = _stage(lattice="geneface")
    with pytest.raises(ValueError) as excinfo:
        convert_hashgrid_state(stage.state_dict(), stage.config, "tcnn")
    text = _one_line(excinfo)
    assert "head.space.embeddings" in text and "'geneface'" in text and "lattices differ" in text
    # A checkpoint whose tinycudann table has the wrong size: refused by the loader in one line.
    good = _stage()
    state = good.state_dict()
    state.pop("head.space.embeddings")
    state["head.space.encoding.params"] = torch.zeros(10)
    save_checkpoint(tmp_path / "bad.safetensors", attrs.evolve(stage_checkpoint(good), state=state))
    with pytest.raises(CheckpointError) as excinfo:
        get_registry().load(tmp_path / "bad.safetensors", "renderer", "test")
    text = _one_line(excinfo)
    assert "head.space.encoding.params" in text and "17536 values" in text


def test_tcnn_backend_needs_the_tcnn_lattice(monkeypatch):
    _pretend_tinycudann_runs(monkeypatch)
    default = GridConfig()
    with pytest.raises(ValueError, match="cannot use the tcnn backend: grid.lattice is 'geneface'"):
        encodings.grid_backend(default, "cuda", "tcnn")
    assert encodings.grid_backend(default, "cuda")[0] == "torch"
    with pytest.raises(ValueError, match="grid.lattice must be 'tcnn'"):
        TcnnGridEncoding(default)
    # On a CPU, asking a stage for tinycudann is refused when it renders, in one line.
    monkeypatch.undo()
    stage = _stage()
    stage.config = attrs.evolve(stage.config, head=attrs.evolve(stage.config.head, backend="tcnn"))
    with pytest.raises(PluginError) as excinfo:
        _render(stage, 1)
    assert "head.backend" in _one_line(excinfo) and "CUDA" in str(excinfo.value)


def test_plugins_names_the_backend(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # the table's cells unwrapped
    assert main(["plugins", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["plugins"]}
    compute = rows["hashgrid_nerf"]["compute"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert f"device {device}" in compute and "triplane (default): PyTorch grid_sample" in compute
    assert "grid: tinycudann" in compute or "grid: PyTorch" in compute
    assert rows["mel"]["compute"] is None
    assert main(["plugins"]) == 0
    assert "compute: device" in capsys.readouterr().out


def _tinycudann_runs() -> bool:
    return torch.cuda.is_available() and encodings.tcnn_problem("cuda") is None


@pytest.mark.skipif(not _tinycudann_runs(), reason="needs CUDA and tinycudann")
@pytest.mark.parametrize("config", [EXACT, ODD, attrs.evolve(GridConfig(), lattice="tcnn")],
                         ids=["exact", "odd", "default"])
def test_the_converter_matches_a_real_tinycudann(config):
    # Half-precision features in tinycudann: agreement to a few thousandths of values in [-1, 1].
    assert max_difference_from_tinycudann(config) < 5e-3
