"""GeneFace's original renderer (AD-NeRF style, "vanilla"): a landmark-conditioned head NeRF
over a head-aware torso NeRF over the video's static plate, as one module.

    landmarks of a window of W frames (W x 68 x 3) --normalise, 204 numbers each-->
      MLP encoder --> W codes (64-d) --attention (1-D convs along the window, softmax)--> one code c
    xyz in the head's box --frequency encoding (10)--> (enc(x), c) --8 x 256 MLP, skip at 4--> h
      sigma = softplus(linear(h));  (linear(h), enc(view direction, 4), c) --128--> rgb (sigmoid)
    coarse: 64 stratified samples between near and far (coarse network);
    fine: 128 more drawn from the coarse weights, all 192 through the fine network

The torso is a second, smaller NeRF in the frustum of a fixed camera (AD-NeRF renders the
torso with the camera held still: the body does not turn with the head), conditioned on the
head's pose (the camera-to-world's first two rotation columns and position, normalised and
frequency-encoded), so the neck follows the head. Head over torso over the plate
(geneface.nerf.volume.composite).

Everything is dense MLP evaluation at every sample: no occupancy grid, no hash grid; its
cost is the point of comparison with `hashgrid_nerf` (geneface.nerf.talking_head).

The state dict is the renderer's checkpoint: weights plus the plate, the camera (focal,
principal point, the training video's poses), where head and person can appear, the
landmark and pose statistics, the head's box and the torso's depth range.
"""

from __future__ import annotations

from typing import Optional

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from geneface.core.records import N_LANDMARKS, Camera
from geneface.nerf.encodings import FrequencyEncoding
from geneface.nerf.fields.torso import POSE_DIM
from geneface.nerf.mlp import MLP, MLPConfig
from geneface.nerf.rays import Rays, camera_rays, intersect_box
from geneface.nerf.samplers import importance, intervals, merge, stratified
from geneface.nerf.talking_head import frame_canvas, pose_codes
from geneface.nerf.volume import Rendered, composite, render_padded

_pos = attrs.validators.gt(0)
_nonneg = attrs.validators.ge(0)


def _odd(_inst, attribute, value):
    if value < 1 or value % 2 == 0:
        raise ValueError(f"{attribute.name} must be an odd number of frames >= 1 (the frame and as many on each "
                         f"side), got {value}")


def _skip(inst, attribute, value):
    if value >= 0 and not value < inst.layers - 1:
        raise ValueError(f"{attribute.name} must be -1 (none) or a layer index 0 to {inst.layers - 2}, got {value}")


@attrs.define
class WindowConditionConfig:
    dim: int = attrs.field(default=64, validator=_pos)  # the condition's width
    hidden: int = attrs.field(default=128, validator=_pos)  # the per-frame encoder's hidden width
    # Frames the attention smooths over (the frame and (window - 1) / 2 on each side); 1: none.
    window: int = attrs.field(default=5, validator=_odd)


@attrs.define
class HeadNeRFConfig:
    hidden: int = attrs.field(default=256, validator=_pos)
    layers: int = attrs.field(default=8, validator=_pos)
    skip: int = attrs.field(default=4, validator=_skip)  # the input enters again after this layer
    colour_hidden: int = attrs.field(default=128, validator=_pos)
    pos_freqs: int = attrs.field(default=10, validator=_nonneg)
    dir_freqs: int = attrs.field(default=4, validator=_nonneg)
    coarse_samples: int = attrs.field(default=64, validator=_pos)
    fine_samples: int = attrs.field(default=128, validator=_nonneg)  # 0: coarse only
    separate_fine: bool = True  # NeRF's two networks (coarse and fine); False: one for both


@attrs.define
class TorsoNeRFConfig:
    hidden: int = attrs.field(default=128, validator=_pos)
    layers: int = attrs.field(default=6, validator=_pos)
    skip: int = attrs.field(default=3, validator=_skip)
    colour_hidden: int = attrs.field(default=64, validator=_pos)
    pos_freqs: int = attrs.field(default=10, validator=_nonneg)
    # Low on purpose: a video shows a few hundred poses, and high frequencies of the pose let
    # the torso memorise each training frame's pose instead of following the head (measured on
    # the synthetic subject: 4 frequencies rendered a training frame 7 dB worse than 1).
    pose_freqs: int = attrs.field(default=1, validator=_nonneg)
    coarse_samples: int = attrs.field(default=32, validator=_pos)
    fine_samples: int = attrs.field(default=32, validator=_nonneg)
    separate_fine: bool = False


@attrs.define
class VanillaNeRFConfig:
    # Set from the training data (the buffers' shapes depend on them).
    size: int = attrs.field(default=64, validator=_pos)  # frame side, pixels
    n_poses: int = attrs.field(default=1, validator=_pos)  # the training video's frames
    condition: WindowConditionConfig = attrs.field(factory=WindowConditionConfig)
    head: HeadNeRFConfig = attrs.field(factory=HeadNeRFConfig)
    torso: TorsoNeRFConfig = attrs.field(factory=TorsoNeRFConfig)
    chunk: int = attrs.field(default=1024, validator=_pos)  # rays per pass when rendering


def window_indices(n_frames: int, index, window: int, lo: int = 0) -> np.ndarray:
    """Frames of the window around `index` (an int or an array of them) in the sequence
    `[lo, n_frames)`, clamped at its ends: (window,) or (len(index), window)."""
    half = window // 2
    offsets = np.arange(-half, half + 1)
    return np.clip(np.asarray(index)[..., None] + offsets, lo, n_frames - 1)


class WindowAttention(nn.Module):
    """AD-NeRF's attention over a window of per-frame codes: 1-D convolutions along the window
    (channels dim -> 16 -> 8 -> 4 -> 2 -> 1, kernel 3, leaky ReLU), a linear map window ->
    window, softmax. The linear map starts at zero: uniform weights (a plain average) at first."""

    def __init__(self, dim: int, window: int):
        super().__init__()
        chans = [dim, 16, 8, 4, 2, 1]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv1d(a, b, 3, padding=1), nn.LeakyReLU(0.02)]
        self.convs = nn.Sequential(*layers)
        self.mix = nn.Linear(window, window)
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """(F, W, D) -> softmax weights (F, W)."""
        score = self.convs(codes.transpose(1, 2))[:, 0]
        return torch.softmax(self.mix(score), dim=-1)


class WindowCondition(nn.Module):
    """Windows of canonical landmarks (F, W, 68, 3) -> conditions (F, dim).

    Each frame's 204 numbers, normalised with the training video's statistics (`mean`, `std`),
    go through a small MLP to `dim`; the window's codes are averaged with the attention's
    weights. A window of one frame (W = 1) is that frame's code: no smoothing.
    """

    def __init__(self, config: WindowConditionConfig):
        super().__init__()
        self.config = c = config
        self.register_buffer("mean", torch.zeros(N_LANDMARKS, 3))
        self.register_buffer("std", torch.ones(N_LANDMARKS, 3))
        self.encoder = nn.Sequential(nn.Linear(3 * N_LANDMARKS, c.hidden), nn.LeakyReLU(0.02),
                                     nn.Linear(c.hidden, c.hidden), nn.LeakyReLU(0.02), nn.Linear(c.hidden, c.dim))
        self.attention = WindowAttention(c.dim, c.window)

    def encode(self, landmarks: torch.Tensor) -> torch.Tensor:
        """(..., 68, 3) -> per-frame codes (..., dim)."""
        z = (landmarks - self.mean) / self.std.clamp(min=1e-6)
        return self.encoder(z.flatten(-2))

    def weights(self, windows: torch.Tensor) -> torch.Tensor:
        """The attention's weights (F, W) over windows (F, W, 68, 3)."""
        return self.attention(self.encode(windows))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        codes = self.encode(windows)
        w = codes.shape[1]
        if w == 1:
            return codes[:, 0]
        if w != self.config.window:
            raise ValueError(f"a window of {w} frames; this condition was trained on {self.config.window} (or give 1)")
        return (self.attention(codes)[..., None] * codes).sum(1)


class RadianceField(nn.Module):
    """NeRF's MLP: (enc(x), cond) -> `layers` x `hidden` (ReLU, the input again after `skip`)
    -> sigma (softplus) and a feature; (feature, enc(view direction), cond) -> rgb (sigmoid)."""

    def __init__(self, hidden: int, layers: int, skip: int, colour_hidden: int, pos_freqs: int,
                 dir_freqs: Optional[int], cond_dim: int):
        super().__init__()
        self.position = FrequencyEncoding(3, pos_freqs)
        self.direction = FrequencyEncoding(3, dir_freqs) if dir_freqs is not None else None
        dir_dim = self.direction.out_dim if self.direction is not None else 0
        skips = (skip,) if skip >= 0 else ()
        self.trunk = MLP(self.position.out_dim + cond_dim, hidden,
                         MLPConfig(hidden=hidden, layers=layers, skips=skips, out_activation="relu"))
        self.sigma = nn.Linear(hidden, 1)
        self.feature = nn.Linear(hidden, hidden)
        self.colour = MLP(hidden + dir_dim + cond_dim, 3,
                          MLPConfig(hidden=colour_hidden, layers=2, out_activation="sigmoid"))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, directions: Optional[torch.Tensor] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Points (M, 3) in about [-1, 1], their condition (M, C) and view directions (M, 3) ->
        sigma (M,) (per unit of the field's coordinates), rgb (M, 3)."""
        h = self.trunk(torch.cat([self.position(x), cond], dim=-1))
        sigma = F.softplus(self.sigma(h)[:, 0])
        parts = [self.feature(h)] + ([self.direction(directions)] if self.direction is not None else []) + [cond]
        return sigma, self.colour(torch.cat(parts, dim=-1))


def _padded(field: RadianceField, points: torch.Tensor, cond: torch.Tensor, directions: Optional[torch.Tensor]
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate a field on (N, S, 3) points with per-ray cond (N, C) and directions (N, 3)."""
    n, s = points.shape[:2]
    c = cond[:, None].expand(n, s, cond.shape[-1]).reshape(n * s, -1)
    d = directions[:, None].expand(n, s, 3).reshape(n * s, 3) if directions is not None else None
    sigma, rgb = field(points.reshape(n * s, 3), c, d)
    return sigma.reshape(n, s), rgb.reshape(n, s, 3)


def coarse_fine(coarse: RadianceField, fine: Optional[RadianceField], n_coarse: int, n_fine: int, to_field,
                near: torch.Tensor, far: torch.Tensor, unit: float, cond: torch.Tensor,
                directions: Optional[torch.Tensor], perturb: bool) -> tuple[Rendered, Rendered]:
    """NeRF's two passes along N rays between `near` and `far` (N,): `n_coarse` stratified
    samples through `coarse`, then `n_fine` more drawn from its weights and all of them
    through `fine` (or `coarse` again). `to_field(t (N, S))` gives the field's points
    (N, S, 3); `unit` is the length of one field unit along the ray (densities are per field
    unit). (coarse, fine) results; the same twice with `n_fine == 0`."""
    t, edges = stratified(near, far, n_coarse, perturb=perturb)
    sigma, rgb = _padded(coarse, to_field(t), cond, directions)
    first = render_padded(sigma, rgb, (edges[:, 1:] - edges[:, :-1]) / unit, t)
    if n_fine == 0:
        return first, first
    t_all = merge(t, importance(edges, first.weights, n_fine, perturb=perturb))
    sigma, rgb = _padded(fine if fine is not None else coarse, to_field(t_all), cond, directions)
    return first, render_padded(sigma, rgb, intervals(t_all, near, far) / unit, t_all)


class VanillaNeRFNet(nn.Module):
    def __init__(self, config: VanillaNeRFConfig):
        super().__init__()
        self.config = c = config
        self.condition = WindowCondition(c.condition)
        h, t = c.head, c.torso
        head = lambda: RadianceField(h.hidden, h.layers, h.skip, h.colour_hidden,  # noqa: E731
                                     h.pos_freqs, h.dir_freqs, c.condition.dim)
        self.head_coarse = head()
        self.head_fine = head() if h.separate_fine and h.fine_samples else None
        self.pose_encoding = FrequencyEncoding(POSE_DIM, t.pose_freqs)
        torso = lambda: RadianceField(t.hidden, t.layers, t.skip, t.colour_hidden, t.pos_freqs, None,  # noqa: E731
                                      self.pose_encoding.out_dim)
        self.torso_coarse = torso()
        self.torso_fine = torso() if t.separate_fine and t.fine_samples else None
        s = c.size
        self.register_buffer("plate", torch.zeros(s, s, 3, dtype=torch.uint8))
        self.register_buffer("c2w", torch.eye(4).repeat(c.n_poses, 1, 1))
        self.register_buffer("intrinsics", torch.tensor([float(s), s / 2.0, s / 2.0]))  # focal, cx, cy
        self.register_buffer("head_region", torch.ones(s, s, dtype=torch.bool))
        self.register_buffer("person_region", torch.ones(s, s, dtype=torch.bool))
        self.register_buffer("pose_mean", torch.zeros(POSE_DIM))
        self.register_buffer("pose_std", torch.ones(POSE_DIM))
        self.register_buffer("box_lo", torch.full((3,), -1.0))  # the head's box, canonical frame
        self.register_buffer("box_hi", torch.full((3,), 1.0))
        self.register_buffer("near_far", torch.tensor([0.5, 1.5]))  # camera distance range of the head

    # -- pieces used by training and rendering ------------------------------------------
    def camera(self, c2w: np.ndarray) -> Camera:
        focal, cx, cy = (float(v) for v in self.intrinsics)
        return Camera(focal=focal, width=self.config.size, height=self.config.size, c2w=c2w, cx=cx, cy=cy)

    def pose(self, c2w: torch.Tensor) -> torch.Tensor:
        """(F, 4, 4) -> the torso's condition (F, P): normalised pose codes, frequency-encoded."""
        return self.pose_encoding((pose_codes(c2w) - self.pose_mean) / self.pose_std)

    def to_box(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.box_lo) / (self.box_hi - self.box_lo) * 2.0 - 1.0

    def render_head(self, rays: Rays, cond: torch.Tensor, perturb: bool = False) -> tuple[Rendered, Rendered]:
        """The head along `rays` with per-ray condition (N, C): (coarse, fine), premultiplied.
        Samples lie where a ray crosses the head's box, within the camera's near / far."""
        h = self.config.head
        near, far, _ = intersect_box(rays, self.box_lo, self.box_hi)
        near = near.clamp(min=float(self.near_far[0]))
        far = torch.maximum(far.clamp(max=float(self.near_far[1])), near)
        unit = float((self.box_hi - self.box_lo).mean()) / 2.0
        return coarse_fine(self.head_coarse, self.head_fine, h.coarse_samples, h.fine_samples,
                           lambda t: self.to_box(rays.at(t)), near, far, unit, cond, rays.directions, perturb)

    def pixel_coords(self, pixels: torch.Tensor) -> torch.Tensor:
        """Integer pixels (N, 2) -> their centres in [-1, 1]^2."""
        return (pixels.float() + 0.5) / self.config.size * 2.0 - 1.0

    def render_torso(self, pixels: torch.Tensor, pose: torch.Tensor, perturb: bool = False
                     ) -> tuple[Rendered, Rendered]:
        """The torso at `pixels` (N, 2) for each pixel's pose condition (N, P): (coarse, fine).
        Its space is the fixed camera's frustum: (pixel x, pixel y, depth), each in [-1, 1],
        depth over the camera's near / far."""
        t_cfg = self.config.torso
        near_v, far_v = (float(v) for v in self.near_far)
        n = len(pixels)
        near = torch.full((n,), near_v, device=pixels.device)
        far = torch.full((n,), far_v, device=pixels.device)
        xy = self.pixel_coords(pixels)

        def to_field(t: torch.Tensor) -> torch.Tensor:
            depth = (t - near_v) / (far_v - near_v) * 2.0 - 1.0
            return torch.cat([xy[:, None].expand(n, t.shape[1], 2), depth[..., None]], dim=-1)

        return coarse_fine(self.torso_coarse, self.torso_fine, t_cfg.coarse_samples, t_cfg.fine_samples, to_field,
                           near, far, (far_v - near_v) / 2.0, pose, None, perturb)

    def windows(self, landmarks: torch.Tensor) -> torch.Tensor:
        """(68, 3) -> (1, 1, 68, 3); (W, 68, 3) -> (1, W, 68, 3)."""
        return landmarks[None, None] if landmarks.dim() == 2 else landmarks[None]

    # -- a whole frame -------------------------------------------------------------------
    @torch.no_grad()
    def render_frame(self, landmarks: torch.Tensor, c2w: torch.Tensor) -> torch.Tensor:
        """One frame from canonical landmarks, a window of them (W, 68, 3) centred on the frame
        (W: 1 or the trained window) or the frame's own (68, 3), and its camera-to-world
        (4, 4): float (H, W, 3) in [0, 1]."""
        device = self.plate.device
        s = self.config.size
        cond = self.condition(self.windows(landmarks.to(device)))[0]
        c2w = c2w.to(device)
        person, pixels, image, head_rgb, head_alpha, on_head, camera = frame_canvas(self, c2w)
        for part in on_head.split(self.config.chunk):
            rays = camera_rays(camera, 0, pixels[part])
            _, fine = self.render_head(rays, cond.expand(len(part), -1))
            head_rgb[part], head_alpha[part] = fine.rgb, fine.opacity
        pose = self.pose(c2w[None])
        for part in torch.arange(len(person), device=device).split(self.config.chunk):
            _, torso = self.render_torso(pixels[part], pose.expand(len(part), -1))
            image[person[part]] = composite([(head_rgb[part], head_alpha[part]), (torso.rgb, torso.opacity)],
                                            image[person[part]])
        return image.reshape(s, s, 3).clamp(0.0, 1.0)
