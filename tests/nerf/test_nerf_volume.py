"""geneface.nerf.volume: volume rendering (padded and packed) and compositing."""

from __future__ import annotations

import torch

from geneface.nerf.samplers import stratified
from geneface.nerf.volume import composite, render_packed, render_padded

COLOUR = torch.tensor([0.2, 0.4, 0.6])


def _slab(sigma_inside: float, n: int = 200):
    """One ray over [0, 4] through a slab [1, 1.5] of constant density and colour."""
    t, edges = stratified(torch.zeros(1), torch.full((1,), 4.0), n)
    inside = (t >= 1.0) & (t < 1.5)
    sigma = torch.where(inside, torch.tensor(sigma_inside), torch.tensor(0.0))
    rgb = torch.where(inside[..., None], COLOUR, torch.tensor([1.0, 0.0, 0.0]))  # red outside, unseen
    return sigma, rgb, edges[:, 1:] - edges[:, :-1], t


def test_opaque_slab_gives_its_colour():
    out = render_padded(*_slab(1000.0))
    torch.testing.assert_close(out.rgb[0], COLOUR, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.opacity, torch.ones(1), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.depth / out.opacity, torch.tensor([1.0]), atol=0.02, rtol=0)  # its front


def test_empty_space_renders_nothing():
    out = render_padded(*_slab(0.0))
    assert out.opacity.item() == 0 and out.rgb.abs().sum() == 0 and out.weights.sum() == 0


def test_thin_medium_opacity_is_exact_for_any_sampling():
    for n in (40, 200):  # the slab covers whole bins, so the integral is exact
        out = render_padded(*_slab(2.0, n))
        torch.testing.assert_close(out.opacity, torch.tensor([1 - torch.exp(torch.tensor(-1.0)).item()]))


def test_packed_equals_padded_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    n_rays, s = 5, 7
    sigma = (torch.rand(n_rays, s, generator=g) * 5).requires_grad_()
    rgb = torch.rand(n_rays, s, 3, generator=g).requires_grad_()
    deltas = torch.rand(n_rays, s, generator=g) * 0.3
    t = torch.cumsum(deltas, dim=1)
    keep = torch.rand(n_rays, s, generator=g) > 0.4
    keep[3] = False  # a ray with no samples
    padded = render_padded(sigma * keep, rgb, deltas, t)  # dropped samples: zero density
    ray, j = torch.nonzero(keep, as_tuple=True)
    packed = render_packed(sigma[ray, j], rgb[ray, j], deltas[ray, j], t[ray, j], ray, n_rays)
    for name in ("rgb", "opacity", "depth"):
        torch.testing.assert_close(getattr(packed, name), getattr(padded, name))
    torch.testing.assert_close(packed.weights, padded.weights[ray, j])
    assert packed.opacity[3] == 0
    grads = torch.autograd.grad(padded.rgb.sum() + padded.opacity.sum(), (sigma, rgb))
    packed_grads = torch.autograd.grad(packed.rgb.sum() + packed.opacity.sum(), (sigma, rgb))
    for a, b in zip(grads, packed_grads):
        torch.testing.assert_close(a * keep.reshape(*keep.shape, *[1] * (a.dim() - 2)), b)


def test_compositing_order():
    red, green, blue = torch.eye(3)
    n = 4
    head_alpha = torch.tensor([1.0, 0.0, 0.0, 0.5])
    torso_alpha = torch.tensor([1.0, 1.0, 0.0, 0.5])
    head = (red * head_alpha[:, None], head_alpha)  # premultiplied, as volume rendering gives
    torso = (green * torso_alpha[:, None], torso_alpha)
    out = composite([head, torso], blue.expand(n, 3))
    torch.testing.assert_close(out[0], red)  # opaque head hides everything
    torch.testing.assert_close(out[1], green)  # no head: the torso
    torch.testing.assert_close(out[2], blue)  # nothing: the plate
    torch.testing.assert_close(out[3], torch.tensor([0.5, 0.25, 0.25]))  # half over half over plate
    # Order matters: torso over head is a different picture.
    assert not torch.allclose(composite([torso, head], blue.expand(n, 3)), out)
