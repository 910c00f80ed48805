"""geneface.nerf.mlp: layer layout, skip connections, activations."""

from __future__ import annotations

import pytest
import torch

from geneface.nerf.mlp import MLP, MLPConfig, trunc_exp


def test_vanilla_trunk_layout():
    mlp = MLP(63, 256, MLPConfig(hidden=256, layers=8, skips=(4,), out_activation="relu"))
    widths = [(lin.in_features, lin.out_features) for lin in mlp.linears]
    assert widths == [(63, 256)] + [(256, 256)] * 4 + [(256 + 63, 256)] + [(256, 256)] * 2
    assert mlp(torch.randn(5, 2, 63)).shape == (5, 2, 256)


def test_skip_carries_the_input_past_dead_layers():
    torch.manual_seed(0)
    mlp = MLP(3, 1, MLPConfig(hidden=16, layers=4, skips=(1,)))
    with torch.no_grad():  # layers 0 and 1 output nothing: only the skip can carry x on
        for lin in mlp.linears[:2]:
            lin.weight.zero_()
            lin.bias.zero_()
    a, b = mlp(torch.tensor([[0.1, 0.2, 0.3]])), mlp(torch.tensor([[-0.5, 0.9, 0.0]]))
    assert not torch.allclose(a, b)
    plain = MLP(3, 1, MLPConfig(hidden=16, layers=4))
    with torch.no_grad():
        for lin in plain.linears[:2]:
            lin.weight.zero_()
            lin.bias.zero_()
    torch.testing.assert_close(plain(torch.tensor([[0.1, 0.2, 0.3]])), plain(torch.tensor([[-0.5, 0.9, 0.0]])))


def test_output_activation_and_single_layer():
    mlp = MLP(4, 3, MLPConfig(layers=1, out_activation="sigmoid"))
    y = mlp(100 * torch.randn(50, 4))
    assert len(mlp.linears) == 1 and ((y >= 0) & (y <= 1)).all()


def test_trunc_exp_has_a_finite_gradient():
    x = torch.tensor([1.0, 100.0], requires_grad=True)
    y = trunc_exp(x)
    torch.testing.assert_close(y[0], torch.exp(torch.tensor(1.0)))
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad, torch.exp(torch.tensor([1.0, 15.0])))


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="skips"):
        MLPConfig(layers=3, skips=(2,))
    with pytest.raises(ValueError):
        MLPConfig(activation="gelu-ish")
