"""Paste rendered crops back into the full-size video a dataset was made from.

A renderer trained on a dataset draws the dataset's square crop (`size` x `size`). Paste-back
puts each rendered crop where the crop came from in the original video (the manifest's
`source` and `crop`), so the output has the source's full size and everything outside the
crop is the real video, untouched.

    paste = PasteBack.from_dataset("data/may", n_frames=motion.n_frames)   # every check, no work
    with VideoWriter(out, audio=audio) as writer:
        for frame in paste.frames(renderer.apply(motion, context)):
            writer.write(frame)                                           # paste.output_size

Which source frame: output frame i shows source frame `src[i]`, `src = ping_pong(n, n_frames)`
with n the dataset's frame count: the order in which a dataset-trained renderer's default
camera path loops the dataset's poses (`camera_io.camera_for_length`), so the rendered head
has the pose of the source frame it lands on. Source frames are decoded exactly as
`geneface process` decoded them (`media.iter_video_frames` at the dataset's fps: frame k is the
picture on screen at k / fps), so dataset frame k and source frame k are the same picture
whatever the source's own frame rate.

Blending: a weight per crop pixel, `out = src + w * (render - src)`:

- w = 1 on the dataset's person mask of frame src[i] (head + torso), dilated by `dilate` (a jaw
  that opens wider than in the source is still covered);
- outside it w falls smoothly (smoothstep of the distance) to 0 over `feather`;
- w is forced to exactly 0 on a band `border` wide along every crop side that has frame
  beyond it, rising smoothly over `feather` again: the crop's edge never shows, because there
  the output *is* the source. A side that lies on (or past) the frame edge has no band: there
  is nothing beyond it to blend into, so the person is rendered right to the frame edge.

All three are fractions of the crop side, so they mean the same at any resolution. A crop that
extends past the frame (padding) is clipped to it: only the part inside is pasted.

Memory stays flat: nothing holds the video. Source frames are decoded lazily through a small
cache of at most `cache_bytes` of frames (about 40 frames of 1080p by default). Forward runs
of the ping-pong order stream from one decoder. A backward run is served in blocks: the
block of cache-size frames ending at the wanted one is decoded forward after a seek (to a
keyframe at least `SEEK_MARGIN_S` before it; a fresh decoder per block) and then used in
reverse. A turnaround reuses the frames still in the cache. Decoding cost of a backward pass
is about one pass plus one keyframe interval per block; nothing is written to disk (a raw
frame cache of a 5-minute 1080p video would be 46 GB, a JPEG one would not give back the
source's exact pixels).

A person of several clips (`geneface.core.person`) has a source video per clip: paste-back
pastes onto one clip's, with that clip's crop, masks and poses, as onto a one-video dataset
(`clip`: its name; default the person's first clip, said on stderr by the runner). A clip name
the person does not have, or a clip named for a one-video dataset, is refused in one line.

Odd sizes: H.264 yuv420p (the VideoWriter) needs even widths and heights, so a source with
an odd width or height is padded by repeating its last column or row; `output_size` is the
padded size and `source_size` the real one. Every source pixel is kept.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Iterator, Optional

import attrs
import numpy as np

from geneface.core.camera_io import ping_pong
from geneface.core.dataset import MASK_EXT, MASKS_DIR, Dataset, frame_name
from geneface.core.person import open_dataset
from geneface.core.media import _open, probe_video, sha256_file
from geneface.core.prefetch import prefetch
from geneface.errors import MediaError, StageMismatchError, UsageError

# Seek this far before the first wanted frame: an mp4 seek lands on a keyframe by decode
# time, whose presentation time can be later than asked when the stream has B-frames.
SEEK_MARGIN_S = 1.0
# A forward jump up to this many frames is decoded through rather than seeked.
SKIP_THROUGH = 50
DEFAULT_CACHE_BYTES = 256 << 20
# Frames (source + weights) prepared ahead on a thread while the renderer works.
PREFETCH_DEPTH = 3


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@attrs.frozen
class Blend:
    """How a rendered crop is blended in; every length is a fraction of the crop side."""

    dilate: float = 0.02  # grow the person mask by this much (covers a wider jaw)
    feather: float = 0.04  # width of the smooth fall-off, from the mask and from the border band
    border: float = 0.015  # band along inner crop sides where the weight is exactly 0

    def __attrs_post_init__(self) -> None:
        for name in ("dilate", "feather", "border"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value < 0.5):
                raise UsageError(f"paste-back: '{name}' must be a fraction of the crop side in [0, 0.5), got {value!r}")
        if self.border + self.feather >= 0.5:
            raise UsageError(f"paste-back: border + feather must stay under half the crop side, got {self.border + self.feather}")


_DEFAULT = Blend()


@attrs.frozen
class Placement:
    """Where the crop goes: the square (x0, y0, side) in source pixels, clipped to the frame."""

    x0: int
    y0: int
    side: int
    size: int  # the rendered crop's side
    width: int  # the source frame's
    height: int

    @property
    def frame_box(self) -> tuple[slice, slice]:
        """(rows, cols) of the frame that the crop covers (clipped to the frame)."""
        return (slice(max(self.y0, 0), min(self.y0 + self.side, self.height)),
                slice(max(self.x0, 0), min(self.x0 + self.side, self.width)))

    @property
    def crop_box(self) -> tuple[slice, slice]:
        """The same pixels in crop coordinates (side x side)."""
        rows, cols = self.frame_box
        return (slice(rows.start - self.y0, rows.stop - self.y0), slice(cols.start - self.x0, cols.stop - self.x0))

    @property
    def inner_sides(self) -> tuple[bool, bool, bool, bool]:
        """(left, right, top, bottom): True where the frame continues beyond that crop side."""
        return (self.x0 > 0, self.x0 + self.side < self.width, self.y0 > 0, self.y0 + self.side < self.height)

    def overlaps_frame(self) -> bool:
        rows, cols = self.frame_box
        return rows.stop > rows.start and cols.stop > cols.start


@attrs.frozen
class SourceVideo:
    """The dataset's source video as paste-back reads it: n frames at fps, width x height."""

    path: Path
    width: int
    height: int
    fps: float
    n_frames: int


def _decode_from(video: SourceVideo, first: int, seek: bool = True) -> Iterator[np.ndarray]:
    """Frames first, first + 1, ..., n - 1 of `video`: the same pictures `iter_video_frames`
    yields at those indices (same rule: frame k is the latest one shown at k / fps, the first
    one before it starts, the last one held to the end), decoding after a seek."""
    import av

    n, fps, path = video.n_frames, video.fps, video.path
    container = _open(path)
    produced = first
    missed = False  # the seek landed past the wanted instant
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        target = first / fps - SEEK_MARGIN_S
        seeked = seek and target > 0
        previous = None  # av.VideoFrame, converted only when shown (skipped frames never are)
        shown = None  # (the frame last converted, its array)
        try:
            if seeked:
                container.seek(int((target + start) / float(stream.time_base)), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * stream.time_base) - start
                if previous is None and seeked and t > first / fps + 1e-6:
                    missed = True
                    break
                while produced < n and (produced / fps) < t - 1e-6:
                    if previous is None:  # the stream's first frame starts late: show it from t=0
                        previous = frame
                    if shown is None or shown[0] is not previous:
                        shown = (previous, previous.to_ndarray(format="rgb24"))
                    yield shown[1]
                    produced += 1
                previous = frame
                if produced >= n:
                    return
        except av.error.FFmpegError as exc:
            raise MediaError(f"{path}: decoding failed at frame {produced} ({exc})") from None
    if seeked and (missed or previous is None):
        # Nothing was yielded yet: decode from the start, as iter_video_frames does.
        yield from _decode_from(video, first, seek=False)
        return
    if previous is None:
        raise MediaError(f"{path}: video has no frames")
    last = shown[1] if shown is not None and shown[0] is previous else previous.to_ndarray(format="rgb24")
    while produced < n:  # hold the last frame to the end of the stated duration
        yield last
        produced += 1


class _SourceFrames:
    """Source frames by index, for an order that runs forward and backward (ping-pong),
    holding at most `capacity` decoded frames (see the module docstring)."""

    def __init__(self, video: SourceVideo, capacity: int) -> None:
        self.video = video
        self.capacity = max(1, int(capacity))
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._stream: Optional[Iterator[np.ndarray]] = None
        self._next = -1  # index the open stream yields next
        self.blocks = 0  # decoders opened (for tests and curiosity)

    def _keep(self, index: int, frame: np.ndarray) -> None:
        self.cache[index] = frame
        self.cache.move_to_end(index)
        while len(self.cache) > self.capacity:
            self.cache.popitem(last=False)

    def _open_stream(self, first: int) -> None:
        self.close()
        self._stream = _decode_from(self.video, first)
        self._next = first
        self.blocks += 1

    def _pull(self) -> np.ndarray:
        frame = next(self._stream)
        self._keep(self._next, frame)
        self._next += 1
        return frame

    def get(self, index: int, backward: bool) -> np.ndarray:
        if index in self.cache:
            self.cache.move_to_end(index)
            return self.cache[index]
        if backward:
            # Decode the block that ends at `index` forward, then serve it from the cache in
            # reverse; the stream is left at the block's end (useless afterwards: closed).
            first = max(0, index - self.capacity + 1)
            self._open_stream(first)
            while self._next <= index:
                self._pull()
            self.close()
            return self.cache[index]
        if self._stream is None or not (self._next <= index <= self._next + SKIP_THROUGH):
            self._open_stream(index)
        while self._next < index:
            self._pull()
        return self._pull()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def in_order(self, order: np.ndarray) -> Iterator[np.ndarray]:
        try:
            for k, index in enumerate(order):
                yield self.get(int(index), backward=k > 0 and index < order[k - 1])
        finally:
            self.close()


@attrs.define(eq=False)
class PasteBack:
    """Rendered crops of a dataset -> full-size frames of its source video (module docstring)."""

    dataset: Dataset
    source: SourceVideo
    placement: Placement
    n_frames: int
    blend: Blend = attrs.field(factory=Blend)
    cache_bytes: int = DEFAULT_CACHE_BYTES
    clip: Optional[str] = None  # of a person of several clips: the clip pasted onto (`dataset` is its)

    @classmethod
    def from_dataset(
        cls,
        dataset_path,
        n_frames: int,
        feather: float = _DEFAULT.feather,
        dilate: float = _DEFAULT.dilate,
        border: float = _DEFAULT.border,
        source: Optional[Path] = None,
        verify_sha256: bool = True,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        clip: Optional[str] = None,
    ) -> "PasteBack":
        """Check everything before any work: the dataset (of a person, the clip `clip`, default
        its first), its source video (there, the same size in bytes, the same sha256 unless
        `verify_sha256` is False (about a second per GB), the same picture size and frame count),
        its crop and masks. `source` points at the video when it has moved since processing.
        One-line UsageError naming the file."""
        ds = dataset_path if isinstance(dataset_path, Dataset) else open_dataset(dataset_path)
        ds, clip = paste_clip(ds, clip)
        manifest = ds.manifest
        if not isinstance(n_frames, (int, np.integer)) or isinstance(n_frames, bool) or n_frames < 1:
            raise UsageError(f"paste-back: n_frames must be a positive whole number, got {n_frames!r}")
        blend = Blend(dilate=dilate, feather=feather, border=border)
        recorded = manifest["source"]
        path = Path(source) if source is not None else Path(recorded["path"])
        video = _check_source(path, recorded, ds, verify_sha256)
        placement = _check_crop(manifest, video, ds)
        _check_masks(ds, placement.size)
        return cls(dataset=ds, source=video, placement=placement, n_frames=int(n_frames), blend=blend,
                   cache_bytes=int(cache_bytes), clip=clip)

    # -- shape of the output -----------------------------------------------------------
    @property
    def source_size(self) -> tuple[int, int]:
        """(height, width) of the source video."""
        return self.source.height, self.source.width

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of the frames `frames` yields: the source's, rounded up to even."""
        return self.source.height + self.source.height % 2, self.source.width + self.source.width % 2

    @property
    def order(self) -> np.ndarray:
        """Source frame of each output frame: ping_pong(dataset frames, n_frames)."""
        return ping_pong(self.dataset.n_frames, self.n_frames)

    @property
    def cache_frames(self) -> int:
        return max(1, self.cache_bytes // (3 * self.source.width * self.source.height))

    # -- the work ----------------------------------------------------------------------
    def source_frames(self) -> Iterator[np.ndarray]:
        """The decoded source frame (uint8 H x W x 3, unpadded) of each output frame, in order."""
        return _SourceFrames(self.source, self.cache_frames).in_order(self.order)

    def weights(self, index: int) -> np.ndarray:
        """float32 (side, side) blend weight of source frame `index`, in the crop's source pixels."""
        import cv2

        p, b = self.placement, self.blend
        mask = self.dataset.mask(index)
        person = (mask > 0).astype(np.uint8)
        if not person.any():
            w = np.zeros((p.size, p.size), np.float32)
        else:
            r = int(round(b.dilate * p.size))
            if r > 0:
                person = cv2.dilate(person, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
            # Distance of every pixel to the (dilated) person: 0 inside, so w is exactly 1 there.
            dist = cv2.distanceTransform(1 - person, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
            feather = max(b.feather * p.size, 1.0)
            w = _smoothstep(1.0 - dist / feather).astype(np.float32)
        if p.side != p.size:
            w = cv2.resize(w, (p.side, p.side), interpolation=cv2.INTER_LINEAR)
        # The border band at source resolution, so its zeros are exact after any resize.
        band = max(b.border * p.side, 2.0)
        ramp = max(b.feather * p.side, 1.0)
        left, right, top, bottom = p.inner_sides
        pos = np.arange(p.side, dtype=np.float32)
        from_start = _smoothstep((pos - band) / ramp)  # pixel distance to the first row / column
        from_end = from_start[::-1]
        wx = np.minimum(from_start if left else 1.0, from_end if right else 1.0) * np.ones(p.side, np.float32)
        wy = np.minimum(from_start if top else 1.0, from_end if bottom else 1.0) * np.ones(p.side, np.float32)
        return (w * np.outer(wy, wx)).astype(np.float32)

    def _prepared(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(source frame, weights) of each output frame: decoding and masks, done ahead."""
        for index, frame in zip(self.order, self.source_frames()):
            yield frame, self.weights(int(index))

    def paste(self, rendered: np.ndarray, source: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """One output frame: `rendered` (size x size) pasted on a copy of `source`."""
        import cv2

        p = self.placement
        if rendered.dtype != np.uint8 or rendered.shape != (p.size, p.size, 3):
            raise StageMismatchError(
                f"paste-back: a rendered frame is {rendered.dtype} {tuple(rendered.shape)}, expected uint8 "
                f"({p.size}, {p.size}, 3), the crop of {self.dataset.path}")
        if p.side != p.size:
            # AREA when shrinking (no aliasing), CUBIC when enlarging (sharper than linear).
            interp = cv2.INTER_AREA if p.side < p.size else cv2.INTER_CUBIC
            rendered = cv2.resize(rendered, (p.side, p.side), interpolation=interp)
        out = source.copy()
        rows, cols = p.frame_box
        crows, ccols = p.crop_box
        w = weights[crows, ccols, None]
        s = out[rows, cols].astype(np.float32)
        r = rendered[crows, ccols].astype(np.float32)
        # w = 0 gives s back exactly and w = 1 gives r exactly (integers in float32).
        out[rows, cols] = np.rint(s + w * (r - s)).astype(np.uint8)
        pad_h, pad_w = self.output_size[0] - out.shape[0], self.output_size[1] - out.shape[1]
        if pad_h or pad_w:
            out = np.pad(out, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        return out

    def frames(self, rendered: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """For each rendered crop (uint8 size x size x 3), the full-size output frame
        (uint8 output_size x 3). Stops when `rendered` does; more than n_frames is an error."""
        prepared = prefetch(self._prepared(), depth=PREFETCH_DEPTH)
        try:
            for i, crop in enumerate(rendered):
                item = next(prepared, None)
                if item is None:
                    raise StageMismatchError(f"paste-back: more rendered frames than the {self.n_frames} asked for")
                try:
                    yield self.paste(np.asarray(crop), *item)
                except StageMismatchError as exc:
                    raise StageMismatchError(f"frame {i}: {exc}") from None
        finally:
            prepared.close()


def paste_clip(ds: Dataset, clip: Optional[str] = None) -> tuple[Dataset, Optional[str]]:
    """The one video paste-back pastes onto, and its clip's name: `ds` itself for one video; of
    a person of several clips, the clip named `clip` (default the first)."""
    if ds.n_clips == 1:
        if clip is not None:
            raise UsageError(f"paste-back: clip '{clip}': dataset {ds.path} is one video, not a person of several "
                             "clips; leave the clip out")
        return ds, None
    names = [c.name for c in ds.clips]
    if clip is None:
        return ds.clip_dataset(0), names[0]
    if clip not in names:
        from geneface.core.text import did_you_mean

        raise UsageError(f"paste-back: person {ds.path} has no clip '{clip}' (its clips: "
                         f"{', '.join(names[:5])}{', ...' if len(names) > 5 else ''}){did_you_mean(clip, names)}")
    return ds.clip_dataset(names.index(clip)), clip


def _check_source(path: Path, recorded: dict, ds: Dataset, verify_sha256: bool) -> SourceVideo:
    where = f"the source video of dataset {ds.path}"
    if not path.exists():
        raise UsageError(f"{path}: no such file: {where} is gone (paste-back needs it; give its new place if it moved)")
    if not path.is_file():
        raise UsageError(f"{path}: not a file ({where})")
    expected_bytes = recorded.get("size_bytes")
    actual_bytes = path.stat().st_size
    if expected_bytes is not None and actual_bytes != expected_bytes:
        raise UsageError(f"{path}: changed since dataset {ds.path} was made ({actual_bytes} bytes, its manifest says {expected_bytes})")
    if verify_sha256 and recorded.get("sha256") and sha256_file(path) != recorded["sha256"]:
        raise UsageError(f"{path}: changed since dataset {ds.path} was made (its sha256 differs from the manifest's)")
    info = probe_video(path)  # UsageError / MediaError naming the file
    if (info.width, info.height) != (recorded["width"], recorded["height"]):
        raise UsageError(f"{path}: {info.width}x{info.height}, but dataset {ds.path} was made from a "
                         f"{recorded['width']}x{recorded['height']} video")
    n = info.n_frames(ds.fps)
    if n != ds.n_frames:
        raise UsageError(f"{path}: {n} frames at {ds.fps:g} fps, but dataset {ds.path} has {ds.n_frames}")
    return SourceVideo(path=path, width=info.width, height=info.height, fps=ds.fps, n_frames=n)


def _check_crop(manifest: dict, video: SourceVideo, ds: Dataset) -> Placement:
    crop = manifest["crop"]
    file = ds.path / "manifest.json"
    values = {k: crop[k] for k in ("x0", "y0", "side", "size")}
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise UsageError(f"{file}: 'crop.{key}' must be a whole number, got {value!r}")
    if values["side"] < 1:
        raise UsageError(f"{file}: 'crop.side' must be positive, got {values['side']}")
    placement = Placement(**values, width=video.width, height=video.height)
    if not placement.overlaps_frame():
        raise UsageError(f"{file}: the crop ({values['x0']}, {values['y0']}) side {values['side']} lies outside "
                         f"the {video.width}x{video.height} source frame")
    return placement


def _check_masks(ds: Dataset, size: int) -> None:
    folder = ds.path / MASKS_DIR
    have = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    for i in range(ds.n_frames):
        if frame_name(i, MASK_EXT) not in have:
            raise UsageError(f"{folder / frame_name(i, MASK_EXT)}: missing (paste-back needs every frame's mask)")
    first = ds.mask(0)
    if first.shape != (size, size):
        raise UsageError(f"{folder / frame_name(0, MASK_EXT)}: {first.shape[1]}x{first.shape[0]}, "
                         f"the crop is {size}x{size}")
