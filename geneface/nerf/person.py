"""What every person NeRF shares (`hashgrid_nerf`'s `TalkingHeadNet`, `vanilla_nerf`'s
`VanillaNeRFNet`): the person's canvas, i.e. everything a frame needs that is not motion.

- `PersonCanvas`: the `nn.Module` base class both models inherit. Its buffers are part of the
  renderer's checkpoint (top-level state-dict keys, so a checkpoint renders on a machine that
  never saw the dataset):
  `plate` (the background, uint8: H x W x 3 for a dataset of one video, C x H x W x 3 for a
  person of C clips, one plate per clip, held-out clips included), `c2w` (T x 4 x 4, the
  training video's poses, every clip's one after another: the default camera path),
  `intrinsics` (the training camera's focal, cx, cy in pixels),
  `head_region` / `person_region` (H x W bool: where a head / a person was ever seen in
  training, grown by a margin), `pose_mean` / `pose_std` (statistics of the training poses'
  codes). It fills them from a dataset (`set_canvas`), makes cameras (`camera`), pose
  conditions (`normalised_pose`), the torso's pixel coordinates (`pixel_coords`), and draws a
  whole frame (`frame_canvas`, `draw_frame`) from a model's head and torso.
- `pose_codes`, `POSE_DIM`: a camera-to-world as the 9 numbers the torso is conditioned on.
- `FrameCanvas`: what drawing one frame starts from (pixels, plate, where head rays go).

Clips. A frame is drawn over one clip's plate (`clip`: its index in the person's clips; None:
the first). A one-video dataset keeps its (H, W, 3) plate, so its checkpoints are as they
were and older ones load unchanged.

Cameras. A frame is drawn with the camera it is handed: rays are cast with its focal length
and principal point. With the training camera (within float32 rounding: a checkpoint keeps its
intrinsics in float32) head rays go only where a head was seen in training (`head_region`).
Either way a model that knows where its head can show in this frame (`head_footprint`:
`hashgrid_nerf`'s occupancy grid, geneface.nerf.footprint) narrows that to those pixels. With another focal length or principal point that region no longer
bounds the head (it is the training camera's image-space union of head masks), so head rays
are cast over the whole frame and only those that cross the head's box are rendered; the head
is drawn over the torso inside the person region and over the plate outside it. The torso
layer and the plate stay as trained: both live in the training camera's image space, so they
neither grow nor move with the handed camera.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import attrs
import numpy as np
import torch
from torch import nn

from geneface.core.records import Camera
from geneface.nerf.adaptive import render_sparse_then_fill
from geneface.nerf.footprint import Footprint
from geneface.nerf.rays import Rays, all_pixels, camera_rays, intersect_box
from geneface.nerf.volume import composite

POSE_DIM = 9  # width of `pose_codes`: two rotation columns and the camera position
# Under a head this close to opaque the torso is not drawn (it could add at most 1e-3).
OPAQUE_GAP = 1e-3

# (focal, cx, cy) in pixels
Intrinsics = tuple[float, float, float]
# rays (N) and where each may start (N,; None: anywhere) -> premultiplied rgb (N, 3), opacity (N,)
HeadFn = Callable[[Rays, Optional[torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]
# integer pixels (N, 2) -> premultiplied rgb (N, 3), opacity (N,)
TorsoFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _chunks(index: torch.Tensor, size: int) -> tuple[torch.Tensor, ...]:
    # `split` of an empty tensor yields one empty part; a field is never called with no rays.
    return index.split(size) if len(index) else ()


def pose_codes(c2w: torch.Tensor) -> torch.Tensor:
    """(F, 4, 4) camera-to-world -> (F, 9): the first two rotation columns and the camera
    position; the head is fixed, so this is the head's pose relative to the camera."""
    return torch.cat([c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 3]], dim=-1)


def intrinsics_of(camera: Camera) -> Intrinsics:
    """A camera's (focal, cx, cy); cx / cy None is the image centre."""
    cx, cy = camera.principal_point
    return float(camera.focal), float(cx), float(cy)


def resolve_clip(clips: Sequence[str], clip: Union[int, str, None]) -> int:
    """The index of `clip` (a name among `clips`, or an index; None: the first) among a
    person's clips; a ValueError naming the clips otherwise. A model of one video has one
    clip, index 0, whatever its name."""
    n = max(1, len(clips))
    if clip is None:
        return 0
    if isinstance(clip, str) and clip in clips:
        return list(clips).index(clip)
    if isinstance(clip, int) or (isinstance(clip, str) and clip.lstrip("-").isdigit()):
        k = int(clip)
        if 0 <= k < n:
            return k
        raise ValueError(f"clip {k} is out of range: the renderer was trained on {n} clip(s) (0-{n - 1})")
    names = ", ".join(clips) if clips else "one video, clip 0"
    raise ValueError(f"no clip named '{clip}' (the renderer's clips: {names})")


def clip_ranges(clip_frames: Sequence[int], n_poses: int) -> list[tuple[int, int]]:
    """Each clip's [start, end) in the poses; one clip of all of them for a one-video model."""
    if not clip_frames:
        return [(0, n_poses)]
    ends = np.cumsum(clip_frames).tolist()
    return [(int(e - n), int(e)) for e, n in zip(ends, clip_frames)]


@attrs.frozen(eq=False)
class FrameCanvas:
    """What drawing one frame starts from.

    `person`: flat indices of the person region's pixels, `pixels` their (x, y); `on_head`:
    indices into `person` of the pixels that get head rays; `beyond`: flat indices outside the
    person region that get head rays too (empty with the training camera); `image`: the plate
    as float colours (H * W, 3), drawn over in place; `camera`: the frame's camera (one pose);
    `start`: per flat pixel, the distance along its ray before which the head is empty (None:
    not known)."""

    person: torch.Tensor
    pixels: torch.Tensor
    on_head: torch.Tensor
    beyond: torch.Tensor
    image: torch.Tensor
    camera: Camera
    start: Optional[torch.Tensor] = None

    def head_start(self, flat: torch.Tensor) -> Optional[torch.Tensor]:
        return None if self.start is None else self.start[flat]


class PersonCanvas(nn.Module):
    """Base class of a person NeRF: the shared buffers and the drawing of a whole frame (see
    the module's docstring). A subclass gives the head's box (`head_box`) and draws a frame
    with `draw_frame`, passing its own head and torso."""

    def __init__(self, size: int, n_poses: int, n_clips: int = 1):
        super().__init__()
        self.side = size
        s = size
        # One video: (H, W, 3), the checkpoint format before persons of several clips.
        plate_shape = (s, s, 3) if n_clips == 1 else (n_clips, s, s, 3)
        self.register_buffer("plate", torch.zeros(*plate_shape, dtype=torch.uint8))
        self.register_buffer("c2w", torch.eye(4).repeat(n_poses, 1, 1))
        self.register_buffer("intrinsics", torch.tensor([float(s), s / 2.0, s / 2.0]))  # focal, cx, cy
        self.register_buffer("head_region", torch.ones(s, s, dtype=torch.bool))
        self.register_buffer("person_region", torch.ones(s, s, dtype=torch.bool))
        self.register_buffer("pose_mean", torch.zeros(POSE_DIM))
        self.register_buffer("pose_std", torch.ones(POSE_DIM))

    # -- filled from the training data ---------------------------------------------------
    @torch.no_grad()
    def set_canvas(self, plate: np.ndarray, camera: Camera, head_region: np.ndarray, person_region: np.ndarray,
                   train_frames: np.ndarray) -> None:
        """The plate ((H, W, 3), or one per clip (C, H, W, 3)), the training camera (its poses
        and intrinsics), the regions and the statistics of the pose codes of `train_frames`."""
        self.plate.copy_(torch.from_numpy(np.asarray(plate)).reshape(self.plate.shape))
        self.c2w.copy_(torch.from_numpy(camera.c2w))
        self.intrinsics.copy_(torch.tensor(intrinsics_of(camera)))
        self.head_region.copy_(torch.from_numpy(head_region))
        self.person_region.copy_(torch.from_numpy(person_region))
        codes = pose_codes(torch.from_numpy(camera.c2w[train_frames]))
        self.pose_mean.copy_(codes.mean(0))
        self.pose_std.copy_(codes.std(0).clamp(min=1e-4))

    # -- plates ---------------------------------------------------------------------------
    def plates(self) -> torch.Tensor:
        """(C, H, W, 3) uint8: one plate per clip."""
        return self.plate if self.plate.dim() == 4 else self.plate[None]

    def check_clip(self, clip: Optional[int]) -> int:
        """`clip` (None: the first) as an index into the plates; a ValueError out of range."""
        k = 0 if clip is None else int(clip)
        if not 0 <= k < len(self.plates()):
            raise ValueError(f"clip {k} out of range: the renderer holds {len(self.plates())} clip plate(s)")
        return k

    def plate_colours(self, flat: torch.Tensor, clip: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Float colours (N, 3) in [0, 1] of plate pixels `flat` (N,), each from its clip's
        plate (`clip` (N,); None: the first clip's)."""
        plates = self.plates().reshape(len(self.plates()), -1, 3)
        if clip is None or len(plates) == 1:
            return plates[0][flat].float() / 255.0
        return plates[clip, flat].float() / 255.0

    # -- cameras and conditions ----------------------------------------------------------
    def trained_intrinsics(self) -> Intrinsics:
        focal, cx, cy = (float(v) for v in self.intrinsics)
        return focal, cx, cy

    def is_trained_camera(self, intrinsics: Optional[Intrinsics]) -> bool:
        """Whether `intrinsics` (None: the checkpoint's) are the training camera's, up to the
        float32 rounding of the checkpoint (a dataset's camera, read in float64, is one)."""
        if intrinsics is None:
            return True
        return all(abs(float(a) - b) <= 1e-5 * max(1.0, abs(b)) for a, b in zip(intrinsics, self.trained_intrinsics()))

    def camera(self, c2w: np.ndarray, intrinsics: Optional[Intrinsics] = None) -> Camera:
        """A Camera of the renderer's size with poses `c2w` (T x 4 x 4) and `intrinsics`
        (focal, cx, cy; None: the training camera's)."""
        focal, cx, cy = self.trained_intrinsics() if intrinsics is None else intrinsics
        return Camera(focal=focal, width=self.side, height=self.side, c2w=c2w, cx=cx, cy=cy)

    def normalised_pose(self, c2w: torch.Tensor) -> torch.Tensor:
        """(F, 4, 4) -> pose codes (F, 9) normalised with the training poses' statistics."""
        return (pose_codes(c2w) - self.pose_mean) / self.pose_std

    def pixel_coords(self, pixels: torch.Tensor) -> torch.Tensor:
        """Integer pixels (N, 2) -> their centres in [-1, 1]^2 (the torso's input)."""
        return (pixels.float() + 0.5) / self.side * 2.0 - 1.0

    def head_box(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's axis-aligned box (lo, hi) in the canonical frame."""
        raise NotImplementedError

    def head_footprint(self, camera: Camera) -> Optional[Footprint]:
        """Where the head can show in this frame and where each ray may start (a superset:
        geneface.nerf.footprint), or None when the model cannot tell (every head ray is cast)."""
        return None

    # -- a whole frame -------------------------------------------------------------------
    def person_pixels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The person region's flat indices and their (x, y) pixels, kept until the region
        changes (it is fixed after training; every frame asks)."""
        region = self.person_region
        key = (region.data_ptr(), region._version)
        if getattr(self, "_person_key", None) != key:
            s = self.side
            person = torch.nonzero(region.reshape(-1)).squeeze(1)
            self._person_cache = (person, torch.stack([person % s, person // s], dim=-1))
            self._person_key = key
        return self._person_cache

    def frame_canvas(self, c2w: torch.Tensor, intrinsics: Optional[Intrinsics] = None,
                     clip: Optional[int] = None) -> FrameCanvas:
        """Where one frame with camera-to-world `c2w` (4, 4) and `intrinsics` gets head rays
        and torso (see the module's docstring), and the plate of clip `clip` (None: the first)
        to draw on. A model with a `head_footprint` casts head rays only on pixels its head can
        cover in this frame."""
        s, device = self.side, self.plate.device
        person, pixels = self.person_pixels()
        image = self.plates()[self.check_clip(clip)].reshape(-1, 3).float() / 255.0
        trained = self.is_trained_camera(intrinsics)
        camera = self.camera(c2w[None].cpu().numpy(), None if trained else intrinsics)
        footprint = self.head_footprint(camera)
        if trained:
            head = self.head_region.reshape(-1)
            beyond = torch.zeros(0, dtype=torch.long, device=device)
        else:
            # The training head region does not bound the head seen through another camera:
            # every pixel whose ray crosses the head's box may get a head ray.
            lo, hi = self.head_box()
            _, _, head = intersect_box(camera_rays(camera, 0, all_pixels(s, s, device)), lo, hi)
        if footprint is not None:
            head = head & footprint.covered
        if not trained:
            beyond = torch.nonzero(head & ~self.person_region.reshape(-1)).squeeze(1)
        on_head = torch.nonzero(head[person]).squeeze(1)
        return FrameCanvas(person, pixels, on_head, beyond, image, camera,
                           None if footprint is None else footprint.start)

    @torch.no_grad()
    def draw_frame(self, c2w: torch.Tensor, head: HeadFn, torso: TorsoFn, head_chunk: int, torso_chunk: int,
                   intrinsics: Optional[Intrinsics] = None, fill_threshold: Optional[float] = None,
                   clip: Optional[int] = None) -> torch.Tensor:
        """One frame, float (H, W, 3) in [0, 1]: `head` over `torso` over the plate in the
        person region, `head` over the plate where `beyond` says, the plate elsewhere; head
        rays `head_chunk` at a time, torso pixels `torso_chunk` at a time. The torso is not
        evaluated under an opaque head (opacity above `1 - OPAQUE_GAP`): it could add at
        most a quarter of a uint8 level there. `fill_threshold`: cast a quarter of the head's
        rays and interpolate the rest where they agree within it (geneface.nerf.adaptive);
        None: every head ray. `clip`: whose plate (None: the first clip's)."""
        canvas = self.frame_canvas(c2w, intrinsics, clip)
        person, pixels, image, camera = canvas.person, canvas.pixels, canvas.image, canvas.camera
        device = image.device
        head_rgb = torch.zeros(len(person), 3, device=device)
        head_alpha = torch.zeros(len(person), device=device)

        def head_at(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # Head rays through person pixels `index`, `head_chunk` at a time.
            rgb, alpha = torch.zeros(len(index), 3, device=device), torch.zeros(len(index), device=device)
            for part in _chunks(torch.arange(len(index), device=device), head_chunk):
                rgb[part], alpha[part] = head(camera_rays(camera, 0, pixels[index[part]]),
                                              canvas.head_start(person[index[part]]))
            return rgb, alpha

        on_head = canvas.on_head
        if fill_threshold is None:
            head_rgb[on_head], head_alpha[on_head] = head_at(on_head)
        else:
            head_rgb[on_head], head_alpha[on_head], _ = render_sparse_then_fill(
                pixels[on_head], self.side, lambda k: head_at(on_head[k]), fill_threshold)
        opaque = head_alpha >= 1.0 - OPAQUE_GAP
        under = person[opaque]
        image[under] = composite([(head_rgb[opaque], head_alpha[opaque])], image[under])
        for part in _chunks(torch.nonzero(~opaque).squeeze(1), torso_chunk):
            t_rgb, t_alpha = torso(pixels[part])
            image[person[part]] = composite([(head_rgb[part], head_alpha[part]), (t_rgb, t_alpha)], image[person[part]])
        s = self.side
        for part in _chunks(canvas.beyond, head_chunk):
            rgb, alpha = head(camera_rays(camera, 0, torch.stack([part % s, part // s], dim=-1)), canvas.head_start(part))
            image[part] = composite([(rgb, alpha)], image[part])
        return image.reshape(s, s, 3).clamp(0.0, 1.0)
