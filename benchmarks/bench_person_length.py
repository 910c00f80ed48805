"""How much video a person needs: the whole person chain trained on nested lengths of one person,
scored on one fixed set of held-out clips. Prints one JSON line; writes OUT/person_length.json,
OUT/person_length.md (the table) and OUT/person_length.png (the plot).

    python benchmarks/bench_person_length.py --person GRID_PERSON --vae GENERIC_VAE --syncnet SYNCNET \
        --work OUT [--lengths 0.333,1,3,10,all] [--renderer-steps 800] [--ft-steps 300] [--score-clips 8] \
        [--audio ../shared/data/audio/zozo_10s.wav ...] [--extra dfrf=DATASET ...] [--threads 1]

GRID_PERSON is a person of many clips (`geneface process CLIP ... -o PERSON`, e.g. GRID s1 at
128 px): its held-out clips (the one rule, by whole clips) stay the same for every length, and
each length trains on the first training clips totalling at least that many minutes (nested
subsets; `geneface dataset subset`). `--extra NAME=DATASET` adds other persons (a video's
dataset or a person of several clips), run through the same recipe and put in the table by
their length.

The recipe, the same for every row (the step budget is the same whatever the length):
`audio2motion` fine-tuned on the person from the generic VAE (`--ft-steps`, lr 3e-4 constant,
amplitude term on: docs/training.md's person fine-tune), `landmark_projection` fitted on the
person, `hashgrid_nerf` trained `--renderer-steps` steps (profile quick), and the
spec whisper (bundled tiny.en) -> vae (temperature 0.5) -> landmark_projection ->
person_postprocess -> hashgrid_nerf. Each row is scored on the held-out frames it scores
(`--score-clips` held-out clips spread over the held-out set; a person of one clip: all its
held-out frames):

(a) `own_landmarks`: the renderer drawing the held-out frames from their own tracked landmarks
    and poses: PSNR full frame, face box, mouth box; mouth LMD (re-tracked, px); beside it the
    `copy` baseline: the training frame nearest in tracked image points (head pose included;
    geneface.metrics.held_out.nearest_training_frames), the frame a viewer gets by copying the
    video;
(b) `own_audio`: the whole chain from the held-out clips' own audio, drawn with their own poses:
    the same picture scores, the rendered mouth's opening amplitude (std of inner-lip gap over
    inter-ocular distance, re-tracked) against the real held-out frames', correlation with the
    real opening at lag 0 and the best lag (+: rendered late), sync confidence (`geneface eval`
    with --syncnet);
(c) `other_speech`: the chain from other speakers' speech (`--audio`, joined): amplitude against
    the person's real average (its training frames' opening std), sync confidence.

Every step is kept in OUT/ROW/ and skipped when there, so a stopped study resumes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_rendered_mouth import relative_opening  # noqa: E402

MOTION_CONFIG: dict = {}  # --motion-config: keys of the fine-tuned vae's config set in the spec
FT_CONFIG = {"train": {"lr": 0.0003, "schedule": "constant", "warmup": 0}, "task": {"w_amplitude": 1.0}}


def geneface(*args: str) -> None:
    cmd = [sys.executable, "-m", "geneface", *args]
    print("+ geneface " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


def subset_person(full: Path, out: Path, minutes: float | None) -> Path:
    """The first training clips of `full` totalling at least `minutes` (None: all), with all of
    `full`'s held-out clips: a person that holds only its manifest and statistics."""
    from geneface.core.person import open_dataset, write_person_manifest

    if (out / "manifest.json").exists():
        return out
    ds = open_dataset(full)
    held = set(ds.manifest["held_out_clips"])
    train = [c for c in ds.clips if c.name not in held]
    keep, frames = [], 0
    for c in train:
        if minutes is not None and frames >= minutes * 60 * ds.fps:
            break
        keep.append(c)
        frames += c.n_frames
    clips = keep + [c for c in ds.clips if c.name in held]
    out.mkdir(parents=True, exist_ok=True)
    write_person_manifest(out, [c.path for c in clips], held_out_from=len(keep), names=[c.name for c in clips])
    return out


def scored_frames(ds, k_clips: int) -> np.ndarray:
    """The held-out frames a row is scored on: `k_clips` held-out clips spread evenly over the
    held-out set (a person of one clip: every held-out frame)."""
    frames = ds.held_out_frames()
    if ds.n_clips == 1:
        return frames
    start, _ = ds.held_out_range()
    held = [k for k, c in enumerate(ds.clips) if c.start >= start]
    pick = [held[int(i)] for i in np.unique(np.linspace(0, len(held) - 1, min(k_clips, len(held))).round())]
    keep = np.concatenate([np.arange(ds.clips[k].start, ds.clips[k].end) for k in pick])
    return np.intersect1d(frames, keep)


def write_inputs(ds, frames: np.ndarray, folder: Path) -> tuple[Path, Path]:
    """The held-out frames' own audio (their samples joined) and poses, as files for a spec."""
    from geneface.core.camera_io import save_camera
    from geneface.core.media import write_wav
    from geneface.core.records import Audio

    audio = ds.audio()
    per = audio.sample_rate / ds.fps
    samples = np.concatenate([audio.samples[int(round(f * per)):int(round((f + 1) * per))] for f in frames])
    wav, poses = folder / "held_out.wav", folder / "held_out_poses.npz"
    write_wav(wav, Audio(samples.astype(np.float32), audio.sample_rate))
    save_camera(poses, ds.camera(frames))
    return wav, poses


def spec_for(row: Path, person: Path, clip: str | None = None) -> dict:
    renderer = {"plugin": "hashgrid_nerf", "checkpoint": str(row / "render" / "model.safetensors")}
    if clip is not None:
        renderer["config"] = {"clip": clip}
    return {
        "stages": {
            "audio_encoder": "whisper",
            "motion_generator": {"plugin": "vae", "checkpoint": str(row / "ft" / "model.safetensors"),
                                 "config": {"temperature": 0.5, **MOTION_CONFIG}},
            "domain_adapter": {"plugin": "landmark_projection", "checkpoint": str(row / "proj" / "model.safetensors")},
            "post_processor": {"plugin": "person_postprocess", "config": {"person": str(person)}},
            "renderer": renderer,
        },
    }


def run_spec(spec: dict, audio: Path, video: Path, poses: Path | None = None) -> None:
    import yaml

    if video.exists():
        return
    spec = json.loads(json.dumps(spec))
    spec["input"] = {"audio": str(audio)}
    if poses is not None:
        spec["input"]["poses"] = str(poses)
    spec["output"] = str(video)
    path = video.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(spec))
    geneface("run", str(path), "-q")


def sync_confidence(video: Path, audio: Path, syncnet: Path) -> float | None:
    out = video.with_suffix(".eval.json")
    if not out.exists():
        geneface("eval", str(video), "-a", str(audio), "--syncnet", str(syncnet), "--json", "-q", "-o", str(out))
    sync = json.loads(out.read_text()).get("sync") or {}
    return sync.get("confidence")


def picture_scores(rendered, real, image68, size) -> dict:
    """Mean PSNR full frame, face box and mouth box (geneface.metrics.image's definitions)."""
    from geneface.metrics.image import face_box, mouth_box, psnr, psnr_box

    full, face, mouth = [], [], []
    for pred, truth, pts in zip(rendered, real, image68):
        full.append(psnr(pred, truth))
        face.append(psnr_box(pred, truth, face_box(pts, size)))
        mouth.append(psnr_box(pred, truth, mouth_box(pts, size)))
    return {"psnr": float(np.mean(full)), "psnr_face": float(np.mean(face)), "psnr_mouth": float(np.mean(mouth))}


def opening_scores(opening: np.ndarray, real: np.ndarray) -> dict:
    from geneface.metrics.lag import best_lag, lag_curve, pearson

    both = np.isfinite(opening) & np.isfinite(real)
    gen, true = np.where(both, opening, np.nanmean(opening)), np.where(both, real, np.nanmean(real))
    lag, r_best = best_lag(lag_curve(gen, true))
    return {"amplitude": float(np.nanstd(opening) / np.nanstd(real)), "r_lag0": pearson(gen, true),
            "best_lag": lag, "r_best": r_best, "faceless": int((~np.isfinite(opening)).sum())}


def score_row(name: str, person: Path, row: Path, args, tracker) -> dict:
    from geneface.core.media import read_audio, read_video, write_wav
    from geneface.core.person import open_dataset
    from geneface.core.records import Audio
    from geneface.metrics.held_out import nearest_training_frames
    from geneface.metrics.landmarks import lmd, track68
    from geneface.metrics.render_cost import clip_runs, load_renderer, render_by_clip
    from geneface.registry import get_registry

    ds = open_dataset(person)
    frames = scored_frames(ds, args.score_clips)
    train = ds.training_frames()
    out = {"row": name, "person": str(person), "clips": ds.n_clips, "train_frames": int(len(train)),
           "train_minutes": round(len(train) / ds.fps / 60, 2), "scored_frames": int(len(frames))}
    image68 = ds.landmarks_image()[frames]
    real = [ds.frame(int(f)) for f in frames]
    real_track = track68(real, tracker)
    real_open = relative_opening(real_track.points)
    picks = train[np.unique(np.linspace(0, len(train) - 1, min(len(train), 500)).round().astype(int))]
    typical = float(np.nanstd(relative_opening(track68([ds.frame(int(f)) for f in picks], tracker).points)))
    out["real"] = {"opening_std_held_out": float(np.nanstd(real_open)), "opening_std_training": typical}

    def mouth_lmd(track) -> float | None:
        ok = track.found & real_track.found
        return float(lmd(track.points[ok], real_track.points[ok])) if ok.any() else None

    # (a) the renderer alone, and the copy baseline
    stage = load_renderer(get_registry(), row / "render" / "model.safetensors")
    runs = clip_runs(ds.clip_index()[frames])  # each held-out frame over its own clip's plate
    own = list(render_by_clip(stage, ds.motion(frames), ds.camera(frames), runs))
    own_track = track68(own, tracker)
    out["own_landmarks"] = {**picture_scores(own, real, image68, ds.size), "lmd_px": mouth_lmd(own_track),
                            **opening_scores(relative_opening(own_track.points), real_open)}
    copy = [ds.frame(i) for i in nearest_training_frames(ds, frames)]
    out["copy"] = {**picture_scores(copy, real, image68, ds.size), "lmd_px": mouth_lmd(track68(copy, tracker))}
    write_error_images(row / "errors.png", real, own, copy)
    out["edges"] = edge_errors(person, row, args)
    # (b) the whole chain from the held-out audio, with the held-out poses
    # the chain draws over one clip's plate (the renderer's `clip`): the first scored clip's
    spec = spec_for(row, person, ds.clips[ds.clip_of(int(frames[0]))].name if ds.n_clips > 1 else None)
    wav, poses = write_inputs(ds, frames, row)
    video = row / "own_audio.mp4"
    run_spec(spec, wav, video, poses)
    chain = list(read_video(video))[: len(real)]
    chain_track = track68(chain, tracker)
    out["own_audio"] = {**picture_scores(chain, real, image68, ds.size), "lmd_px": mouth_lmd(chain_track),
                        **opening_scores(relative_opening(chain_track.points), real_open),
                        "sync": sync_confidence(video, wav, args.syncnet)}
    out["chain"] = chain_stages(row, spec, wav, ds, frames)
    # (c) other speakers' speech
    if args.audio:
        others = row.parent / "other_speech.wav"
        if not others.exists():
            parts = [read_audio(a) for a in args.audio]
            write_wav(others, Audio(np.concatenate([p.samples for p in parts]), parts[0].sample_rate))
        video = row / "other_speech.mp4"
        run_spec(spec, others, video)
        opening = relative_opening(track68(list(read_video(video)), tracker).points)
        out["other_speech"] = {"amplitude_vs_training": float(np.nanstd(opening) / typical),
                               "faceless": int((~np.isfinite(opening)).sum()),
                               "sync": sync_confidence(video, others, args.syncnet)}
    return out


def chain_stages(row: Path, spec: dict, wav: Path, ds, frames: np.ndarray) -> dict:
    """Where along the chain the mouth's motion is kept or lost, on the held-out audio: the
    mouth opening (inner-lip gap, canonical landmarks) after the fine-tuned VAE, after
    `landmark_projection` and after `person_postprocess`, each against the real held-out frames'
    tracked canonical landmarks: amplitude (std ratio) and r at lag 0 / best lag."""
    from geneface.core.landmarks68 import mouth_opening
    from geneface.core.motion_io import load_motion

    real = mouth_opening(ds.landmarks_canonical()[frames])
    order = ("motion_generator", "domain_adapter", "post_processor")
    out = {}
    for k, stage in enumerate(order):
        npz = row / f"chain_{stage}.npz"
        if not npz.exists():
            part = json.loads(json.dumps(spec))
            part["stages"] = {key: value for key, value in spec["stages"].items()
                              if key in ("audio_encoder", *order[: k + 1])}
            run_spec(part, wav, npz)
        opening = mouth_opening(load_motion(npz).landmarks)[: len(real)]
        out[stage] = opening_scores(opening, real[: len(opening)])
        del out[stage]["faceless"]
    return out


def chain_of_row(name: str, person: Path, row: Path, args) -> dict:
    """`chain_stages` of a row already scored (its inputs are on disk)."""
    from geneface.core.person import open_dataset

    ds = open_dataset(person)
    frames = scored_frames(ds, args.score_clips)
    spec = spec_for(row, person, ds.clips[ds.clip_of(int(frames[0]))].name if ds.n_clips > 1 else None)
    return chain_stages(row, spec, row / "held_out.wav", ds, frames)


def edge_errors(person: Path, row: Path, args, px: int = 2) -> dict:
    """Where the picture's error lies, the renderer's (a) and the copy's: the share of each one's
    squared error within `px` pixels of a boundary of the real frame's mask (silhouette, hair
    line, chin over collar: `edge_band`) against that band's share of the pixels, and the mean
    squared error (0-255 scale) inside and outside the band."""
    from geneface.core.person import open_dataset
    from geneface.metrics.held_out import nearest_training_frames
    from geneface.metrics.render_cost import clip_runs, load_renderer, render_by_clip
    from geneface.registry import get_registry
    from geneface.training.person_renderer_task import edge_band

    ds = open_dataset(person)
    frames = scored_frames(ds, args.score_clips)
    stage = load_renderer(get_registry(), row / "render" / "model.safetensors")
    own = render_by_clip(stage, ds.motion(frames), ds.camera(frames), clip_runs(ds.clip_index()[frames]))
    copies = nearest_training_frames(ds, frames)
    sums = {"renderer": np.zeros(2), "copy": np.zeros(2)}
    pixels = np.zeros(2)
    for f, pred, c in zip(frames, own, copies):
        truth = ds.frame(int(f)).astype(np.float64)
        band = np.zeros(ds.size * ds.size, bool)
        band[edge_band(ds.mask(int(f)), px)] = True
        pixels += [band.sum(), (~band).sum()]
        for name, image in (("renderer", pred), ("copy", ds.frame(c))):
            err = ((image.astype(np.float64) - truth) ** 2).mean(-1).reshape(-1)
            sums[name] += [err[band].sum(), err[~band].sum()]
    out = {"band_px": px, "band_share_of_pixels": float(pixels[0] / pixels.sum())}
    for name, (inside, outside) in sums.items():
        out[name] = {"share_of_error_in_band": float(inside / (inside + outside)),
                     "mse_in_band": float(inside / pixels[0]), "mse_elsewhere": float(outside / pixels[1])}
    return out


def write_error_images(path: Path, real, rendered, copy, rows: int = 3) -> None:
    """real | rendered | error and real | copy | error for `rows` frames spread over the scored ones."""
    from geneface.core.image_grid import write_png
    from geneface.training.person_renderer_task import comparison_image

    picks = np.unique(np.linspace(0, len(real) - 1, rows).round().astype(int))
    lines = [np.concatenate([comparison_image(real[k] / 255.0, rendered[k] / 255.0),
                             comparison_image(real[k] / 255.0, copy[k] / 255.0)], axis=1) for k in picks]
    write_png(path, np.concatenate(lines, axis=0))


def train_row(person: Path, row: Path, args) -> None:
    """The recipe: the renderer, the projection, the fine-tuned audio-to-motion model (skipped when there)."""
    import yaml

    row.mkdir(parents=True, exist_ok=True)
    threads = ["--threads", str(args.threads)] if args.threads else []
    if not (row / "render" / "model.safetensors").exists():
        geneface("train", "renderer", "--plugin", "hashgrid_nerf", "--data", str(person), "--out",
                 str(row / "render"), "--profile", "quick", "--steps", str(args.renderer_steps), "--overwrite", "-q",
                 *threads)
    if not (row / "proj" / "model.safetensors").exists():
        geneface("train", "domain_adapter", "--plugin", "landmark_projection", "--person", str(person),
                 "--out", str(row / "proj"), "--overwrite", "-q")
    if not (row / "ft" / "model.safetensors").exists():
        config = row / "ft.yaml"
        config.write_text(yaml.safe_dump(FT_CONFIG))
        geneface("train", "audio2motion", "--init", str(args.vae), "--person", str(person), "--syncnet",
                 str(args.syncnet), "--encoder", "whisper", "--out", str(row / "ft"), "--config", str(config),
                 "--steps", str(args.ft_steps), "--overwrite", "-q", *threads)


def fmt(v, spec=".2f") -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[dict]) -> str:
    head = ("| person | training min | (a) PSNR full / face / mouth | copy full / face / mouth | (a) LMD px "
            "| (b) PSNR face / mouth | (b) amplitude | (b) r lag 0 | (b) best lag (r) | (b) sync "
            "| (c) amplitude vs person | (c) sync |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        a, c, b, o = r["own_landmarks"], r["copy"], r["own_audio"], r.get("other_speech") or {}
        lines.append(
            f"| {r['row']} | {r['train_minutes']:.2f} | {a['psnr']:.2f} / {a['psnr_face']:.2f} / {a['psnr_mouth']:.2f} "
            f"| {c['psnr']:.2f} / {c['psnr_face']:.2f} / {c['psnr_mouth']:.2f} | {fmt(a['lmd_px'])} "
            f"| {b['psnr_face']:.2f} / {b['psnr_mouth']:.2f} | {fmt(b['amplitude'])} | {fmt(b['r_lag0'])} "
            f"| {fmt(b['best_lag'], '+d')} ({fmt(b['r_best'])}) | {fmt(b['sync'], '.3f')} "
            f"| {fmt(o.get('amplitude_vs_training'))} | {fmt(o.get('sync'), '.3f')} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    grid = [r for r in rows if r["row"].startswith("grid")]
    extra = [r for r in rows if not r["row"].startswith("grid")]
    for ax, (title, get) in zip(axes, (
            ("held-out face-box PSNR (dB)", lambda r: (r["own_landmarks"]["psnr_face"], r["copy"]["psnr_face"])),
            ("rendered mouth amplitude / real", lambda r: (r["own_audio"]["amplitude"],
                                                          (r.get("other_speech") or {}).get("amplitude_vs_training"))),
            ("opening r at lag 0 (own audio)", lambda r: (r["own_audio"]["r_lag0"], None)))):
        for series, style, label in ((grid, "o-", "GRID s1"), (extra, "s", "other persons")):
            if not series:
                continue
            x = [r["train_minutes"] for r in series]
            first = [get(r)[0] for r in series]
            second = [get(r)[1] for r in series]
            ax.plot(x, first, style, label=label if "PSNR" not in title else f"{label}: renderer (a)")
            if any(v is not None for v in second):
                ax.plot(x, [np.nan if v is None else v for v in second], style.replace("-", "--"), alpha=0.6,
                        label=f"{label}: copy" if "PSNR" in title else f"{label}: other speech (c)")
        ax.set_xscale("log")
        ax.set_xlabel("training video (minutes)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--person", type=Path, required=True, help="a person of many clips (the GRID s1 person)")
    ap.add_argument("--vae", type=Path, required=True, help="the generic whisper VAE (trained without this person)")
    ap.add_argument("--syncnet", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--lengths", default="0.333,1,3,10,all", help="training minutes per row, 'all' for every clip")
    ap.add_argument("--renderer-steps", type=int, default=800, help="hashgrid_nerf steps (profile quick), every row")
    ap.add_argument("--ft-steps", type=int, default=300)
    ap.add_argument("--score-clips", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--audio", type=Path, action="append", default=[], help="other speakers' speech (repeatable)")
    ap.add_argument("--extra", action="append", default=[], help="NAME=DATASET: another person, same recipe")
    ap.add_argument("--only", default=None, help="comma-separated row names to run (default: all)")
    ap.add_argument("--motion-config", action="append", default=[],
                    help="KEY=JSON: set in the fine-tuned vae's config in the spec (e.g. temperature=0.3), to compare "
                         "a change of the chain on the same models")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for item in args.motion_config:
        key, _, value = item.partition("=")
        MOTION_CONFIG[key] = json.loads(value)

    from geneface.app.components import face_tracker
    from geneface.registry import get_registry

    tracker = face_tracker(None, get_registry())
    plan = []
    for length in args.lengths.split(","):
        minutes = None if length == "all" else float(length)
        name = "grid_all" if minutes is None else f"grid_{length}min"
        plan.append((name, lambda m=minutes, n=name: subset_person(args.person, args.work / n / "person", m)))
    for extra in args.extra:
        name, _, path = extra.partition("=")
        plan.append((name, lambda p=Path(path): p.resolve()))
    only = set(args.only.split(",")) if args.only else None
    rows = []
    for name, person_of in plan:
        row = args.work / name
        done = row / "row.json"
        if done.exists():
            result = json.loads(done.read_text())
            if only is None or name in only:  # a row scored before these figures existed gets them
                if "chain" not in result:
                    result["chain"] = chain_of_row(name, person_of(), row, args)
                if "edges" not in result:
                    result["edges"] = edge_errors(person_of(), row, args)
                done.write_text(json.dumps(result, indent=2))
            rows.append(result)
            continue
        if only is not None and name not in only:
            continue
        started = time.time()
        person = person_of()
        train_row(person, row, args)
        result = score_row(name, person, row, args, tracker)
        result["seconds"] = round(time.time() - started, 1)
        result["recipe"] = {"ft_steps": args.ft_steps, "renderer_steps": args.renderer_steps, "threads": args.threads,
                            "renderer_seconds": renderer_seconds(row)}
        done.write_text(json.dumps(result, indent=2))
        print(json.dumps(result), file=sys.stderr, flush=True)
        rows.append(result)
    rows.sort(key=lambda r: r["train_minutes"])
    (args.work / "person_length.md").write_text(table(rows))
    if rows:
        plot(rows, args.work / "person_length.png")
    report = {"bench": "person_length", "rows": rows}
    (args.work / "person_length.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    return 0


def renderer_seconds(row: Path):
    """Wall-clock seconds of the renderer's training (its run folder's run.json to its model)."""
    started = json.loads((row / "render" / "run.json").read_text()).get("started")
    return None if started is None else round((row / "render" / "model.safetensors").stat().st_mtime - started, 1)


if __name__ == "__main__":
    sys.exit(main())
