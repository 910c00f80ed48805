"""DomainAdapter `landmark_projection`: GeneFace++'s replacement for the adversarial postnet.

Generic motion is re-expressed in the person's face (`rebase`: the generator's per-speaker
z-scores read in the person's normalisation), then pulled towards what the person actually
does. For each frame:

1. find the `neighbours` nearest of the person's own training frames (Euclidean, in the
   person's normalised space, where every coordinate counts alike);
2. solve locally-linear-embedding weights that sum to one and best rebuild the frame from
   those neighbours: w = C^-1 1 / (1^T C^-1 1), C the Gram matrix of (neighbour - frame),
   plus `regularization` x trace(C) on its diagonal (C is singular whenever there are more
   neighbours than the local spread has dimensions, or the frame is one of them);
3. projection = w @ neighbours; out = share x projection + (1 - share) x frame;
4. mouth points 48-67 scaled about the person's mean by `mouth_scale` (in normalised space
   the person's mean is zero, so this multiplies their z-scores);
5. back to the person's units, every coordinate clipped to the `clip_low`-th..`clip_high`-th
   percentile of the person's training landmarks (0 and 100 switch that side off).

Cheap and stable, nothing to train: `geneface train domain_adapter --plugin
landmark_projection --person DATASET` only stores the person's training frames, statistics
and percentiles (geneface.training.projection_fit). It cannot invent a mouth shape the person
never made; `share` says how far towards their repertoire the output is pulled.

Frames run in chunks of `chunk`, so memory is bounded by chunk x training frames whatever the
length of the motion; each chunk is one matrix product, one top-k and one batched k x k solve.
Every step reads one frame and the fitted person only, so it streams exactly with no context.
"""

from __future__ import annotations

from typing import Optional

import attrs
import numpy as np

from geneface import hookimpl
from geneface.core.net_stage import check_state_keys
from geneface.core.records import MOUTH, N_LANDMARKS, Motion
from geneface.core.stages import DomainAdapter, StreamContext
from geneface.errors import StageMismatchError, UsageError

STATE_KEYS = ("frames", "mean", "std", "low", "high")
FIT_COMMAND = "geneface train domain_adapter --plugin landmark_projection --person DATASET --out DIR"


def _percent(inst, attr, value):
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"{attr.name} must be a percentile between 0 and 100, got {value}")
    low, high = (value, inst.clip_high) if attr.name == "clip_low" else (inst.clip_low, value)
    if low >= high:
        raise ValueError(f"clip_low ({low}) must be below clip_high ({high})")


@attrs.define
class ProjectionConfig:
    # Share of the projection in the output (GeneFace++: 0.2); 0 keeps the rebased prediction.
    share: float = attrs.field(default=0.2, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])
    neighbours: int = attrs.field(default=10, validator=attrs.validators.gt(0))  # GeneFace++: 10
    # Per-coordinate percentiles of the person's training landmarks bounding every output.
    clip_low: float = attrs.field(default=3.0, validator=_percent)
    clip_high: float = attrs.field(default=97.0, validator=_percent)
    mouth_scale: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0))  # user factor on mouth motion
    # LLE conditioning, relative to the trace of each frame's local Gram matrix (as in scikit-learn).
    regularization: float = attrs.field(default=1e-3, validator=attrs.validators.gt(0.0))
    chunk: int = attrs.field(default=2048, validator=attrs.validators.gt(0))  # frames per batch (memory bound)


def nearest(queries, frames, frames_sq, k: int):
    """Indices (B x k) of the k rows of `frames` (N x D) nearest each query (B x D); torch.

    |q - x|^2 = |q|^2 - 2 q.x + |x|^2, and |q|^2 does not change the order within a row.
    """
    import torch

    scores = torch.addmm(frames_sq.expand(len(queries), -1), queries, frames.T, alpha=-2.0)
    return torch.topk(scores, k, dim=1, largest=False, sorted=True).indices


def lle_weights(queries, neighbours, regularization: float):
    """Locally-linear-embedding weights (B x k, float64, rows sum to one) rebuilding each query
    (B x D) from its neighbours (B x k x D); torch."""
    import torch

    diff = (neighbours - queries[:, None, :]).double()
    gram = diff @ diff.transpose(1, 2)  # B x k x k
    trace = gram.diagonal(dim1=1, dim2=2).sum(-1)
    ridge = torch.where(trace > 0, regularization * trace, torch.full_like(trace, regularization))
    k = gram.shape[-1]
    gram = gram + ridge[:, None, None] * torch.eye(k, dtype=gram.dtype, device=gram.device)
    w = torch.linalg.solve(gram, torch.ones(len(gram), k, 1, dtype=gram.dtype, device=gram.device)).squeeze(-1)
    return w / w.sum(1, keepdim=True)


class LandmarkProjection(DomainAdapter):
    name = "landmark_projection"
    description = ("GeneFace++'s projection onto the person's own landmarks (LLE blend, percentile clip, "
                   "mouth scale); fitted in seconds")
    Config = ProjectionConfig
    training = "geneface.training.projection_fit:ProjectionRecipe"
    needs_checkpoint = True

    def __init__(self, config=None):
        super().__init__(config)
        self.frames: Optional[np.ndarray] = None  # N x 204, normalised by the person's mean/std
        self.mean: Optional[np.ndarray] = None  # 68 x 3, the person's units
        self.std: Optional[np.ndarray] = None
        self.low: Optional[np.ndarray] = None  # 68 x 3: percentile clip_low / clip_high of the frames
        self.high: Optional[np.ndarray] = None
        self._bounds_for: Optional[tuple[float, float]] = None  # the (clip_low, clip_high) of low/high
        self._torch_frames = None  # (frames, |frames|^2) as tensors, made on first use

    @property
    def fitted(self) -> bool:
        return self.frames is not None

    # -- fitting and state -------------------------------------------------------------------

    def fit(self, frames: np.ndarray, mean: np.ndarray, std: np.ndarray) -> "LandmarkProjection":
        """Store the person's training frames (N x 204, normalised by `mean`/`std`, 68 x 3)."""
        frames = np.ascontiguousarray(np.asarray(frames, np.float32).reshape(len(frames), -1))
        self._set(frames, np.asarray(mean, np.float32), np.asarray(std, np.float32), None, None)
        self._bounds()
        return self

    def state_dict(self) -> dict:
        import torch

        if not self.fitted:
            return {}
        low, high = self._bounds(finite=True)
        return {"frames": torch.from_numpy(self.frames), "mean": torch.from_numpy(self.mean),
                "std": torch.from_numpy(self.std), "low": torch.from_numpy(low), "high": torch.from_numpy(high)}

    def load_state_dict(self, state: dict) -> None:
        check_state_keys(state, STATE_KEYS)
        arrays = {k: np.asarray(state[k].detach().cpu().numpy() if hasattr(state[k], "detach") else state[k],
                                np.float32) for k in STATE_KEYS}
        self._set(arrays["frames"], arrays["mean"], arrays["std"], arrays["low"], arrays["high"])
        self._bounds_for = (self.config.clip_low, self.config.clip_high)

    def load_checkpoint(self, ckpt) -> None:
        self.load_state_dict(ckpt.state)
        # A spec may override clip_low/clip_high: the stored bounds are for the fitted config.
        saved = ckpt.config if isinstance(ckpt.config, dict) else {}
        self._bounds_for = (saved.get("clip_low", self.config.clip_low), saved.get("clip_high", self.config.clip_high))

    def _set(self, frames, mean, std, low, high) -> None:
        width = N_LANDMARKS * 3
        if frames.ndim != 2 or frames.shape[1] != width or len(frames) == 0:
            raise ValueError(f"frames must be N x {width} with N >= 1, got shape {frames.shape}")
        for key, value in (("mean", mean), ("std", std), ("low", low), ("high", high)):
            if value is not None and value.shape != (N_LANDMARKS, 3):
                raise ValueError(f"{key} must be {N_LANDMARKS} x 3, got shape {value.shape}")
        if not np.all(std > 0):
            raise ValueError("std must be positive")
        if low is not None and high is not None and not np.all(low <= high):
            raise ValueError("low must not exceed high")
        self.frames, self.mean, self.std, self.low, self.high = frames, mean, std, low, high
        self._torch_frames = None

    def _bounds(self, finite: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Per-coordinate clip bounds (68 x 3) for the current config: percentiles of the training
        landmarks in the person's units, recomputed when the config's percentiles changed; -inf /
        +inf on a side set to 0 / 100 (unless `finite`, as stored in the checkpoint)."""
        wanted = (self.config.clip_low, self.config.clip_high)
        if self.low is None or self._bounds_for != wanted:
            units = self.frames.reshape(-1, N_LANDMARKS, 3).astype(np.float64) * self.std + self.mean
            low, high = np.percentile(units, wanted, axis=0)
            self.low, self.high = low.astype(np.float32), high.astype(np.float32)
            self._bounds_for = wanted
        if finite:
            return self.low, self.high
        low = self.low if wanted[0] > 0 else np.full_like(self.low, -np.inf)
        high = self.high if wanted[1] < 100 else np.full_like(self.high, np.inf)
        return low, high

    # -- adapting ----------------------------------------------------------------------------

    def stream_context(self) -> StreamContext:
        return StreamContext(0, 0)  # frame by frame: neighbours, weights, scale and clip read one frame

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise UsageError(f"domain_adapter '{self.name}' is not fitted to a person: fit it with `{FIT_COMMAND}` and "
                             "give the spec its checkpoint (stages.domain_adapter.checkpoint: DIR/model.safetensors)")

    def project(self, z: np.ndarray, return_weights: bool = False):
        """T x 204 normalised frames -> their LLE projections onto the training frames (T x 204);
        with `return_weights`, also the neighbours' indices and weights (T x k each)."""
        import torch

        self._require_fitted()
        z = np.ascontiguousarray(np.asarray(z, np.float32).reshape(len(z), -1))
        if self._torch_frames is None:
            frames = torch.from_numpy(self.frames)
            self._torch_frames = (frames, (frames * frames).sum(1))
        frames, frames_sq = self._torch_frames
        k = min(self.config.neighbours, len(frames))
        out = np.empty_like(z)
        index = np.empty((len(z), k), np.int64) if return_weights else None
        weights = np.empty((len(z), k), np.float64) if return_weights else None
        with torch.no_grad():
            for start in range(0, len(z), self.config.chunk):
                end = min(start + self.config.chunk, len(z))
                q = torch.from_numpy(z[start:end])
                idx = nearest(q, frames, frames_sq, k)
                neigh = frames[idx]  # B x k x 204
                w = lle_weights(q, neigh, self.config.regularization)
                out[start:end] = (w[:, None, :] @ neigh.double()).squeeze(1).float().numpy()
                if return_weights:
                    index[start:end], weights[start:end] = idx.numpy(), w.numpy()
        return (out, index, weights) if return_weights else out

    def adapt(self, motion: Motion) -> Motion:
        problem = self.check_input(motion)
        if problem:
            raise StageMismatchError(f"domain_adapter '{self.name}': {problem}")
        self._require_fitted()
        from geneface.core.records import rebase

        share = self.config.share
        z = rebase(motion, self.mean, self.std)
        if share > 0:
            z = share * self.project(z) + (1.0 - share) * z
        z = z.reshape(-1, N_LANDMARKS, 3)
        if self.config.mouth_scale != 1.0:
            z = z.copy()  # never scale the caller's array in place
            z[:, MOUTH] *= self.config.mouth_scale
        low, high = self._bounds()
        landmarks = np.clip(z * self.std + self.mean, low, high)
        return Motion(landmarks, motion.fps, self.mean, self.std)


@hookimpl
def register_domain_adapters(register):
    register(LandmarkProjection)
