"""How much the rendered mouth moves, re-tracked from the video, against the real person's.

The end-to-end check of issue 21: a pipeline spec (audio encoder, motion generator, adapter,
post-processor, renderer of one person) is run on the person's own held-out speech (the
audio of the last 1/11 of their video, which no model of the person trained on) and on
other speakers' speech. Every rendered video and the person's real held-out frames are
re-tracked with the same face tracker at the same size, and the mouth's opening is read
as the inner-lip gap over the inter-ocular distance (so it does not depend on the face's
size in pixels). Reported per source: the opening's std and mean, the ratio of that std to
the real held-out frames' ("moves 0.7 times as much") and to the person's training frames'
(`std_ratio_training`: the held-out stretch may be livelier than the person is on average),
frames without a face, and for the
held-out speech the correlation of rendered and real opening frame by frame. A
`self_driven` row renders the held-out frames from their own tracked landmarks and poses
(no audio): what the renderer alone keeps of the real mouth's motion. A picture
shows each source's most open frames beside the real ones.

    python benchmarks/bench_rendered_mouth.py --spec SPEC.yaml --person DATASET --work OUT \
        --audio ../shared/data/audio/news_zh.wav --audio ../shared/data/audio/radio_en_8s.wav

SPEC.yaml is any pipeline spec ending at the person's renderer; its `input.audio` and
`output` are replaced per source. Prints one JSON line (also OUT/rendered_mouth.json);
the picture is OUT/open_mouth.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

INNER_UPPER, INNER_LOWER = (61, 62, 63), (67, 66, 65)  # 68-point layout, facing pairs
EYE_L, EYE_R = slice(36, 42), slice(42, 48)


def relative_opening(points: np.ndarray) -> np.ndarray:
    """T x 68 x (2|3) pixel landmarks -> T: inner-lip gap / inter-ocular distance (NaN where no face)."""
    xy = np.asarray(points, np.float64)[..., :2]
    gap = np.linalg.norm(xy[:, list(INNER_UPPER)] - xy[:, list(INNER_LOWER)], axis=-1).mean(-1)
    eyes = np.linalg.norm(xy[:, EYE_L].mean(1) - xy[:, EYE_R].mean(1), axis=-1)
    return gap / eyes


def held_out_audio(person: Path, out: Path) -> Path:
    from geneface.core.person import open_dataset
    from geneface.core.media import read_audio, write_wav
    from geneface.core.records import Audio

    ds = open_dataset(person)
    start, end = ds.held_out_range()
    audio = read_audio(person / "audio.wav")
    a, b = int(round(start / ds.fps * audio.sample_rate)), int(round(end / ds.fps * audio.sample_rate))
    write_wav(out, Audio(audio.samples[a:b], audio.sample_rate))
    return out


def render(spec: dict, spec_dir: Path, audio: Path, video: Path) -> None:
    """Run the spec on `audio`; the spec's relative paths stay relative to its own folder."""
    spec = json.loads(json.dumps(spec))
    spec["input"] = {**spec.get("input", {}), "audio": str(audio.resolve())}
    out = spec.get("output")
    spec["output"] = {**out, "path": str(video.resolve())} if isinstance(out, dict) else str(video.resolve())
    path = spec_dir / f".bench_{video.stem}.yaml"
    path.write_text(yaml.safe_dump(spec))
    try:
        cmd = [sys.executable, "-m", "geneface", "run", str(path), "--overwrite"]
        print("+ " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True)
    finally:
        path.unlink(missing_ok=True)


def self_driven(spec: dict, spec_dir: Path, ds, frames) -> list[np.ndarray]:
    """The spec's renderer drawing the held-out frames from their own tracked landmarks and
    poses: how much of the real mouth's motion the renderer alone keeps (no audio involved)."""
    from geneface.metrics.render_cost import clip_runs, load_renderer, render_by_clip
    from geneface.registry import get_registry

    checkpoint = Path(spec["stages"]["renderer"]["checkpoint"])
    stage = load_renderer(get_registry(), checkpoint if checkpoint.is_absolute() else spec_dir / checkpoint)
    # each frame over its own clip's plate (a person of several clips)
    return list(render_by_clip(stage, ds.motion(frames), ds.camera(frames), clip_runs(ds.clip_index()[frames])))


def statistics(opening: np.ndarray) -> dict:
    found = np.isfinite(opening)
    return {"frames": int(len(opening)), "faceless": int((~found).sum()), "std": float(np.std(opening[found])),
            "mean": float(np.mean(opening[found]))}


def picture(rows: list[tuple[str, list[np.ndarray], np.ndarray]], path: Path, per_row: int = 4) -> None:
    """Each source's `per_row` most open frames, one row per source, its name on the left."""
    import cv2

    size = rows[0][1][0].shape[0]
    lines = []
    for name, frames, opening in rows:
        order = [int(i) for i in np.argsort(np.nan_to_num(opening, nan=-1.0))[::-1][:per_row]]
        tiles = [cv2.resize(frames[i], (size, size)) for i in order]
        tiles += [np.zeros((size, size, 3), np.uint8)] * (per_row - len(tiles))
        label = np.full((size, 2 * size, 3), 255, np.uint8)
        cv2.putText(label, name[:22], (4, size // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        lines.append(np.concatenate([label, *tiles], axis=1))
    image = np.concatenate(lines, axis=0)
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    path.write_bytes(data.tobytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, required=True)
    ap.add_argument("--person", type=Path, required=True, help="the renderer's dataset (geneface process)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--audio", type=Path, action="append", default=[], help="other speakers' speech (repeatable)")
    args = ap.parse_args()

    from geneface.core.person import open_dataset
    from geneface.core.media import read_video
    from geneface.core.yaml_safe import load_yaml
    from geneface.app.components import face_tracker
    from geneface.registry import get_registry
    from geneface.metrics.landmarks import track68 as track_with

    tracker = face_tracker(None, get_registry())

    def track68(frames):
        return track_with(frames, tracker)

    w = args.work
    w.mkdir(parents=True, exist_ok=True)
    spec = load_yaml(args.spec.read_text(), args.spec, "spec")  # aliases bounded, as for `geneface run`
    ds = open_dataset(args.person)
    start, end = ds.held_out_range()
    real_frames = list(ds.frames(range(start, end)))
    real = relative_opening(track68(real_frames).points)
    # The person's training frames (at most 500, evenly spaced): how much they move in general,
    # the reference for other speakers' speech beside the held-out stretch.
    picks = np.unique(np.linspace(0, start - 1, min(start, 500)).round().astype(int))
    typical = statistics(relative_opening(track68(list(ds.frames(picks))).points))
    result = {"bench": "rendered_mouth", "person": str(args.person), "spec": str(args.spec),
              "size": ds.size, "real_held_out": statistics(real), "real_training": typical, "sources": {}}
    rows = [("real held-out", real_frames, real)]
    own = self_driven(spec, args.spec.parent, ds, np.arange(start, end))
    opening = relative_opening(track68(own).points)
    own_stats = statistics(opening)
    result["self_driven"] = {**own_stats, "std_ratio": own_stats["std"] / result["real_held_out"]["std"],
                             "std_ratio_training": own_stats["std"] / typical["std"]}
    both = np.isfinite(opening) & np.isfinite(real)
    result["self_driven"]["r_with_real"] = float(np.corrcoef(opening[both], real[both])[0, 1])
    rows.append(("self-driven", own, opening))
    print(json.dumps({"self_driven": result["self_driven"]}), file=sys.stderr)
    sources = [("held_out_speech", held_out_audio(args.person, w / "held_out.wav"))]
    sources += [(a.stem, a) for a in args.audio]
    for name, audio in sources:
        video = w / f"{name}.mp4"
        if not video.exists():
            render(spec, args.spec.parent, audio, video)
        frames = list(read_video(video))
        opening = relative_opening(track68(frames).points)
        entry = statistics(opening)
        entry["std_ratio"] = entry["std"] / result["real_held_out"]["std"]
        entry["std_ratio_training"] = entry["std"] / typical["std"]
        if name == "held_out_speech":
            n = min(len(opening), len(real))
            both = np.isfinite(opening[:n]) & np.isfinite(real[:n])
            entry["r_with_real"] = float(np.corrcoef(opening[:n][both], real[:n][both])[0, 1])
        result["sources"][name] = entry
        rows.append((name, frames, opening))
        print(json.dumps({name: entry}), file=sys.stderr)
    picture(rows, w / "open_mouth.png")
    (w / "rendered_mouth.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
