"""Data commands: `process` (a video, or several clips of one person), `process-corpus`, `dataset info`,
`dataset subset`, `dataset index`, `dataset av-offset`, `dataset preview`."""

from __future__ import annotations

import functools
import inspect
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from geneface.cli.app import app

dataset_app = typer.Typer(help="Inspect datasets made by `geneface process`.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")

_QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")
_AV_OFFSET = typer.Option("auto", "--av-offset", help="Audio-to-video offset: auto (estimate it; correct 2 frames or "
                          "more, flag a clip that cannot tell so training skips it), 0 (take the file as it is) or "
                          "FRAMES (move the audio that many frames earlier; negative: later). docs/av-offset.md.")

# The flags `process` and `process-corpus` share, declared once: name -> (type, option). They
# make the command's ProcessConfig (`_config`); `with_process_flags` gives them to a command.
PROCESS_FLAGS = {
    "size": (int, typer.Option(512, "--size", help="Side of the square output crop, in pixels.")),
    "crop_scale": (float, typer.Option(2.0, "--crop-scale", help="Crop side as a multiple of the face height.")),
    "val_fraction": (float, typer.Option(1 / 11, "--val-fraction", help="Share of the video, at its end, held out "
                                         "for validation (default 1/11: the field's protocol, never trained on by "
                                         "person-specific models).")),
    "audio_encoder": (List[str], typer.Option(["mel"], "--audio-encoder", "-e", help="AudioEncoder plugin for "
                                              "features; repeat for several.")),
    "no_audio": (bool, typer.Option(False, "--no-audio", help="Accept a video without audio (no audio or features "
                                    "in the dataset).")),
    "tracker": (str, typer.Option("mediapipe", "--tracker", help="FaceTracker plugin.")),
    "max_failed": (float, typer.Option(0.05, "--max-failed", help="Largest share of frames without a face before "
                                       "giving up.")),
    "max_gap": (int, typer.Option(5, "--max-gap", help="Longest run of faceless frames (at 25 fps) that is "
                                  "interpolated.")),
    "min_face": (float, typer.Option(80.0, "--min-face", help="Smallest face width (source pixels) accepted.")),
    "fov": (Optional[float], typer.Option(None, "--fov", help="Camera field of view in degrees (default 12.6, "
                                          "GeneFace's face-fitting camera).")),
    "av_offset": (str, _AV_OFFSET),
}


def _config(size, crop_scale, val_fraction, audio_encoder, no_audio, tracker, max_failed, max_gap, min_face, fov,
            av_offset):
    from geneface.errors import UsageError
    from geneface.processing.config import ProcessConfig

    kwargs = dict(
        size=size,
        crop_scale=crop_scale,
        val_fraction=val_fraction,
        audio_encoders=tuple(dict.fromkeys(audio_encoder)),
        no_audio=no_audio,
        tracker=tracker,
        max_failed=max_failed,
        max_gap=max_gap,
        min_face_px=min_face,
        av_offset=av_offset,
    )
    if fov is not None:
        kwargs["fov_degrees"] = fov
    try:
        return ProcessConfig(**kwargs)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def with_process_flags(**changed):
    """A command's parameter `config` becomes the shared flags, in its place (a flag's option
    replaced by `changed[name]`, e.g. another default); the command gets their ProcessConfig."""

    def decorate(command):
        signature = inspect.signature(command, eval_str=True)
        params = []
        for param in signature.parameters.values():
            if param.name != "config":
                params.append(param)
                continue
            params += [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=kind,
                                         default=changed.get(name, option))
                       for name, (kind, option) in PROCESS_FLAGS.items()]

        @functools.wraps(command)
        def with_config(**kwargs):
            return command(config=_config(**{name: kwargs.pop(name) for name in PROCESS_FLAGS}), **kwargs)

        with_config.__signature__ = signature.replace(parameters=params)
        with_config.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not p.empty}
        return with_config

    return decorate


def _log(message: str) -> None:
    typer.echo(message, err=True)


def _usable_lines(ds) -> list[str]:
    """The usable-minutes line and, for a short person, what more video would buy
    (geneface.core.person_length: the wording lives there)."""
    from geneface.core.person_length import length_advice, usable_minutes

    minutes = usable_minutes(ds)
    advice = length_advice(minutes.training)
    return [minutes.line()] + ([f"warning: {advice}"] if advice else [])


@app.command()
@with_process_flags()
def process(
    videos: List[Path] = typer.Argument(..., metavar="VIDEO...", help="A talking-head video (any common format, any "
                                        "frame rate): one dataset. Several videos, a folder of videos or a .txt file "
                                        "listing clips (one path a line, # comments, relative to the file): one "
                                        "person of several clips, the last ones held out (docs/dataset_format.md)."),
    output: Path = typer.Option(..., "--output", "-o", help="Dataset (or person) folder to create."),
    config=None,  # the shared flags, as their ProcessConfig (with_process_flags)
    resume: bool = typer.Option(False, "--resume", help="Keep a finished identical dataset; continue an interrupted run "
                                "(a person: its finished clips are kept)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset (or person) folder."),
    workers: int = typer.Option(1, "--workers", "-j", help="Several clips: how many are processed at the same time."),
    identity: str = typer.Option("refuse", "--identity", help="Several clips: a clip whose face differs from the "
                                 "others' (geneface.processing.identity) is refused (refuse) or kept with a "
                                 "warning (warn)."),
    quiet: bool = _QUIET,
) -> None:
    """Turn a talking-head video into a training dataset (frames, masks, landmarks, camera, audio), or several
    clips of one person into one person."""
    from geneface.core.outputs import prepare_output
    from geneface.processing.person_process import is_person_input

    if is_person_input(videos):
        return _process_person(videos, output, config, resume, overwrite, workers, identity, quiet)
    video = videos[0]
    from geneface.app.process import process_video

    # Type, inputs and writability here; an existing folder is process_video's to judge
    # (--resume keeps an identical dataset, --overwrite replaces datasets only).
    prepare_output(output, kind="dir", inputs=(video,), existing_ok=True)
    from geneface.registry import get_registry

    result = process_video(video, output, config, resume=resume, overwrite=overwrite, quiet=quiet, log=_log,
                           registry=get_registry())
    m = result.manifest
    from geneface.core.dataset import Dataset

    usable = _usable_lines(Dataset(output))
    if result.skipped:
        typer.echo(f"{output}: already processed from this video with these settings; nothing to do")
        typer.echo("\n".join(usable))
        return
    q = m["quality"]
    typer.echo(
        f"wrote {output}: {m['n_frames']} frames at {m['crop']['size']} px, "
        f"reprojection {q['reprojection_error_px']['mean']:.2f} px, "
        f"head mask covers >= {100 * q['head_hull_coverage']['min']:.1f}% of the face, "
        f"{q['tracking_failures']} failed frames, {m['timings']['fps']:.1f} frames/s"
    )
    typer.echo("\n".join(usable))


def _process_person(videos, output, config, resume, overwrite, workers, identity, quiet) -> None:
    """`geneface process CLIP [CLIP ...] -o PERSON` (geneface.processing.person_process)."""
    from geneface.app.process import process_person
    from geneface.core.outputs import prepare_output
    from geneface.core.person import open_dataset
    from geneface.errors import UsageError
    from geneface.processing.person_process import is_person_folder

    if output.is_dir() and any(output.iterdir()) and not (resume or overwrite):
        raise UsageError(f"{output}: already exists; pass --resume to continue it (its finished clips are kept) or "
                         "--overwrite to replace it")
    prepare_output(output, kind="dir", inputs=videos, overwrite=overwrite, existing_ok=resume,
                   replaceable=is_person_folder)
    if resume and output.is_dir() and any(output.iterdir()) and not is_person_folder(output):
        raise UsageError(f"{output}: exists and is not a person this command made; --resume continues only its "
                         "own output, choose another folder")
    from geneface.registry import get_registry

    result = process_person(videos, output, config, workers=workers, identity=identity, overwrite=overwrite,
                            quiet=quiet, log=_log, registry=get_registry())
    counts = {s: sum(o.status == s for o in result.outcomes) for s in ("done", "skipped")}
    ds = open_dataset(output)
    held = result.manifest["held_out_clips"]
    typer.echo(f"wrote {output}: a person of {ds.n_clips} clips ({counts['done']} processed, {counts['skipped']} "
               f"already done), {ds.n_frames} frames at {ds.size} px, held out: {_names(held) or 'the last frames'}; "
               f"{_identity_summary(result.identity)}")
    typer.echo("\n".join(_usable_lines(ds)))


def _names(names, shown: int = 6) -> str:
    """Clip names for one line: all of a few, the first and last of many (`dataset info` lists them all)."""
    names = list(names)
    if len(names) <= shown:
        return ", ".join(names)
    return f"{len(names)} clips ({', '.join(names[:2])} ... {names[-1]})"


def _identity_summary(check) -> str:
    """The identity check in a few words: its largest distances against the threshold."""
    import numpy as np

    pairs = sorted(zip(check.names, check.distances), key=lambda x: -x[1])
    top = ", ".join(f"{n} {d:.4f}" for n, d in pairs[:3])
    median = float(np.median(check.distances)) if len(pairs) else 0.0
    return (f"identity distances: largest {top}, median {median:.4f} (threshold {check.threshold:g}; "
            "every clip's in `dataset info`)")


@app.command("process-corpus")
@with_process_flags(max_failed=typer.Option(
    0.5, "--max-failed", help="Largest share of frames without a face before a clip is refused. Higher than "
    "`process`'s 0.05: audio-to-motion training cuts a clip where tracking failed (a cut-away shot, a turned head) "
    "and keeps the rest."))
def process_corpus_cmd(
    in_dir: Path = typer.Argument(..., help="Folder of clips (searched recursively, e.g. an LRS3-like tree)."),
    out_dir: Path = typer.Argument(..., help="Output folder: one dataset per clip, same relative paths."),
    workers: int = typer.Option(1, "--workers", "-j", help="Clips processed at the same time (with --ray local: "
                                "the local Ray's CPUs are workers x --cpus-per-clip)."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help="Run one Ray task per clip: 'local' "
                                      "(start a Ray on this machine), 'auto' (the cluster this node belongs to) or "
                                      "a cluster address (HOST:6379, ray://HOST:10001). Needs geneface[distributed]; "
                                      "OUT_DIR must be writable by every node. docs/distributed.md."),
    cpus_per_clip: float = typer.Option(1.0, "--cpus-per-clip", help="With --ray: CPUs each clip's task reserves."),
    memory_per_clip: float = typer.Option(2.0, "--memory-per-clip", help="With --ray: GB of memory each clip's task "
                                          "reserves (0: none declared)."),
    config=None,  # the shared flags, as their ProcessConfig (with_process_flags)
    quiet: bool = _QUIET,
) -> None:
    """Process every clip under IN_DIR, skipping finished ones; one bad clip never stops the others."""
    from geneface.core.outputs import prepare_output
    from geneface.errors import GenefaceError
    from geneface.app.process import process_corpus
    from geneface.core.corpus_index import INDEX
    from geneface.processing.corpus import REPORT

    prepare_output(out_dir, kind="dir", inputs=(in_dir,), existing_ok=True, what="OUT_DIR")  # resumed if it exists
    outcomes = process_corpus(in_dir, out_dir, config, workers=workers, quiet=quiet, log=_log, ray=ray,
                              cpus_per_clip=cpus_per_clip, memory_per_clip_gb=memory_per_clip or None)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    typer.echo(
        f"{len(outcomes)} clips: {counts['done']} processed, {counts['skipped']} already done, "
        f"{counts['failed']} failed (report: {out_dir / REPORT}"
        + (f", index: {out_dir / INDEX})" if (out_dir / INDEX).exists() else ")")
    )
    failed = [o for o in outcomes if o.status == "failed"]
    for o in sorted(failed, key=lambda o: o.clip):
        typer.echo(f"  failed  {o.clip}: {o.error}")
    if failed:
        raise GenefaceError(f"{len(failed)} of {len(outcomes)} clips failed; the others are done")


def _fmt_stats(stats: dict, unit: str = "", scale: float = 1.0) -> str:
    if stats.get("mean") is None:
        return "-"
    return f"mean {stats['mean'] * scale:.2f}{unit}, max {stats['max'] * scale:.2f}{unit}"


@dataset_app.command("info")
def dataset_info(
    path: Path = typer.Argument(..., help="A dataset folder, or a person of several clips."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Summarise a dataset: frames, splits, tracking quality, timings; a person: its clips too."""
    from geneface.core.person import PersonDataset, open_dataset, require_files
    from geneface.core.person_length import length_advice, usable_minutes
    from geneface.processing.offset_stage import offset_summary

    ds = open_dataset(path)
    require_files(path, ds.manifest)  # vouches for the whole dataset: every file it should hold (a person: its clips')
    summary = ds.summary()
    minutes = usable_minutes(ds)
    summary["usable_minutes"] = minutes.to_dict()
    summary["length_advice"] = length_advice(minutes.training)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    if isinstance(ds, PersonDataset):
        typer.echo("\n".join(_person_lines(path, ds, summary) + _usable_lines(ds)))
        return
    m, q = ds.manifest, summary["quality"]
    cov = q["head_hull_coverage"]
    lines = [
        f"dataset    {path}",
        f"source     {m['source']['name']} ({m['source']['width']}x{m['source']['height']}, {m['source']['fps']} fps, sha256 {m['source']['sha256'][:12]})",
        f"frames     {ds.n_frames} at {ds.fps:g} fps ({ds.n_frames / ds.fps:.1f} s), {ds.size} px crop {m['crop']}",
        f"splits     " + ", ".join(f"{k} {v[0]}-{v[1]}" for k, v in summary["splits"].items()),
        f"camera     focal {m['camera']['focal']:.1f} px (fov {m['camera']['fov_degrees']:.1f} deg)",
        f"audio      " + (f"{m['audio']['duration']:.2f} s, features: {', '.join(summary['audio_features']) or 'none'}" if ds.has_audio else "none (--no-audio)"),
        f"av offset  " + (offset_summary(m) or ("not estimated (processed before the offset step; "
                                                 "`geneface dataset av-offset` estimates it)" if ds.has_audio else "-")),
        f"reproj     {_fmt_stats(q['reprojection_error_px'], ' px')}",
        f"head mask  covers {100 * cov['min']:.2f}% (min) / {100 * cov['mean']:.2f}% (mean) of the 68-point face hull" if cov.get("min") is not None else "head mask  -",
        f"tracking   {q['tracking_failures']} failed, {q['interpolated_frames']} interpolated, {q['multi_face_frames']} with several faces, confidence {_fmt_stats(q['confidence'])}",
        f"timings    " + ", ".join(f"{k} {v:g}" + ("" if k == "fps" else " s") for k, v in summary["timings"].items()),
    ]
    for warning in m.get("warnings", []):
        lines.append(f"warning    {warning}")
    typer.echo("\n".join(lines + _usable_lines(ds)))


def _person_lines(path: Path, ds, summary: dict) -> list[str]:
    """`dataset info` of a person: its figures, then one row per clip."""
    identity = summary.get("identity") or {}
    distances = identity.get("distances") or {}
    lines = [
        f"person     {path} ({ds.n_clips} clips)",
        f"frames     {ds.n_frames} at {ds.fps:g} fps ({ds.n_frames / ds.fps:.1f} s), {ds.size} px",
        f"splits     " + ", ".join(f"{k} {v[0]}-{v[1]}" for k, v in summary["splits"].items()),
        f"audio      features: {', '.join(summary['audio_features']) or 'none'}",
        f"identity   " + (f"threshold {identity.get('threshold')} ({identity.get('mode')}); flagged: "
                          f"{', '.join(identity.get('flagged') or []) or 'none'}" if identity else "not checked"),
        "clips      name, frames, source, av offset (frames), failed frames, identity distance",
    ]
    width = max(len(c["name"]) for c in summary["clips"])
    for c in summary["clips"]:
        d = distances.get(c["name"])
        offset = "-" if c["av_offset"] is None else f"{c['av_offset']:+g}"
        lines.append(f"  {c['name']:<{width}}  {c['frames'][0]}-{c['frames'][1]}  {c['source']}  offset {offset}  "
                     f"failed {c['failed_frames']}  identity {'-' if d is None else f'{d:.4f}'}"
                     + ("  held out" if c["held_out"] else ""))
    for warning in summary.get("warnings") or []:
        lines.append(f"warning    {warning}")
    return lines


@dataset_app.command("subset")
def dataset_subset(
    person: Path = typer.Argument(..., help="A person of several clips (`geneface process CLIP CLIP ... -o PERSON`)."),
    output: Path = typer.Option(..., "--output", "-o", help="The person folder to create: a manifest and statistics; "
                                "its clips stay in PERSON."),
    train_minutes: Optional[float] = typer.Option(None, "--train-minutes", help="The first training clips holding at "
                                                  "least this many minutes of tracked frames."),
    train_clips: Optional[int] = typer.Option(None, "--train-clips", help="The first N training clips."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing person folder."),
) -> None:
    """A person of PERSON's first training clips and exactly its held-out clips (nested subsets, one held-out set)."""
    import shutil

    from geneface.core.outputs import prepare_output
    from geneface.core.person import PersonDataset, open_dataset, subset_clips, write_subset
    from geneface.core.dataset import DatasetError
    from geneface.processing.person_process import is_person_folder

    prepare_output(output, kind="dir", overwrite=overwrite, inputs=(person,), replaceable=is_person_folder)
    source = open_dataset(person)
    if not isinstance(source, PersonDataset):
        raise DatasetError(f"{person}: a dataset of one video; a subset is taken of a person of several clips")
    subset_clips(source, train_minutes, train_clips)  # a bad choice refused before anything is replaced
    if overwrite and output.is_dir():
        shutil.rmtree(output)
    manifest = write_subset(person, output, train_minutes=train_minutes, train_clips=train_clips)
    ds = open_dataset(output)
    held = manifest["held_out_clips"]
    typer.echo(f"wrote {output}: {ds.n_clips - len(held)} training clips of {person} and its {len(held)} held-out "
               f"clip(s) ({', '.join(held)})")
    typer.echo("\n".join(_usable_lines(ds)))


@dataset_app.command("index")
def dataset_index(
    corpus: Path = typer.Argument(..., help="A corpus folder of datasets (searched recursively)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an index that exists (rebuild it)."),
    quiet: bool = _QUIET,
) -> None:
    """(Re)build CORPUS/corpus_index.npz, the index training reads instead of walking the folders."""
    from geneface.app.process import index_corpus
    from geneface.core.corpus_index import INDEX
    from geneface.core.dataset import DatasetError
    from geneface.core.outputs import prepare_output

    if not corpus.is_dir():
        raise DatasetError(f"{corpus}: no such folder")
    prepare_output(corpus / INDEX, overwrite=overwrite, suffixes=(".npz",), what="the index")
    index = index_corpus(corpus, quiet)
    typer.echo(f"wrote {corpus / INDEX}: {len(index)} datasets, {len(set(index.speaker.tolist()))} speakers, "
               f"{int(index.n_frames.sum())} frames, {int(index.skip_training.sum())} flagged to skip training")


@dataset_app.command("av-offset")
def dataset_av_offset(
    paths: List[Path] = typer.Argument(..., help="Datasets, or corpus folders of datasets (searched recursively)."),
    av_offset: str = _AV_OFFSET,
) -> None:
    """Estimate the audio-to-video offset of finished datasets and apply the --av-offset rule, in place."""
    from geneface.errors import UsageError
    from geneface.app.process import reestimate_dataset
    from geneface.core.dataset import require_files
    from geneface.processing.offset_stage import offset_summary
    from geneface.training.data import dataset_folders

    try:
        from geneface.processing.av_offset import parse_mode

        mode = parse_mode(av_offset)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from geneface.registry import get_registry

    registry = get_registry()
    folders = [f for p in paths for f in dataset_folders(p)]
    for folder in folders:  # every dataset checked before any is changed in place
        require_files(folder)
    for folder in folders:
        manifest = reestimate_dataset(folder, registry, mode)
        typer.echo(f"{folder}: {offset_summary(manifest)}")
    from geneface.app.process import index_corpus
    from geneface.core.corpus_index import has_index

    for path in paths:  # the flags a corpus index records may have changed: rebuild it
        if has_index(path):
            index_corpus(path, quiet=True)
            typer.echo(f"{path}: corpus index rebuilt")


@dataset_app.command("preview")
def dataset_preview(
    path: Path = typer.Argument(..., help="A dataset folder."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="The mp4 to write (default: DATASET_preview.mp4 beside it)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N frames."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the mp4 if it exists."),
    quiet: bool = _QUIET,
) -> None:
    """Write an mp4 of the frames with landmarks, masks and head-pose axes drawn on."""
    from geneface.core.dataset import Dataset, require_files
    from geneface.core.outputs import prepare_output
    from geneface.core.progress import ProgressBars
    from geneface.processing.preview import write_preview

    ds = Dataset(path)
    require_files(path, ds.manifest)  # a damaged dataset named before any frame is drawn
    out = output or path.resolve().with_name(f"{path.resolve().name}_preview.mp4")
    prepare_output(out, overwrite=overwrite, inputs=(path,), suffixes=(".mp4",))
    total = ds.n_frames if limit is None else min(limit, ds.n_frames)
    with ProgressBars(quiet) as bars:
        n = write_preview(ds, out, limit=limit, progress=bars.task("preview", total))
    typer.echo(f"wrote {out}: {n} frames")
    sys.stdout.flush()
