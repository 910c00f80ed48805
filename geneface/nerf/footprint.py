"""Where a head's occupied cells can show in one frame, and how far along each pixel's ray
the first of them can start: the per-frame head region of `hashgrid_nerf`.

A ray that crosses no occupied cell renders nothing (geneface.nerf.occupancy), so the pixels
worth a head ray are those the occupied cells project onto with this frame's camera, and each
ray's empty stretch before its first occupied cell need not be marched. Both come from one
splat: the centre of every occupied cell on the surface of the occupied set (a ray enters the
set through one of those) is projected into the image; each pixel keeps the nearest depth
minus the cell's half diagonal; a square min-filter as wide as the largest projected cell
(plus a pixel) makes it conservative. So `covered` is a superset of the pixels whose rays
have an occupied sample, and `start` is at most the distance to that ray's first one:
rendering with them draws the same samples as marching every ray from the box's near side.
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F


@attrs.frozen(eq=False)
class Footprint:
    """Per pixel of an H x W frame, flat (H * W,): `covered`, whether an occupied cell may be
    on its ray; `start`, a distance along the ray before which no occupied cell lies
    (inf where not covered)."""

    covered: torch.Tensor
    start: torch.Tensor


def surface_cells(occupied: torch.Tensor) -> torch.Tensor:
    """Occupied cells (R x R x R bool) with an empty face neighbour or on the grid's border:
    the only cells a ray can enter the occupied set through (R x R x R bool)."""
    empty = (~occupied).float()[None, None]
    # A cell has an empty neighbour iff the 3x3x3 cross around it holds one; the max-pool of
    # a cube over-approximates the cross, which only adds cells (still conservative).
    near_empty = F.max_pool3d(F.pad(empty, (1, 1, 1, 1, 1, 1), value=1.0), 3, stride=1)[0, 0] > 0
    return occupied & near_empty


def cell_centres(cells: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """World centres (M, 3) of the true cells of an R x R x R grid over the box [lo, hi]
    (index order i, j, k along x, y, z, as geneface.nerf.occupancy's lookup)."""
    r = cells.shape[0]
    ijk = torch.nonzero(cells).to(lo.dtype)
    return lo + (ijk + 0.5) / r * (hi - lo)


def splat(centres: torch.Tensor, half_diagonal: float, c2w: torch.Tensor, focal: float, cx: float, cy: float,
          width: int, height: int) -> Footprint:
    """The footprint of cells (world centres (M, 3), each within `half_diagonal` of its
    centre) seen by a pinhole camera (camera-to-world `c2w` (4, 4), OpenCV axes)."""
    device = centres.device
    flat = torch.full((height * width,), math.inf, device=device)
    if len(centres):
        local = (centres - c2w[:3, 3]) @ c2w[:3, :3]  # world -> camera: R^T (x - t), row-wise
        z = local[:, 2]
        if bool((z.abs() <= half_diagonal).any()):
            # A cell the camera's plane cuts (the camera inside or beside the occupied set):
            # any pixel may see it, from distance 0.
            return Footprint(torch.ones(height * width, dtype=torch.bool, device=device),
                             torch.zeros(height * width, device=device))
        front = z > half_diagonal  # cells wholly behind the camera are never seen
        local, z = local[front], z[front]
        if not len(z):
            return Footprint(torch.zeros(height * width, dtype=torch.bool, device=device), flat)
        u = focal * local[:, 0] / z + cx
        v = focal * local[:, 1] / z + cy
        # The farthest a cell's projection reaches from its centre's, over all cells.
        reach = math.ceil(float((half_diagonal * focal / (z - half_diagonal)).max())) + 1
        x, y = u.floor().long(), v.floor().long()
        inside = (x >= -reach) & (x < width + reach) & (y >= -reach) & (y < height + reach)
        # Splat onto a canvas padded by the reach, so cells just outside the frame count too.
        w, h = width + 2 * reach, height + 2 * reach
        index = (y[inside] + reach) * w + (x[inside] + reach)
        canvas = torch.full((h * w,), math.inf, device=device)
        canvas.scatter_reduce_(0, index, z[inside] - half_diagonal, reduce="amin")
        # Min-filter (a square of side 2 reach + 1), separably, as a max-pool of the negation.
        k = 2 * reach + 1
        grid = -canvas.view(1, 1, h, w)
        grid = F.max_pool2d(grid, (1, k), stride=1, padding=(0, reach))
        grid = F.max_pool2d(grid, (k, 1), stride=1, padding=(reach, 0))
        flat = -grid[0, 0, reach:reach + height, reach:reach + width].reshape(-1)
    # A ray's distance t to a point at depth z is z times |(x', y', 1)| >= z: the nearest depth
    # is a lower bound on the distance.
    start = flat.clamp(min=0.0)
    return Footprint(torch.isfinite(flat), start)
