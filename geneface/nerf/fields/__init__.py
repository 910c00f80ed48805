"""Fields of the NeRF renderers: what turns a point (and a condition) into density and colour.

- `talking_head`: `hashgrid_nerf`'s head: space encoding (tri-plane or 3-D hash grid), a 2-D
  ambient coordinate from the landmark condition, density and colour.
- `torso`: `hashgrid_nerf`'s torso: a 2-D deformation over a canonical image.
- `radiance`: NeRF's dense MLP (`RadianceField`) and its coarse + fine sampling
  (`coarse_fine`), the building block of `vanilla_nerf`.
- `vanilla_head`: `vanilla_nerf`'s head: the landmark condition smoothed over a window of
  frames with attention (`WindowCondition`, `window_indices`) and the 8 x 256 head MLP's config.
- `vanilla_torso`: `vanilla_nerf`'s torso: a smaller NeRF in the fixed camera's frustum,
  conditioned on the head's pose (`render_torso`).
"""
