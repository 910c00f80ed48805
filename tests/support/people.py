"""A person of several clips made from the synthetic subject: three clips of different sizes and
backgrounds (the picture's hue and brightness differ), each processed at the same size."""

from __future__ import annotations

from pathlib import Path

# (source size, hue in degrees, brightness gain) per clip: different sizes and backgrounds
CLIPS = ((128, 0.0, 1.0), (160, 60.0, 0.8), (144, 150.0, 1.15))


def synthetic_clips(root: Path, seconds: float = 2.0, clips=CLIPS) -> list[Path]:
    """The subject talking in `len(clips)` videos (made once under `root`)."""
    from geneface.cli import main

    videos = []
    for k, (size, hue, brightness) in enumerate(clips):
        folder = Path(root) / f"clip{k}"
        if not (folder / "video.mp4").exists():
            assert main(["synth", "-o", str(folder), "--seconds", str(seconds), "--size", str(size), "--seed", str(k),
                         "--hue", str(hue), "--brightness", str(brightness), "-q"]) == 0
        videos.append(folder / "video.mp4")
    return videos


def clip_videos(root: Path, seconds: float = 2.0, clips=CLIPS) -> list[Path]:
    """`synthetic_clips`' videos copied to `root/videos/clipK.mp4`: each clip its own file name
    (a person's clip folders are named after them)."""
    import shutil

    out = []
    for k, video in enumerate(synthetic_clips(root, seconds, clips)):
        copy = Path(root) / "videos" / f"clip{k}.mp4"
        if not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(video, copy)
        out.append(copy)
    return out


def person_from_clips(root: Path, size: int = 64, seconds: float = 2.0) -> Path:
    """`root / "person"`: the clips of `synthetic_clips` made one person at `size` px by
    `geneface process CLIP CLIP CLIP -o PERSON` (reused when it is already there)."""
    from geneface.cli import main

    person = Path(root) / "person"
    if not (person / "manifest.json").exists():
        videos = [str(v) for v in clip_videos(root, seconds)]
        assert main(["process", *videos, "-o", str(person), "--size", str(size), "--min-face", "20", "-j", "2",
                     "--resume", "-q"]) == 0
    return person
