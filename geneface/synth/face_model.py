"""The animatable face: a tracked photo turned into a textured 3-D mesh that can talk.

Build (once per identity and output size):

1. The 478 face-mesh points of the photo are lifted to 3-D camera space: the biocular width
   (outer eye corners) is taken as 9 cm, the head sits 100 cm from a pinhole camera whose
   principal point is the face centre, and each point is pushed back along its viewing ray
   by mediapipe's relative depth. A head frame ("canonical space", centimetres, x right,
   y down, z away from the camera) is anchored on the eye line and the forehead-chin line.
2. The lips are closed into a neutral rest (the photo smiles with parted lips): the upper
   lip moves down 40 % of the gap and the lower lip up 60 %, with the skin around them.
3. Extra geometry is added: a fan of triangles across each eye, a mouth interior behind the
   lips (a dark cavity, the photo's own upper teeth fixed to the skull, a darker mirrored
   copy as lower teeth on the jaw), and rings of vertices from the face outline out past
   the frame edge that carry hair, ears and neck with the head and hold the torso and the
   background still.

Animate (every frame): lip spread/rounding, jaw rotation about a hinge in front of the
ears, lip closure (p b m) and lower-lip tuck (f v) against the current gap, the style's
lip-corner offset, eyelid closure, then the rigid head motion about a pivot near the top
of the neck. The result is projected and textured by `render.Rasterizer`.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from geneface.core.landmarks68 import MESH_TO_68, STABLE_MESH
from geneface.synth.motion import euler_to_matrix
from geneface.synth.photo import PhotoTrack
from geneface.synth.variation import Identity

# --- mediapipe face-mesh vertex ids --------------------------------------------------------
LIP_UPPER_INNER = np.array([78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308])
LIP_LOWER_INNER = np.array([78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308])
LIP_UPPER_OUTER = np.array([61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291])
LIP_LOWER_OUTER = np.array([61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291])
MOUTH_CORNERS = (61, 291)
# Face outline, walked in order around the face.
FACE_OVAL = np.array([
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
])
# Per eye: corners, lid contours (same column order), the rings above/below, iris.
EYES = (
    dict(  # image-left eye (the subject's right)
        outer=33, inner=133,
        upper=[246, 161, 160, 159, 158, 157, 173], lower=[7, 163, 144, 145, 153, 154, 155],
        upper1=[247, 30, 29, 27, 28, 56, 190], upper2=[113, 225, 224, 223, 222, 221, 189],
        lower1=[25, 110, 24, 23, 22, 26, 112], iris=468, iris_ring=[469, 470, 471, 472],
    ),
    dict(  # image-right eye
        outer=263, inner=362,
        upper=[466, 388, 387, 386, 385, 384, 398], lower=[249, 390, 373, 374, 380, 381, 382],
        upper1=[467, 260, 259, 257, 258, 286, 414], upper2=[342, 445, 444, 443, 442, 441, 413],
        lower1=[255, 339, 254, 253, 252, 256, 341], iris=473, iris_ring=[474, 475, 476, 477],
    ),
)

BIOCULAR_CM = 9.0  # adult outer-canthus distance, fixes the metric scale
HEAD_DISTANCE_CM = 100.0
JAW_MAX_DEG = 14.0  # jaw = 1 (before mouth_amplitude): about 2 cm between the lips
CORNER_RAISE_CM = 0.4  # lip_corner_offset = 1 with the jaw half open: corner 4 mm up
CROP_FACE_HEIGHTS = 2.25  # frame side in face heights at scale 1: hair to collar
PHOTO_PAD_PX = 120  # mirrored border around the photo (photo pixels), for scale down to 0.6


@lru_cache(maxsize=1)
def mesh_triangles() -> np.ndarray:
    """Triangles of mediapipe's face tessellation, recovered from its edge list.

    mediapipe ships the tessellation as edges; its faces are the 3-cliques of that graph
    (the mesh has no separating triangles, so every 3-clique is a face). The mouth and the
    eyes are holes in it.
    """
    import mediapipe as mp

    edges = mp.solutions.face_mesh_connections.FACEMESH_TESSELATION
    neighbours: dict[int, set] = {}
    for a, b in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    tris = set()
    for a, b in edges:
        for c in neighbours[a] & neighbours[b]:
            tris.add(tuple(sorted((a, b, c))))
    return np.array(sorted(tris), dtype=np.int32)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _eye_loop(eye: dict) -> list[int]:
    return [eye["outer"], *eye["upper"], eye["inner"], *reversed(eye["lower"])]


class FaceRig:
    """Geometry, texture and camera for one identity at one output size."""

    def __init__(self, track: PhotoTrack, identity: Identity = Identity(), size: int = 256):
        self.identity = identity
        self.size = int(size)
        pts = np.asarray(track.points, dtype=np.float64)
        self.n_mesh = len(pts)

        # --- framing: the output frame is a square crop around the face ------------------
        oval = pts[FACE_OVAL, :2]
        self.face_centre_px = 0.5 * (oval.min(0) + oval.max(0))
        face_height = float(oval[:, 1].max() - oval[:, 1].min())
        side = CROP_FACE_HEIGHTS * face_height / identity.scale
        origin = self.face_centre_px - side / 2  # photo px of the frame's top-left corner
        # Keep the frame inside the photo where it fits (a small --scale would otherwise
        # show past the top edge); the face, and the principal point with it, then sits
        # off the frame centre.
        limit = np.array([track.width, track.height]) - side
        self.crop_origin = np.where(limit >= 0, np.clip(origin, 0.0, np.maximum(limit, 0.0)), origin)
        self.k = self.size / side  # output px per photo px

        # --- metric 3-D lift ---------------------------------------------------------------
        px_per_cm = np.linalg.norm(pts[263, :2] - pts[33, :2]) / BIOCULAR_CM
        self.focal_photo = px_per_cm * HEAD_DISTANCE_CM
        self.focal = self.focal_photo * self.k
        # The photo's camera looks straight at the face centre; the frame is a crop of it.
        self.principal = tuple(float(v) for v in (self.face_centre_px - self.crop_origin) * self.k)
        depth = HEAD_DISTANCE_CM + pts[:, 2] / px_per_cm
        cam = np.empty_like(pts)
        cam[:, 0] = (pts[:, 0] - self.face_centre_px[0]) * depth / self.focal_photo
        cam[:, 1] = (pts[:, 1] - self.face_centre_px[1]) * depth / self.focal_photo
        cam[:, 2] = depth

        # Head frame: x along the eye line, y down the face, z into the scene.
        x = cam[263] - cam[33]
        x /= np.linalg.norm(x)
        v = cam[152] - cam[10]
        y = v - v.dot(x) * x
        y /= np.linalg.norm(y)
        z = np.cross(x, y)
        self.R0 = np.stack([x, y, z], axis=1)  # canonical -> camera rotation at rest
        self.origin = cam[STABLE_MESH].mean(0)  # canonical origin in camera space
        photo_can = (cam - self.origin) @ self.R0  # the photo's face in canonical space

        # --- anatomy in canonical space ----------------------------------------------------
        self._mouth_frame(photo_can)
        self.hinge = np.array([self.mouth_cx, photo_can[2, 1] - 0.5, photo_can[MOUTH_CORNERS, 2].mean() + 7.5])
        self.neck_pivot = np.array([0.0, photo_can[2, 1] + 2.5, self.hinge[2] + 1.5])

        neutral = self._close_lips(photo_can)
        self.rest = self._shape_warp(neutral)
        photo_warped = self._shape_warp(photo_can)
        self.jaw_weight = self._jaw_weights(photo_can)
        self._eye_setup()

        # --- texture: photo (recoloured, resized to output scale) + an atlas -------------
        self._build_texture(track, pts)
        self.tex_face = self._photo_to_tex(pts[:, :2])

        # --- extra geometry -----------------------------------------------------------------
        self._build_interior(photo_warped, pts)
        self._build_outer(pts, neutral)

        self._texture_coords = np.concatenate([self.tex_face, self.outer_tex, self.interior_tex])
        self.face_triangles = mesh_triangles()
        self.eye_triangles = np.array(
            [[eye["iris"], a, b] for eye in EYES for a, b in zip(_eye_loop(eye), np.roll(_eye_loop(eye), -1))],
            dtype=np.int32,
        )

    # ----------------------------------------------------------------------------- mouth
    def _mouth_frame(self, P: np.ndarray) -> None:
        left, right = P[MOUTH_CORNERS[0]], P[MOUTH_CORNERS[1]]
        self.mouth_cx = 0.5 * (left[0] + right[0])
        self.mouth_half_width = 0.5 * abs(right[0] - left[0])
        up, lo = P[LIP_UPPER_INNER], P[LIP_LOWER_INNER]
        order = np.argsort(up[:, 0])
        self._contour_x = up[order, 0]
        self._upper_y = up[order, 1]
        self._lower_y = lo[np.argsort(lo[:, 0]), 1]
        self._lower_x = lo[np.argsort(lo[:, 0]), 0]
        # Per-vertex lip coordinates, from the photo (where the lips are still apart).
        xc = np.clip(P[:, 0], self._contour_x[0], self._contour_x[-1])
        yu = np.interp(xc, self._contour_x, self._upper_y)
        yl = np.interp(xc, self._lower_x, self._lower_y)
        self.photo_gap = np.maximum(yl - yu, 0.0)  # lip gap above/below each vertex
        # The full 3-D gap (the lower lip also sits further back in the photo), so that
        # closing the lips makes them meet, not just line up in the image.
        self.photo_gap_vec = _column_field(P[:, 0], P[LIP_UPPER_INNER], P[LIP_LOWER_INNER] - P[LIP_UPPER_INNER])
        self.eta = P[:, 1] - 0.5 * (yu + yl)  # signed height from the lip midline
        self.xi = (P[:, 0] - self.mouth_cx) / self.mouth_half_width  # -1..1 corner to corner
        self.mouth_line_y = float(0.5 * (P[MOUTH_CORNERS[0], 1] + P[MOUTH_CORNERS[1], 1]))
        ax = np.abs(self.xi)
        self.w_lip_x = _smoothstep((1.25 - ax) / 0.35)  # between the corners, fading past them
        # Upper-lip and lower-lip influence: 1 on the inner contour, fading over ~1 cm of
        # skin (philtrum above, chin below) so the lips move as a whole, not as a crease.
        beyond_u = np.maximum(0.0, -self.eta - 0.5 * self.photo_gap)
        beyond_l = np.maximum(0.0, self.eta - 0.5 * self.photo_gap)
        self.f_upper = self.w_lip_x * (self.eta < 0) * np.exp(-((beyond_u / 0.9) ** 2))
        self.f_lower = self.w_lip_x * (self.eta >= 0) * np.exp(-((beyond_l / 1.1) ** 2))
        self.f_lower_lip = self.w_lip_x * (self.eta >= 0) * np.exp(-((beyond_l / 0.45) ** 2))
        # Spreading/rounding move the lips and the skin just around them.
        self.w_lips = np.exp(-((np.maximum(0.0, ax - 1.0) / 0.45) ** 2)) * np.exp(-((self.eta / 1.3) ** 2))
        self.w_pout = np.exp(-((np.maximum(0.0, ax - 0.8) / 0.3) ** 2)) * np.exp(-((self.eta / 0.7) ** 2))
        self.w_mid = np.clip(1.0 - self.xi**2, 0.0, 1.0)
        # Lip-corner offset (Style.lip_corner_offset): the subject's left corner (+x) and the
        # lips and skin next to it, none of the right half. Upper and lower lip get the same
        # weight (distance past the lip gap), so the offset does not change the mouth opening;
        # scaled so that the corner vertex itself moves by exactly the requested amount.
        beyond = np.maximum(0.0, np.abs(self.eta) - 0.5 * self.photo_gap)
        w = _smoothstep(self.xi) * np.exp(-((np.maximum(0.0, self.xi - 1.0) / 0.45) ** 2)) * np.exp(-((beyond / 1.0) ** 2))
        self.w_corner = np.clip(w / w[MOUTH_CORNERS[1]], 0.0, 1.0)

    def _close_lips(self, P: np.ndarray) -> np.ndarray:
        out = P.copy()
        out += self.photo_gap_vec * (0.4 * self.f_upper - 0.6 * self.f_lower)[:, None]
        return out

    def _jaw_weights(self, P: np.ndarray) -> np.ndarray:
        # Near the lips: upper lip and above stay with the skull, lower lip and below go
        # with the jaw, the corners half-way. Elsewhere: a soft ramp below the mouth line.
        sharp = np.clip(0.5 + self.eta / 0.15, 0.0, 1.0)
        broad = _smoothstep((P[:, 1] - (self.mouth_line_y - 0.3)) / 1.8)
        near = self.w_lip_x * np.exp(-((self.eta / 3.0) ** 2))
        return near * sharp + (1.0 - near) * broad

    # ------------------------------------------------------------------------- identity
    def _shape_warp(self, P: np.ndarray) -> np.ndarray:
        ident = self.identity
        if not (ident.face_width or ident.face_length or ident.jaw_width):
            return P.copy()
        out = P.copy()
        eye_y = float(np.mean([P[33, 1], P[263, 1]]))
        chin_y = float(P[152, 1])
        below_eyes = _smoothstep((P[:, 1] - eye_y) / max(chin_y - eye_y, 1e-6))
        below_mouth = _smoothstep((P[:, 1] - self.mouth_line_y) / max(chin_y - self.mouth_line_y, 1e-6))
        out[:, 0] *= 1.0 + ident.face_width * (0.5 + 0.5 * below_eyes) + ident.jaw_width * below_mouth
        out[:, 1] = np.where(P[:, 1] > eye_y, eye_y + (P[:, 1] - eye_y) * (1.0 + ident.face_length), P[:, 1])
        return out

    # ----------------------------------------------------------------------------- eyes
    def _eye_setup(self) -> None:
        self.eyes = []
        for eye in EYES:
            up, lo = np.array(eye["upper"]), np.array(eye["lower"])
            gap = self.rest[lo, 1] - self.rest[up, 1]
            self.eyes.append(dict(eye, upper=up, lower=lo, upper1=np.array(eye["upper1"]),
                                  upper2=np.array(eye["upper2"]), lower1=np.array(eye["lower1"]), gap=gap))

    # -------------------------------------------------------------------------- texture
    def _build_texture(self, track: PhotoTrack, pts: np.ndarray) -> None:
        img = _recolour(track.image, self.identity, pts)
        h, w = img.shape[:2]
        tw, th = max(1, round(w * self.k)), max(1, round(h * self.k))
        interp = cv2.INTER_AREA if self.k < 1 else cv2.INTER_CUBIC
        photo = cv2.resize(img, (tw, th), interpolation=interp)
        self._tex_scale = np.array([tw / w, th / h])
        # Small --scale values frame more than the photo holds (mostly above the hair):
        # a mirrored border continues the backdrop instead of smearing its edge pixels.
        self._pad = int(round(PHOTO_PAD_PX * self.k))
        photo = cv2.copyMakeBorder(photo, *([self._pad] * 4), cv2.BORDER_REFLECT_101)
        # A replicated margin keeps ring triangles that reach past the photo's right edge
        # from sampling the atlas placed beyond it.
        margin = 64
        self._atlas_x0 = photo.shape[1] + margin
        self._photo_tex = photo
        self._tex_height = photo.shape[0]

    def _photo_to_tex(self, xy: np.ndarray) -> np.ndarray:
        # Pixel centres sit at integer coordinates in both images.
        return (np.asarray(xy, dtype=np.float64) + 0.5) * self._tex_scale - 0.5 + self._pad

    def _build_interior(self, photo_warped: np.ndarray, pts: np.ndarray) -> None:
        """Cavity, upper teeth (photo, on the skull) and lower teeth (mirrored, on the jaw)."""
        rest = self.rest
        up_idx, lo_idx = LIP_UPPER_INNER, LIP_LOWER_INNER
        U, L = photo_warped[up_idx], photo_warped[lo_idx]  # photo's open lips (canonical)
        M = rest[up_idx]  # where the closed lips meet
        gap = np.maximum(L[:, 1] - U[:, 1], 0.0)
        n = len(up_idx)
        back = np.array([0.0, 0.0, 0.3])

        verts, tex, jaw, tris = [], [], [], []

        def grid(rows_xyz, rows_tex, rows_jaw):
            base = len(verts)
            R, C = len(rows_xyz), len(rows_xyz[0])
            for r in range(R):
                verts.extend(rows_xyz[r])
                tex.extend(rows_tex[r])
                jaw.extend([rows_jaw[r]] * C)
            for r in range(R - 1):
                for c in range(C - 1):
                    a, b = base + r * C + c, base + r * C + c + 1
                    d, e = a + C, b + C
                    tris.extend([(a, b, e), (a, e, d)])

        # Atlas: cavity gradient then a mirrored, darkened copy of the photo's teeth.
        photo_tex_pts = self._photo_to_tex(pts[:, :2])
        box_lo = np.floor(photo_tex_pts[np.r_[up_idx, lo_idx]].min(0) - 2).astype(int)
        box_hi = np.ceil(photo_tex_pts[np.r_[up_idx, lo_idx]].max(0) + 2).astype(int)
        box_lo = np.maximum(box_lo, 0)
        box_hi = np.minimum(box_hi, np.array(self._photo_tex.shape[1::-1]) - 1)
        teeth = self._photo_tex[box_lo[1]: box_hi[1] + 1, box_lo[0]: box_hi[0] + 1]
        teeth_mirror = (np.flipud(teeth).astype(np.float32) * 0.6).astype(np.uint8)
        cav = _cavity_patch(32)
        ax0 = self._atlas_x0
        tex_h = max(self._tex_height, cav.shape[0] + teeth_mirror.shape[0] + 8)
        tex_w = ax0 + max(cav.shape[1], teeth_mirror.shape[1]) + 4
        texture = np.zeros((tex_h, tex_w, 3), np.uint8)
        photo = self._photo_tex
        texture[: photo.shape[0], : photo.shape[1]] = photo
        # Replicate the photo's right column into the margin (see _build_texture).
        texture[: photo.shape[0], photo.shape[1]: ax0] = photo[:, -1:, :]
        texture[photo.shape[0]:, : ax0] = texture[photo.shape[0] - 1: photo.shape[0], : ax0]
        texture[0: cav.shape[0], ax0: ax0 + cav.shape[1]] = cav
        ty0 = cav.shape[0] + 4
        texture[ty0: ty0 + teeth_mirror.shape[0], ax0: ax0 + teeth_mirror.shape[1]] = teeth_mirror
        self.texture = texture

        def mirrored(tex_xy):
            # photo texture point -> its place in the mirrored teeth copy
            return np.stack([ax0 + tex_xy[:, 0] - box_lo[0], ty0 + (box_hi[1] - tex_xy[:, 1])], 1)

        # 1. cavity: 7 columns past both corners, rows from behind the upper lip down past
        #    the widest opening; the upper rows stay with the skull, the lower ride the jaw.
        cols = np.linspace(-1.25, 1.25, 7) * self.mouth_half_width + self.mouth_cx
        meet_y = np.interp(cols, np.sort(M[:, 0]), M[np.argsort(M[:, 0]), 1])
        z_cav = float(rest[np.r_[up_idx, lo_idx], 2].mean() + 1.2)
        offsets, jaws = [-1.0, -0.2, 0.8, 2.4], [0.0, 0.15, 0.7, 1.0]
        rows = [[np.array([x, my + dy, z_cav]) for x, my in zip(cols, meet_y)] for dy in offsets]
        rows_tex = [
            [np.array([ax0 + 0.5 + c / 6 * (cav.shape[1] - 2), 0.5 + r / 3 * (cav.shape[0] - 2)]) for c in range(7)]
            for r in range(4)
        ]
        grid(rows, rows_tex, jaws)
        # 2. lower teeth: a strip under the lower lip, mirrored teeth texture, on the jaw.
        tips_tex = photo_tex_pts[up_idx] + np.array([0.0, 1.0])[None] * (
            0.45 * (photo_tex_pts[lo_idx, 1] - photo_tex_pts[up_idx, 1]))[:, None]
        root_tex = photo_tex_pts[up_idx]
        top = [M[i] + np.array([0.0, -0.35 * gap[i], 0.0]) + back * 1.2 for i in range(n)]
        bottom = [M[i] + np.array([0.0, 0.1, 0.0]) + back * 1.2 for i in range(n)]
        grid([top, bottom], [list(mirrored(tips_tex)), list(mirrored(root_tex))], [1.0, 1.0])
        # 3. upper teeth: the photo's own mouth opening, fixed to the skull where it was.
        top = [U[i] + np.array([0.0, -0.15, 0.0]) + back for i in range(n)]
        bottom = [L[i] + np.array([0.0, 0.05, 0.0]) + back for i in range(n)]
        grid([top, bottom], [list(photo_tex_pts[up_idx]), list(photo_tex_pts[lo_idx])], [0.0, 0.0])

        self.interior_rest = np.array(verts)
        self.interior_tex = np.array(tex)
        self.interior_jaw = np.array(jaw)
        self.interior_triangles = np.array(tris, dtype=np.int32)

    def _build_outer(self, pts: np.ndarray, neutral: np.ndarray) -> None:
        """Rings from the face outline outwards: hair and ears ride with the head, the
        weight fades through the neck and the background to zero (static torso/backdrop)."""
        c = self.face_centre_px
        oval = pts[FACE_OVAL, :2]
        d = oval - c
        up = -d[:, 1] / np.linalg.norm(d, axis=1)  # +1 top of the head, -1 chin

        def by_direction(top, side, bottom):
            return np.where(up >= 0, side + (top - side) * up, side + (bottom - side) * (-up))

        # (scale from the face centre, head weight, depth behind the face in cm)
        rings = [
            ((1.12, 1.12, 1.08), (1.0, 1.0, 0.85), 2.0),
            ((2.05, 1.60, 1.25), (1.0, 1.0, 0.35), 6.0),  # the hair outline; the neck below
            ((2.60, 2.10, 1.60), (0.35, 0.30, 0.0), 8.0),
            ((3.40, 2.80, 2.10), (0.0, 0.0, 0.0), 8.0),
            ((14.0, 14.0, 14.0), (0.0, 0.0, 0.0), 8.0),  # far past any crop edge
        ]
        # Rings next to the face follow its shape warp so the outline does not fold.
        oval_shift_px = self._project_rest(self.rest[FACE_OVAL]) - self._project_rest(neutral[FACE_OVAL])
        follow = [1.0, 0.5, 0.15, 0.0, 0.0]
        # The skin under the chin goes with the jaw; without this the neck ring would be
        # squeezed into a dark crease when the mouth opens.
        jaw_follow = [0.9, 0.3, 0.0, 0.0, 0.0]
        below = np.clip(-up, 0.0, 1.0) ** 0.5
        xy, weight, depth, jaw = [], [], [], []
        for (scales, weights, back), f, j in zip(rings, follow, jaw_follow):
            s = by_direction(*scales)
            xy.append(c + d * s[:, None] + f * oval_shift_px / self.k)
            weight.append(by_direction(*weights))
            depth.append(np.full(len(d), back))
            jaw.append(j * below)
        xy = np.concatenate(xy)
        self.outer_weight = np.concatenate(weight)
        self.outer_jaw = np.concatenate(jaw)
        z = HEAD_DISTANCE_CM + np.concatenate(depth)
        cam = np.stack([(xy[:, 0] - c[0]) * z / self.focal_photo, (xy[:, 1] - c[1]) * z / self.focal_photo, z], 1)
        self.outer_rest_cam = cam
        self.outer_rest_can = (cam - self.origin) @ self.R0
        self.outer_tex = self._photo_to_tex(xy)
        n_ring = len(FACE_OVAL)
        tris = []
        prev = list(FACE_OVAL)  # ring 0 is the face outline itself (mesh vertex ids)
        base = self.n_mesh  # outer vertices follow the mesh in the combined array
        for r in range(len(rings)):
            cur = [base + r * n_ring + i for i in range(n_ring)]
            for i in range(n_ring):
                j = (i + 1) % n_ring
                tris.extend([(prev[i], prev[j], cur[j]), (prev[i], cur[j], cur[i])])
            prev = cur
        self.outer_triangles = np.array(tris, dtype=np.int32)

    # --------------------------------------------------------------------------- camera
    def _project_rest(self, can: np.ndarray) -> np.ndarray:
        cam = can @ self.R0.T + self.origin
        return self.project(cam)

    def project(self, cam: np.ndarray) -> np.ndarray:
        """Camera-space points (cm) -> output pixel coordinates."""
        z = np.maximum(cam[..., 2:3], 1e-3)
        return cam[..., :2] / z * self.focal + np.array(self.principal)

    def intrinsics(self) -> np.ndarray:
        cx, cy = self.principal
        return np.array([[self.focal, 0, cx], [0, self.focal, cy], [0, 0, 1]], dtype=np.float64)

    # -------------------------------------------------------------------------- animate
    def deform(self, jaw, spread, rnd, closure, tuck, blink, mouth_amp=1.0, lip_amp=1.0, corner_offset=0.0):
        """Expression -> face mesh (478 x 3) and interior vertices in canonical space, and
        the outer rings in camera space before head motion."""
        V = self.rest.copy()
        # Lips: spread widens, rounding narrows and pushes the lips forward and apart.
        sx = lip_amp * (0.10 * spread - 0.22 * rnd)
        V[:, 0] += (V[:, 0] - self.mouth_cx) * sx * self.w_lips
        V[:, 2] -= 0.45 * lip_amp * rnd * self.w_pout
        V[:, 1] += lip_amp * rnd * self.w_mid * (0.16 * self.f_lower - 0.05 * self.f_upper)
        # Jaw: rotation about the hinge, blended by the jaw weight.
        angle = np.deg2rad(JAW_MAX_DEG * mouth_amp * jaw)
        V = _rotate_x_blend(V, self.hinge, angle, self.jaw_weight)
        interior = _rotate_x_blend(self.interior_rest, self.hinge, angle, self.interior_jaw)
        outer = _rotate_x_blend(self.outer_rest_can, self.hinge, angle, self.outer_jaw) @ self.R0.T + self.origin
        # Closure / tuck act on the gap the jaw and rounding left.
        gap_cols = V[LIP_LOWER_INNER] - V[LIP_UPPER_INNER]
        gap_cols[gap_cols[:, 1] < 0] = 0.0  # lips already pressed: nothing to close
        G = _column_field(self.rest[:, 0], self.rest[LIP_UPPER_INNER], gap_cols)
        a_up = 0.4 * closure
        a_lo = min(0.6 * closure + 0.85 * tuck * (1.0 - closure), 1.0 - a_up)
        V += G * (a_up * self.f_upper - a_lo * self.f_lower)[:, None]
        V[:, 2] += 0.25 * tuck * self.f_lower_lip
        # Lip-corner offset last, as a pure canonical y shift, so the truth shows exactly
        # offset x 4 mm x (0.5 + jaw opening) at the corner: a habit of speech, not only a
        # constant shift an adapter could learn as a bias.
        if corner_offset:
            V[:, 1] -= corner_offset * CORNER_RAISE_CM * (0.5 + mouth_amp * max(float(jaw), 0.0)) * self.w_corner
        # Eyelids: the upper lid comes down 85 % of the opening, the lower rises 15 %.
        if blink > 0:
            for eye in self.eyes:
                step = blink * eye["gap"]
                V[eye["upper"], 1] += 0.85 * step
                V[eye["upper1"], 1] += 0.45 * step
                V[eye["upper2"], 1] += 0.12 * step
                V[eye["lower"], 1] -= 0.15 * step
                V[eye["lower1"], 1] -= 0.05 * step
                # Keep the iris centre between the lids so the eye's fan stays valid.
                mid = len(eye["upper"]) // 2
                yu0, yl0 = self.rest[eye["upper"][mid], 1], self.rest[eye["lower"][mid], 1]
                yu, yl = V[eye["upper"][mid], 1], V[eye["lower"][mid], 1]
                for i in [eye["iris"], *eye["iris_ring"]]:
                    r = (self.rest[i, 1] - yu0) / max(yl0 - yu0, 1e-6)
                    V[i, 1] = yu + np.clip(r, 0.05, 0.95) * (yl - yu)
        return V, interior, outer

    def pose(self, euler_deg: np.ndarray, translation_cm: np.ndarray):
        """Head motion -> (R, t) with camera = R @ canonical + t, and the motion matrix."""
        Rm = euler_to_matrix(euler_deg)
        q = self.neck_pivot @ self.R0.T + self.origin  # pivot in camera space
        R = Rm @ self.R0
        t = Rm @ (self.origin - q) + q + np.asarray(translation_cm, dtype=np.float64)
        return R, t, Rm, q

    def frame_vertices(self, face_can, interior_can, outer_cam, R, t, Rm, q, translation_cm):
        """All vertices in camera space: face mesh, outer rings, interior (in that order)."""
        face = face_can @ R.T + t
        inner = interior_can @ R.T + t
        rest = outer_cam
        moved = (rest - q) @ Rm.T + q + np.asarray(translation_cm)
        outer = rest + self.outer_weight[:, None] * (moved - rest)
        return np.concatenate([face, outer, inner])

    @property
    def texture_coords(self) -> np.ndarray:
        return self._texture_coords

    def tex68(self) -> np.ndarray:
        """Texture positions of the 68 keypoints (what the photo shows there)."""
        return self.tex_face[MESH_TO_68]

    def draw_order(self, cam_vertices: np.ndarray) -> np.ndarray:
        """Triangles back to front: mouth interior, outside, eyes, then the face by depth.

        The interior goes first so that the rings around the face hide any part of it that
        reaches past the face outline (a narrow jaw, a wide-open mouth); it only shows
        through the hole between the lips.
        """
        n_outer = len(self.outer_rest_cam)
        interior = self.interior_triangles + self.n_mesh + n_outer
        depth = cam_vertices[self.face_triangles, 2].mean(1)
        face = self.face_triangles[np.argsort(-depth, kind="stable")]
        return np.concatenate([interior, self.outer_triangles, self.eye_triangles, face])

    @property
    def n_interior_triangles(self) -> int:
        return len(self.interior_triangles)

    def landmarks68(self, face_can: np.ndarray) -> np.ndarray:
        return face_can[MESH_TO_68]


def _column_field(x: np.ndarray, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Interpolate per-column vectors (one per lip-contour column, located at
    `columns[:, 0]`) to every vertex by its x, held constant beyond the corners."""
    cx = columns[:, 0]
    order = np.argsort(cx)
    xq = np.clip(x, cx.min(), cx.max())
    return np.stack([np.interp(xq, cx[order], values[order, d]) for d in range(values.shape[1])], 1)


def _rotate_x_blend(P: np.ndarray, pivot: np.ndarray, angle: float, weight: np.ndarray) -> np.ndarray:
    if angle == 0.0:
        return P.copy()
    c, s = np.cos(angle), np.sin(angle)
    d = P - pivot
    rotated = np.stack([d[:, 0], c * d[:, 1] - s * d[:, 2], s * d[:, 1] + c * d[:, 2]], 1) + pivot
    return P + weight[:, None] * (rotated - P)


def _cavity_patch(n: int) -> np.ndarray:
    """Mouth interior: near-black under the upper teeth to a dim tongue red at the bottom."""
    t = np.linspace(0, 1, n)[:, None]
    top = np.array([16, 6, 8], np.float64)
    mid = np.array([52, 16, 20], np.float64)
    low = np.array([112, 48, 52], np.float64)
    colour = np.where(t[..., None] < 0.45, top + (mid - top) * (t[..., None] / 0.45),
                      mid + (low - mid) * ((t[..., None] - 0.45) / 0.55))
    side = 0.55 + 0.45 * np.sin(np.pi * np.linspace(0.0, 1.0, n))[None, :, None]
    return np.clip(colour * side, 0, 255).astype(np.uint8).reshape(n, n, 3)


def _recolour(image: np.ndarray, ident: Identity, pts: np.ndarray) -> np.ndarray:
    img = image.astype(np.float32)
    if any(g != 1.0 for g in ident.skin_tone):
        mask = np.zeros(image.shape[:2], np.float32)
        c = pts[FACE_OVAL, :2].mean(0)
        outline = c + (pts[FACE_OVAL, :2] - c) * 1.08
        cv2.fillPoly(mask, [np.round(outline).astype(np.int32)], 1.0)
        sigma = 0.04 * float(np.ptp(pts[FACE_OVAL, 1]))
        mask = cv2.GaussianBlur(mask, (0, 0), sigma)[..., None]
        img *= 1.0 + mask * (np.array(ident.skin_tone, np.float32) - 1.0)
    if ident.hue_shift or ident.saturation != 1.0:
        hsv = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = np.mod(hsv[..., 0] + ident.hue_shift / 2.0, 180.0)  # OpenCV hue is 0..180
        hsv[..., 1] = np.clip(hsv[..., 1] * ident.saturation, 0, 255)
        img = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    img *= ident.brightness
    return np.clip(img, 0, 255).astype(np.uint8)
