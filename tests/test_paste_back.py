"""Paste-back: rendered crops put back into the dataset's full-size source video.

Everything is made here: a small non-square source video (a textured, moving pattern, H.264
with B-frames and short keyframe intervals so seeks matter), and a minimal dataset folder
whose manifest points at it (person masks drawn per frame, manifest through `write_manifest`
with the source fingerprint `geneface process` itself records). The "rendered" crops are a
strongly different colour, the worst case for a seam.
"""

from __future__ import annotations

import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from geneface.core.camera_io import ping_pong
from geneface.core.dataset import MASKS_DIR, Dataset, frame_name, write_manifest
from geneface.core.media import VideoWriter, iter_video_frames, probe_video
from geneface.core import paste_back
from geneface.core.paste_back import PasteBack
from geneface.errors import StageMismatchError, UsageError
from geneface.processing.source import inspect_source

H, W = 96, 160  # non-square on purpose (and wider than tall, like most videos)


def pattern(i: int, h: int = H, w: int = W) -> np.ndarray:
    """A smooth but textured picture that moves with i, different in every frame."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 90 * np.sin((x + 3 * i) / 7.0) * np.cos(y / 9.0)
    g = 128 + 90 * np.sin((y - 2 * i) / 6.0 + x / 23.0)
    b = 64 + 1.2 * x * (255 - 64) / w * 0.5 + 2 * i
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def write_source(path: Path, n: int, h: int = H, w: int = W, fps: int = 25, codec: str = "libx264") -> Path:
    import av

    fmt = "matroska" if codec == "ffv1" else "mp4"
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        if codec == "libx264":
            stream.pix_fmt = "yuv420p"
            stream.options = {"g": "8", "bf": "2", "crf": "18", "preset": "veryfast"}
        else:  # lossless, takes odd sizes
            stream.pix_fmt = "yuv444p"
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(n):
            vf = av.VideoFrame.from_ndarray(pattern(i, h, w), format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def person_mask(i: int, size: int) -> np.ndarray:
    """Head (an ellipse that sways with i) over a torso running to the crop's bottom edge."""
    import cv2

    mask = np.zeros((size, size), np.uint8)
    cx = int(size * (0.5 + 0.03 * np.sin(i / 3.0)))
    cv2.rectangle(mask, (int(0.2 * size), int(0.68 * size)), (int(0.8 * size), size - 1), 2, -1)
    cv2.ellipse(mask, (cx, int(0.42 * size)), (int(0.16 * size), int(0.22 * size)), 0, 0, 360, 1, -1)
    return mask


def make_dataset(folder: Path, video: Path, crop: dict) -> Path:
    """A minimal complete dataset of `video`: masks and a manifest (what paste-back reads)."""
    import cv2

    source = inspect_source(video)
    n = source.info.n_frames(25.0)
    (folder / MASKS_DIR).mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(folder / MASKS_DIR / frame_name(i, ".png")), person_mask(i, crop["size"]))
    n_train = n - int(np.ceil(n / 11))
    write_manifest(folder, n, source=source.to_json(), crop=crop, splits={"train": [0, n_train], "val": [n_train, n]})
    return folder


def rendered(n: int, size: int, colour=(230, 30, 200)) -> list[np.ndarray]:
    """Crops of another colour (with some texture) than anything in the source."""
    rng = np.random.default_rng(0)
    base = np.array(colour, np.int16)
    return [np.clip(base + rng.integers(-8, 9, (size, size, 3)), 0, 255).astype(np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """30 frames of 96 x 160; crop inside the frame on all four sides, enlarged 64 -> 72."""
    root = tmp_path_factory.mktemp("paste")
    video = write_source(root / "source.mp4", 30)
    crop = {"x0": 50, "y0": 10, "side": 72, "size": 64}
    ds = make_dataset(root / "ds", video, crop)
    decoded = list(iter_video_frames(video))  # the test's own reference: what processing saw
    return ds, video, crop, decoded


def crop_region(crop: dict, h: int = H, w: int = W) -> np.ndarray:
    inside = np.zeros((h, w), bool)
    inside[max(crop["y0"], 0):crop["y0"] + crop["side"], max(crop["x0"], 0):crop["x0"] + crop["side"]] = True
    return inside


def person_in_source(paste: PasteBack, index: int, inset: int) -> np.ndarray:
    """Pixels of the source frame well inside the person (eroded by `inset` source px)."""
    import cv2

    p = paste.placement
    person = (Dataset(paste.dataset.path).mask(index) > 0).astype(np.uint8)
    person = cv2.resize(person, (p.side, p.side), interpolation=cv2.INTER_NEAREST)
    person = cv2.erode(person, np.ones((2 * inset + 1, 2 * inset + 1), np.uint8))
    full = np.zeros((p.height + p.side * 2, p.width + p.side * 2), bool)
    full[p.y0 + p.side:p.y0 + 2 * p.side, p.x0 + p.side:p.x0 + 2 * p.side] = person > 0
    return full[p.side:p.side + p.height, p.side:p.side + p.width]


def resized(crop_img: np.ndarray, side: int, size: int) -> np.ndarray:
    import cv2

    if side == size:
        return crop_img
    return cv2.resize(crop_img, (side, side), interpolation=cv2.INTER_AREA if side < size else cv2.INTER_CUBIC)


def in_source_coords(img: np.ndarray, crop: dict, h: int = H, w: int = W) -> np.ndarray:
    """A side x side image placed at the crop in an h x w canvas (clipped), zeros elsewhere."""
    s = crop["side"]
    big = np.zeros((h + 2 * s, w + 2 * s) + img.shape[2:], img.dtype)
    big[crop["y0"] + s:crop["y0"] + 2 * s, crop["x0"] + s:crop["x0"] + 2 * s] = img
    return big[s:s + h, s:s + w]


# -- the picture ---------------------------------------------------------------------------


def test_outside_untouched_inside_person_is_the_render(case):
    ds, _video, crop, decoded = case
    n = len(decoded)
    paste = PasteBack.from_dataset(ds, n_frames=n)
    assert paste.output_size == paste.source_size == (H, W)
    crops = rendered(n, crop["size"])
    outside = ~crop_region(crop)
    out = list(paste.frames(crops))
    assert len(out) == n
    for i, frame in enumerate(out):
        assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
        np.testing.assert_array_equal(frame[outside], decoded[i][outside])
        # Inside the person (away from the crop's border band and fall-off): the render, resized.
        want = in_source_coords(resized(crops[i], crop["side"], crop["size"]), crop)
        inner = person_in_source(paste, i, inset=1) & crop_region(
            {"x0": crop["x0"] + 8, "y0": crop["y0"] + 8, "side": crop["side"] - 16})
        assert inner.sum() > 500
        assert np.abs(frame[inner].astype(int) - want[inner]).max() <= 1


def border_gradients(img: np.ndarray, crop: dict) -> dict[str, float]:
    """Mean absolute step across each crop side that lies inside the frame, along that side."""
    f = img.astype(np.float32)
    x0, y0, s = crop["x0"], crop["y0"], crop["side"]
    h, w = img.shape[:2]
    rows = slice(max(y0, 0), min(y0 + s, h))
    cols = slice(max(x0, 0), min(x0 + s, w))
    out = {}
    if x0 > 0:
        out["left"] = float(np.abs(f[rows, x0] - f[rows, x0 - 1]).mean())
    if x0 + s < w:
        out["right"] = float(np.abs(f[rows, x0 + s] - f[rows, x0 + s - 1]).mean())
    if y0 > 0:
        out["top"] = float(np.abs(f[y0, cols] - f[y0 - 1, cols]).mean())
    if y0 + s < h:
        out["bottom"] = float(np.abs(f[y0 + s, cols] - f[y0 + s - 1, cols]).mean())
    return out


def test_no_seam_at_the_crop_border_even_for_a_very_different_render(case):
    ds, _video, crop, decoded = case
    paste = PasteBack.from_dataset(ds, n_frames=6)
    crops = rendered(6, crop["size"])
    for i, frame in enumerate(paste.frames(crops)):
        got, ref = border_gradients(frame, crop), border_gradients(decoded[i], crop)
        assert set(got) == {"left", "right", "top", "bottom"}
        for side in got:
            assert got[side] <= ref[side] + 0.5, (i, side, got[side], ref[side])
    # The blend itself is gradual: the weight never jumps between neighbouring pixels, so no
    # edge appears inside the crop either (a hard paste would step 0 -> 1).
    soft = PasteBack.from_dataset(ds, n_frames=1, feather=0.1)
    w = soft.weights(0)
    assert w.min() == 0.0 and w.max() == 1.0
    step = max(np.abs(np.diff(w, axis=0)).max(), np.abs(np.diff(w, axis=1)).max())
    assert step <= 1.5 / (0.1 * crop["size"]) + 0.02
    # Exactly 0 on the band along every inner side.
    assert not w[:2].any() and not w[-2:].any() and not w[:, :2].any() and not w[:, -2:].any()


def test_crop_partly_outside_the_frame_and_shrunk(tmp_path):
    """A crop past the left and bottom edges (padding), rendered larger than it is (96 -> 80)."""
    video = write_source(tmp_path / "source.mp4", 10)
    crop = {"x0": -12, "y0": 30, "side": 80, "size": 96}
    ds = make_dataset(tmp_path / "ds", video, crop)
    decoded = list(iter_video_frames(video))
    paste = PasteBack.from_dataset(ds, n_frames=10)
    assert paste.placement.inner_sides == (False, True, True, False)
    crops = rendered(10, crop["size"])
    outside = ~crop_region(crop)
    for i, frame in enumerate(paste.frames(crops)):
        np.testing.assert_array_equal(frame[outside], decoded[i][outside])
        got, ref = border_gradients(frame, crop), border_gradients(decoded[i], crop)
        assert set(got) == {"right", "top"}
        assert all(got[k] <= ref[k] + 0.5 for k in got)
        # Sides on the frame edge get no band: the torso is the render right down to the last row.
        want = in_source_coords(resized(crops[i], crop["side"], crop["size"]), crop)
        bottom = person_in_source(paste, i, inset=1)[H - 1] & (np.arange(W) < crop["x0"] + crop["side"] - 20)
        assert bottom.sum() > 10
        assert np.abs(frame[H - 1][bottom].astype(int) - want[H - 1][bottom]).max() <= 1


# -- which source frame ----------------------------------------------------------------------


@pytest.mark.parametrize("margin", [None, 0.0, -0.3])
def test_ping_pong_order_longer_than_the_source(case, margin, monkeypatch):
    """Forward, backward (blocks decoded after a seek), forward again. The margins make the
    short clip seek at every block (0.0) and make seeks land past the wanted frame (-0.3),
    which must fall back to decoding from the start."""
    if margin is not None:
        monkeypatch.setattr(paste_back, "SEEK_MARGIN_S", margin)
    ds, _video, crop, decoded = case
    n_out = 75  # 2.5 times the source: forward, backward, forward
    frame_bytes = H * W * 3
    paste = PasteBack.from_dataset(ds, n_frames=n_out, cache_bytes=4 * frame_bytes)  # force blocks
    src = ping_pong(len(decoded), n_out)
    assert src[29] == 29 and src[30] == 28 and src[58] == 0 and src[59] == 1
    np.testing.assert_array_equal(paste.order, src)
    outside = ~crop_region(crop)
    for i, frame in enumerate(paste.frames(rendered(n_out, crop["size"]))):
        np.testing.assert_array_equal(frame[outside], decoded[src[i]][outside], err_msg=f"output frame {i}")
    # The whole source picture, not just outside the crop, is the one processing saw.
    for i, frame in enumerate(paste.source_frames()):
        np.testing.assert_array_equal(frame, decoded[src[i]], err_msg=f"source of output frame {i}")


def test_source_at_another_frame_rate_maps_like_processing(tmp_path, monkeypatch):
    """A 30 fps source is resampled to 25 fps exactly as `geneface process` did (frames dropped),
    also in backward blocks decoded after a seek."""
    monkeypatch.setattr(paste_back, "SEEK_MARGIN_S", 0.0)
    video = write_source(tmp_path / "source30.mp4", 36, fps=30)  # 1.2 s: 30 frames at 25 fps
    crop = {"x0": 50, "y0": 10, "side": 72, "size": 64}
    ds = make_dataset(tmp_path / "ds", video, crop)
    decoded = list(iter_video_frames(video))
    assert len(decoded) == Dataset(ds).n_frames == 30
    paste = PasteBack.from_dataset(ds, n_frames=70, cache_bytes=3 * H * W * 3)
    src = ping_pong(30, 70)
    for i, frame in enumerate(paste.source_frames()):
        np.testing.assert_array_equal(frame, decoded[src[i]], err_msg=f"source of output frame {i}")


def test_memory_stays_bounded(tmp_path):
    h, w, n = 240, 400, 60  # all frames: 17 MB
    video = write_source(tmp_path / "big.mp4", n, h=h, w=w)
    crop = {"x0": 150, "y0": 40, "side": 160, "size": 128}
    ds = make_dataset(tmp_path / "ds", video, crop)
    frame_bytes = h * w * 3
    paste = PasteBack.from_dataset(ds, n_frames=150, cache_bytes=4 * frame_bytes)
    assert paste.cache_frames == 4
    crop_img = rendered(1, 128)[0]
    tracemalloc.start()
    try:
        count = 0
        for frame in paste.frames(crop_img for _ in range(150)):
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 150
    print(f"peak {peak / 1e6:.2f} MB for {n} source frames of {frame_bytes / 1e6:.2f} MB")
    assert peak < 16 * frame_bytes < n * frame_bytes / 3, f"peak {peak / 1e6:.1f} MB"


# -- sizes the writer cannot take as they are ---------------------------------------------


def test_odd_sized_source_is_padded_for_h264(tmp_path):
    h, w = 95, 161
    video = write_source(tmp_path / "odd.mkv", 8, h=h, w=w, codec="ffv1")
    assert (probe_video(video).height, probe_video(video).width) == (h, w)
    crop = {"x0": 40, "y0": 12, "side": 70, "size": 64}
    ds = make_dataset(tmp_path / "ds", video, crop)
    decoded = list(iter_video_frames(video))
    paste = PasteBack.from_dataset(ds, n_frames=8)
    assert paste.source_size == (h, w) and paste.output_size == (96, 162)
    out = tmp_path / "out.mp4"
    outside = ~crop_region(crop, h, w)
    with VideoWriter(out) as writer:
        for i, frame in enumerate(paste.frames(rendered(8, 64))):
            assert frame.shape == (96, 162, 3)
            np.testing.assert_array_equal(frame[:h, :w][outside], decoded[i][outside])
            np.testing.assert_array_equal(frame[h], frame[h - 1])  # the padding repeats the edge
            np.testing.assert_array_equal(frame[:, w], frame[:, w - 1])
            writer.write(frame)
    info = probe_video(out)
    assert (info.height, info.width) == (96, 162)


# -- refused before any work -----------------------------------------------------------------


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


def test_source_gone_changed_or_crop_wrong_is_one_line(tmp_path):
    import json
    import shutil

    video = write_source(tmp_path / "source.mp4", 10)
    crop = {"x0": 50, "y0": 10, "side": 72, "size": 64}
    ds = make_dataset(tmp_path / "ds", video, crop)

    moved = tmp_path / "moved.mp4"
    shutil.move(video, moved)
    with pytest.raises(UsageError) as err:
        PasteBack.from_dataset(ds, n_frames=10)
    assert str(video.resolve()) in one_line(err.value) and "gone" in str(err.value)
    assert PasteBack.from_dataset(ds, n_frames=10, source=moved).source.path == moved  # told where it went

    data = bytearray(moved.read_bytes())
    (tmp_path / "longer.mp4").write_bytes(bytes(data) + b"\0")
    with pytest.raises(UsageError) as err:
        PasteBack.from_dataset(ds, n_frames=10, source=tmp_path / "longer.mp4")
    assert "longer.mp4" in one_line(err.value) and "bytes" in str(err.value)

    data[len(data) // 2] ^= 0xFF  # same size, other content
    (tmp_path / "edited.mp4").write_bytes(bytes(data))
    with pytest.raises(UsageError) as err:
        PasteBack.from_dataset(ds, n_frames=10, source=tmp_path / "edited.mp4")
    assert "edited.mp4" in one_line(err.value) and "sha256" in str(err.value)

    manifest_file = ds / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["crop"]["x0"] = 400  # beyond the 160 px wide frame
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(UsageError) as err:
        PasteBack.from_dataset(ds, n_frames=10, source=moved)
    assert "manifest.json" in one_line(err.value) and "outside" in str(err.value)
    manifest["crop"]["x0"] = 50
    manifest_file.write_text(json.dumps(manifest))

    (ds / MASKS_DIR / frame_name(7, ".png")).unlink()
    with pytest.raises(UsageError) as err:
        PasteBack.from_dataset(ds, n_frames=10, source=moved)
    assert frame_name(7, ".png") in one_line(err.value)


def test_rendered_frame_of_the_wrong_size(case):
    ds, *_ = case
    paste = PasteBack.from_dataset(ds, n_frames=3)
    with pytest.raises(StageMismatchError) as err:
        list(paste.frames([np.zeros((64, 64, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)]))
    assert "frame 1" in one_line(err.value) and "(64, 64, 3)" in str(err.value)
    with pytest.raises(StageMismatchError):
        list(paste.frames([np.zeros((64, 64, 3), np.uint8)] * 4))  # more than n_frames


# -- a dataset made by `geneface process` itself ---------------------------------------------


def test_a_processed_dataset_pasted_onto_itself_gives_the_source_back(tmp_path):
    """`geneface process` on a non-square video (the synthetic subject, padded to 256 x 384);
    pasting the dataset's own crops back must give the source back: same place, same frames."""
    from test_process_media import astronaut_frames, write_clip

    from geneface.cli import main

    frames = [np.pad(f, ((0, 0), (40, 88), (0, 0)), mode="edge") for f in astronaut_frames(25)]
    clip = write_clip(tmp_path / "talk.mp4", frames)
    out = tmp_path / "ds"
    assert main(["process", str(clip), "-o", str(out), "--size", "128", "--quiet", "--no-audio"]) == 0
    ds = Dataset(out)
    paste = PasteBack.from_dataset(out, n_frames=40)  # longer than the 25 frames: ping-pong
    crop = ds.manifest["crop"]
    assert paste.output_size == (256, 384) and crop["side"] != crop["size"]
    decoded = list(iter_video_frames(clip))
    src = paste.order
    outside = ~crop_region(crop, 256, 384)
    own = (ds.frame(int(k)) for k in src)
    for i, frame in enumerate(paste.frames(own)):
        ref = decoded[src[i]]
        np.testing.assert_array_equal(frame[outside], ref[outside])
        person = person_in_source(paste, int(src[i]), inset=2)
        err = np.abs(frame[person].astype(int) - ref[person])
        assert err.mean() < 4 and np.percentile(err, 99) < 30, (i, err.mean())
        got, want = border_gradients(frame, crop), border_gradients(ref, crop)
        assert all(got[k] <= want[k] + 0.5 for k in got)
