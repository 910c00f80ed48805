"""LPIPS (Zhang et al. 2018, v0.1, AlexNet), in plain torch, from weights the user gives.

Nothing is ever downloaded: `load_lpips(path, ...)` reads only the local files named. The
files (safetensors, or a torch state dict read with `weights_only=True`, never unpickled
as code) must hold together, under exactly these keys:

    features.0.weight  (64, 3, 11, 11)   features.0.bias  (64,)     torchvision alexnet
    features.3.weight  (192, 64, 5, 5)   features.3.bias  (192,)    `features` layout
    features.6.weight  (384, 192, 3, 3)  features.6.bias  (384,)    (alexnet-owt-7be5be79.pth)
    features.8.weight  (256, 384, 3, 3)  features.8.bias  (256,)
    features.10.weight (256, 256, 3, 3)  features.10.bias (256,)
    lin0.model.1.weight (1, 64, 1, 1) ... lin4.model.1.weight (1, 256, 1, 1)
                                          the lpips package's weights/v0.1/alex.pth

The lpips package's own full state dict (`net.sliceK.N.*` keys) is accepted too: its
`net.sliceK.N.` is read as `features.N.`.

Both published files can be passed as they are (`load_lpips(alexnet_pth, alex_pth)`; keys
are merged, others such as `classifier.*` ignored), or merged once into one safetensors:

    alex = torch.load("alexnet-owt-7be5be79.pth", weights_only=True)
    lin = torch.load("alex.pth", weights_only=True)
    safetensors.torch.save_file({**{k: v for k, v in alex.items() if k.startswith("features.")}, **lin},
                                "lpips_alex.safetensors")

Inputs follow `geneface.metrics.image`: RGB uint8 or float [0, 1], H x W x 3, the same shape,
at least 32 px a side. Lower is more similar; identical images score 0.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from geneface.errors import CheckpointError, UsageError
from geneface.metrics.image import as_unit_float

# (out, in, kernel, stride, padding) of torchvision's alexnet `features` convolutions; the
# index is the layer's position in that Sequential, which names the keys above.
_CONVS = {0: (64, 3, 11, 4, 2), 3: (192, 64, 5, 1, 2), 6: (384, 192, 3, 1, 1), 8: (256, 384, 3, 1, 1), 10: (256, 256, 3, 1, 1)}
_POOL_AFTER = {0, 3}  # max-pool 3 / 2 after relu1 and relu2 (the one after relu5 is unused)
# LPIPS's ScalingLayer: maps [-1, 1] input to roughly ImageNet-normalised statistics.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
MIN_SIDE = 32  # smaller inputs vanish in AlexNet's stride-4 conv and two pools


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every key the weight files must provide, with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (out, inp, k, _, _) in _CONVS.items():
        shapes[f"features.{i}.weight"] = (out, inp, k, k)
        shapes[f"features.{i}.bias"] = (out,)
    for j, (out, *_rest) in enumerate(_CONVS.values()):
        shapes[f"lin{j}.model.1.weight"] = (1, out, 1, 1)
    return shapes


class LPIPS(nn.Module):
    """AlexNet features at relu1..relu5, unit-normalised over channels, squared differences
    weighted by the learned 1 x 1 layers, averaged over space, summed over layers."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(inp, out, k, stride, pad) for out, inp, k, stride, pad in _CONVS.values())
        self.lins = nn.ModuleList(nn.Conv2d(out, 1, 1, bias=False) for out, *_ in _CONVS.values())
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Copy the documented keys in (shapes already checked by `load_lpips`)."""
        with torch.no_grad():
            for conv, i in zip(self.convs, _CONVS):
                conv.weight.copy_(state[f"features.{i}.weight"])
                conv.bias.copy_(state[f"features.{i}.bias"])
            for j, lin in enumerate(self.lins):
                lin.weight.copy_(state[f"lin{j}.model.1.weight"])

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        taps = []
        for conv, i in zip(self.convs, _CONVS):
            x = F.relu(conv(x))
            taps.append(x)
            if i in _POOL_AFTER:
                x = F.max_pool2d(x, 3, 2)
        return taps

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(N,) distances of two N x 3 x H x W batches in [-1, 1]."""
        total = a.new_zeros(a.shape[0])
        for lin, fa, fb in zip(self.lins, self._features(a), self._features(b)):
            # The lpips package's normalize_tensor: eps added to the norm, not under the root.
            na = fa / (fa.square().sum(1, keepdim=True).sqrt() + 1e-10)
            nb = fb / (fb.square().sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((na - nb).square()).mean(dim=(1, 2, 3))
        return total

    def _to_tensor(self, image: np.ndarray, name: str) -> torch.Tensor:
        unit = as_unit_float(image, name)
        if unit.ndim != 3 or unit.shape[2] != 3:
            raise UsageError(f"{name}: LPIPS needs an H x W x 3 RGB image, got shape {unit.shape}")
        if min(unit.shape[:2]) < MIN_SIDE:
            raise UsageError(
                f"{name}: {unit.shape[1]} x {unit.shape[0]} px is too small for LPIPS (at least {MIN_SIDE} px a side)"
            )
        t = torch.from_numpy(unit).permute(2, 0, 1)[None].to(self.shift.device, torch.float32)
        return t * 2.0 - 1.0

    @torch.no_grad()
    def score(self, rendered: np.ndarray, real: np.ndarray) -> float:
        """LPIPS of one pair of images (module conventions); 0.0 for identical images."""
        a, b = self._to_tensor(rendered, "rendered image"), self._to_tensor(real, "real image")
        if a.shape != b.shape:
            raise UsageError(f"images differ in shape: rendered {tuple(a.shape[2:])}, real {tuple(b.shape[2:])}")
        return float(self(a, b)[0])


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not an LPIPS weight file")
    if not path.is_file():
        raise UsageError(f"{path}: no such LPIPS weight file (weights are never downloaded; give a local file)")
    with open(path, "rb") as handle:
        head = handle.read(9)
    try:
        if head[8:9] == b"{":  # safetensors: 8-byte header length, then its JSON header
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            # weights_only: tensors and plain containers only, never arbitrary pickled code.
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors, pickle and zip errors all mean "not a weight file"
        reason = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{path}: not a readable safetensors or torch state dict file ({reason})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds no state dict of tensors")
    # lpips.LPIPS().state_dict() keeps alexnet's layers as net.slice1.0 ... net.slice5.10.
    return {re.sub(r"^net\.slice\d+\.(\d+)\.", r"features.\1.", k): v for k, v in state.items()}


def load_lpips(*paths: Union[str, Path], device: Union[str, torch.device] = "cpu") -> LPIPS:
    """An LPIPS judge from one or more local weight files (see the module doc for keys)."""
    if not paths:
        raise UsageError("LPIPS needs a local weight file (AlexNet features + lpips linear layers); none given")
    paths = tuple(Path(p) for p in paths)
    where = ", ".join(str(p) for p in paths)
    state: dict[str, torch.Tensor] = {}
    for path in paths:
        state.update(_read_state(path))
    expected = expected_shapes()
    missing = [k for k in expected if k not in state]
    if missing:
        raise CheckpointError(
            f"{where}: not LPIPS AlexNet weights: missing {len(missing)} of {len(expected)} keys "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); see geneface.metrics.lpips for the key names"
        )
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise CheckpointError(f"{where}: {key} has shape {tuple(state[key].shape)}, expected {shape}")
        if not torch.isfinite(state[key]).all():
            raise CheckpointError(f"{where}: {key} holds NaN or infinite values")
    model = LPIPS()
    model.load_weights({k: state[k].float() for k in expected})
    return model.to(device)
