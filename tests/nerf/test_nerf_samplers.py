"""geneface.nerf.samplers: stratified and importance samples, intervals."""

from __future__ import annotations

import torch

from geneface.nerf.samplers import importance, intervals, merge, stratified


def test_stratified_eval_is_deterministic_bin_middles():
    near, far = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 2.5])
    t, edges = stratified(near, far, 4)
    torch.testing.assert_close(edges[0], torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0]))
    torch.testing.assert_close(t[0], torch.tensor([1.25, 1.75, 2.25, 2.75]))
    torch.testing.assert_close(t, stratified(near, far, 4)[0])
    torch.testing.assert_close((edges[:, 1:] - edges[:, :-1]).sum(-1), far - near)


def test_stratified_training_jitters_inside_bins():
    near, far = torch.zeros(100), torch.ones(100)
    t1, edges = stratified(near, far, 8, perturb=True, generator=torch.Generator().manual_seed(0))
    t2, _ = stratified(near, far, 8, perturb=True, generator=torch.Generator().manual_seed(0))
    t3, _ = stratified(near, far, 8, perturb=True, generator=torch.Generator().manual_seed(1))
    assert ((t1 >= edges[:, :-1]) & (t1 < edges[:, 1:])).all()
    torch.testing.assert_close(t1, t2)
    assert not torch.allclose(t1, t3)
    assert t1.std() > 0.25  # spread over the ray, not stuck at the middles


def test_importance_concentrates_where_weights_are_high():
    near, far = torch.zeros(3), torch.full((3,), 4.0)
    _, edges = stratified(near, far, 16)
    weights = torch.zeros(3, 16)
    weights[0, 5] = 1.0  # all the mass in [1.25, 1.5)
    weights[1, 2], weights[1, 12] = 0.5, 0.5  # two surfaces
    for perturb in (False, True):
        t = importance(edges, weights, 64, perturb=perturb, generator=torch.Generator().manual_seed(0))
        assert (t[:, 1:] >= t[:, :-1]).all() and (t >= 0).all() and (t <= 4).all()
        assert ((t[0] >= 1.25) & (t[0] < 1.5)).float().mean() > 0.95
        in_two = ((t[1] >= 0.5) & (t[1] < 0.75)) | ((t[1] >= 3.0) & (t[1] < 3.25))
        assert in_two.float().mean() > 0.95
        # All-zero weights: evenly over the ray.
        torch.testing.assert_close(t[2].mean(), torch.tensor(2.0), atol=0.1, rtol=0)


def test_merge_and_intervals_tile_the_ray():
    near, far = torch.tensor([0.0]), torch.tensor([2.0])
    t = merge(torch.tensor([[0.5, 1.5]]), torch.tensor([[0.2, 1.0, 1.9]]))
    torch.testing.assert_close(t, torch.tensor([[0.2, 0.5, 1.0, 1.5, 1.9]]))
    d = intervals(t, near, far)
    torch.testing.assert_close(d, torch.tensor([[0.35, 0.4, 0.5, 0.45, 0.3]]))
    torch.testing.assert_close(d.sum(-1), far - near)
