"""geneface.nerf.losses: photometric, PSNR, entropy, ambient regulariser, lip patches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geneface.metrics.image import PSNR_MAX
from geneface.metrics.image import psnr as image_psnr
from geneface.nerf.losses import ambient_regulariser, as_patch, opacity_entropy, patch_pixels, photometric, psnr


def test_photometric_weights_favour_the_mouth():
    pred = torch.zeros(4, 3)
    target = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert photometric(pred, target).item() == pytest.approx(0.25)
    mouth = torch.tensor([3.0, 1.0, 1.0, 1.0])  # the wrong pixel is a mouth pixel
    assert photometric(pred, target, mouth).item() == pytest.approx(0.5)
    assert photometric(pred, target, torch.ones(4)).item() == pytest.approx(0.25)


def test_psnr():
    target = torch.zeros(10, 3)
    assert psnr(target + 0.1, target).item() == pytest.approx(20.0, abs=1e-4)
    assert psnr(target + 0.01, target).item() == pytest.approx(40.0, abs=1e-3)
    # identical colours score the cap of geneface.metrics.image, the one PSNR definition
    assert psnr(target, target).item() == pytest.approx(PSNR_MAX, abs=1e-4)
    rng = np.random.default_rng(0)
    a, b = rng.random((16, 16, 3)), rng.random((16, 16, 3))
    assert psnr(torch.from_numpy(a), torch.from_numpy(b)).item() == pytest.approx(image_psnr(a, b), abs=1e-9)


def test_entropy_pushes_opacity_to_zero_or_one():
    assert opacity_entropy(torch.tensor([0.0, 1.0])).item() < 1e-4
    assert opacity_entropy(torch.tensor([0.5])).item() == pytest.approx(math.log(2))
    a = torch.tensor([0.3, 0.8], requires_grad=True)
    opacity_entropy(a).backward()
    assert a.grad[0] > 0 > a.grad[1]  # descent (minus the gradient) moves 0.3 down and 0.8 up


def test_ambient_regulariser():
    c = torch.tensor([[0.5, -1.0], [0.0, 0.5]])
    assert ambient_regulariser(c).item() == pytest.approx(0.5)
    assert ambient_regulariser(c, "l2").item() == pytest.approx(0.375)
    with pytest.raises(ValueError):
        ambient_regulariser(c, "l3")


def test_patch_pixels_stay_inside_and_reassemble():
    p = patch_pixels((30.0, 20.0), 8, 64, 48)
    assert p.shape == (64, 2) and p[0].tolist() == [26, 16] and p[-1].tolist() == [33, 23]
    edge = patch_pixels((62.0, 1.0), 8, 64, 48)  # at the image's corner: shifted inside
    assert edge[:, 0].max() == 63 and edge[:, 1].min() == 0
    jittered = patch_pixels((30.0, 20.0), 8, 64, 48, jitter=3, generator=torch.Generator().manual_seed(1))
    assert (jittered - p).abs().max() <= 3
    image = torch.arange(48 * 64 * 3, dtype=torch.float32).reshape(48, 64, 3)
    values = image[p[:, 1], p[:, 0]]  # what a renderer gives for those pixels, in order
    torch.testing.assert_close(as_patch(values, 8), image[16:24, 26:34].permute(2, 0, 1)[None])
