"""Radiance-field parts shared by every NeRF renderer, built-in or third-party.

Split by job, each usable alone:

- `encodings`: frequency (positional) and spherical-harmonics encodings; multi-resolution
  grids: 3-D (dense coarse levels, hashed fine ones), tri-plane, 2-D; the backend seam
  (`make_grid_encoding`: PyTorch, or tinycudann on CUDA).
- `tcnn_tables`: one 3-D grid table between tinycudann's order and `GridEncoding`'s.
- `mlp`: the MLP builder (skips, activations, truncated exp for densities).
- `rays`: rays from a dataset `Camera` and pixel coordinates; box intersection.
- `samplers`: stratified and importance (inverse-CDF) samples along rays.
- `occupancy`: an occupancy grid and pure-PyTorch ray marching that skips empty space.
- `footprint`: where a head's occupied cells can show in one frame, and how far along each
  ray the first can start (one splat of the grid's surface cells): the per-frame head region.
- `front_to_back`: inference's marcher: a few steps per ray per round from that start,
  composited front to back, rays dropped once opaque (`MarchConfig`).
- `adaptive`: a quarter of the head's rays, the rest interpolated where they agree (edges
  keep their own rays).
- `volume`: volume rendering (padded and packed samples); head over torso over plate.
- `losses`: photometric, PSNR (geneface.metrics.image's definition), opacity entropy,
  ambient regulariser, lip patches.
- `condition`: `hashgrid_nerf`'s landmark condition (eyes and mouth -> a small vector).
- `fields`: the fields themselves (its `__init__` lists them): `hashgrid_nerf`'s head and
  torso, NeRF's radiance MLP, `vanilla_nerf`'s head and torso.

The person NeRFs (one person's video, one model each) on top of those:

- `person`: what both share, `PersonCanvas` (their base class): plate, camera (training
  poses and intrinsics), where head and person were seen, pose codes and statistics, and the
  drawing of a whole frame with the camera it is handed.
- `talking_head`: the whole model of `hashgrid_nerf` (`TalkingHeadNet`).
- `vanilla`: the whole model of `vanilla_nerf` (`VanillaNeRFNet`).
- `stage`: `PersonNeRF`, the renderer stage both plugins are: motion and camera checks, the
  default camera path, frames streamed one at a time.

A renderer composes them the nerfstudio way: rays from the camera -> near/far from the
head's box -> samples (stratified, importance, or marched through the occupancy grid) ->
its own field (encodings + MLPs) gives density and colour at the samples -> volume
rendering -> composite over torso and background -> losses. Only the field is new code.
Everything runs on CPU and CUDA with no build step; tensors stay on the device of the
inputs and parameters.
"""
