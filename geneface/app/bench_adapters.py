"""`geneface bench adapters`: domain adapters side by side on clips of the target person.

For every evaluation clip the motion generator turns the clip's audio features into generic
motion once; each adapter maps that motion to the person, and the result is scored against
the clip's true landmarks in the person's units (`geneface.metrics.motion`): mouth opening
statistics and their gap, LMD and landmark distance, lip sync by the SyncScorer. A `truth`
row scores the true landmarks' own sync, the reference the adapters are read against.

The evaluation clips are the person's held-out part (the last 1/11 of each video, never
trained on: `geneface.training.person_data`), or every clip of another folder of the same
person (`eval_path`: a synthetic test set with exact ground truth, say). The truth is then
de-normalised with that folder's own statistics: both are the person's canonical landmarks.

`run_bench_adapters` is the whole command: flags parsed, the output prepared, the stages
made by the registry it is handed, the report (adapters.json, adapters.md) written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Optional, Sequence

import attrs

from geneface.core.progress import track
from geneface.core.records import FEATURE_RATE, VIDEO_FPS, AudioFeatures, Motion
from geneface.core.stages import RunContext, Stage
from geneface.errors import StageMismatchError, UsageError
from geneface.metrics.motion import MM, RunningMotionScores, score_motion

TRUTH = "truth"  # the label of the reference row


# -- building the compared stages ----------------------------------------------------------


@attrs.frozen
class AdapterSpec:
    """One `--adapter [LABEL:]NAME[=CHECKPOINT]`."""

    label: str
    name: str
    checkpoint: Optional[Path] = None


def parse_adapter(text: str, where: str = "--adapter") -> AdapterSpec:
    """`NAME`, `NAME=CKPT`, `LABEL:NAME` or `LABEL:NAME=CKPT` (a label tells apart two
    checkpoints of one plugin; rows are labelled NAME otherwise)."""
    head, eq, ckpt = text.partition("=")
    label, colon, name = head.partition(":")
    if not colon:
        label, name = head, head
    label, name, ckpt = label.strip(), name.strip(), ckpt.strip()
    if not name or (colon and not label) or (eq and not ckpt):
        raise UsageError(f"{where} {text!r}: expected NAME, NAME=CHECKPOINT or LABEL:NAME=CHECKPOINT")
    return AdapterSpec(label, name, Path(ckpt).expanduser() if eq else None)


def parse_adapters(texts: Sequence[str], where: str = "--adapter") -> list[AdapterSpec]:
    specs = [parse_adapter(t, where) for t in texts]
    seen = set()
    for spec in specs:
        if spec.label == TRUTH:
            raise UsageError(f"{where}: the label '{TRUTH}' is the reference row's; choose another (LABEL:NAME=CKPT)")
        if spec.label in seen:
            raise UsageError(f"{where}: two rows labelled '{spec.label}'; label them apart, e.g. "
                             f"{where} a:{spec.name}=CKPT {where} b:{spec.name}=CKPT")
        seen.add(spec.label)
    return specs


def build_adapter(spec: AdapterSpec, registry, where: str = "--adapter") -> Stage:
    """The plugin with its default config, or restored from its checkpoint (whose plugin must
    be the one named)."""
    entry = registry.get("domain_adapter", spec.name, where=where)  # unknown names: did you mean
    if spec.checkpoint is None:
        return entry.cls()
    stage = registry.load(spec.checkpoint, "domain_adapter", f"{where} {spec.label}")
    if stage.name != spec.name:
        raise UsageError(f"{where} {spec.name}={spec.checkpoint}: the checkpoint is of domain_adapter "
                         f"'{stage.name}', not '{spec.name}'")
    return stage


def generator_encoder(generator: Stage, registry, person_path: Optional[Path] = None):
    """The audio encoder the motion generator was trained with, as `load_person` takes it.

    A dataset holds its features already, so only the name is needed there; an encoder that
    cannot run here (a missing optional dependency) is then still fine.
    """
    from geneface.core.dataset import is_dataset
    from geneface.core.person import is_person
    from geneface.errors import PluginError

    name = getattr(generator, "encoder", "")
    if not name:
        raise UsageError(f"--motion-generator: the checkpoint of '{generator.name}' does not name the audio "
                         "encoder it was trained with; retrain it with this version")
    try:
        entry = registry.get("audio_encoder", name, where="--motion-generator: its audio encoder")
    except PluginError:
        if person_path is not None and (is_dataset(Path(person_path)) or is_person(Path(person_path))):
            return SimpleNamespace(name=name)  # the features are read from the dataset, never computed
        raise
    return entry.cls()


# -- the comparison -------------------------------------------------------------------------


def _sync(syncnet, motion: Motion, features: AudioFeatures):
    from geneface.models.syncnet import V_FRAMES

    if syncnet is None or motion.n_frames < V_FRAMES or features.n_frames < 2 * V_FRAMES:
        return None  # too short for one sync window: scored on the other numbers only
    return syncnet.score(motion, features)


def _adapt(stage: Stage, label: str, motion: Motion, producer: str) -> Motion:
    problem = stage.check_input(motion)
    if problem:
        raise StageMismatchError(f"{producer} -> domain_adapter '{label}': {problem}")
    adapted = stage.apply(motion, RunContext())
    if not isinstance(adapted, Motion):
        raise StageMismatchError(f"domain_adapter '{label}' returned {type(adapted).__name__}, not motion")
    if adapted.n_frames != motion.n_frames:
        raise StageMismatchError(f"domain_adapter '{label}' changed the length from {motion.n_frames} "
                                 f"to {adapted.n_frames} frames")
    return adapted


def _stage_info(stage: Stage) -> dict:
    from geneface.core.config import unstructure

    info = {"plugin": stage.name}
    try:
        info["config"] = unstructure(stage.config)
    except Exception:  # a third-party config that does not unstructure: its name is enough
        pass
    if getattr(stage, "encoder", ""):
        info["encoder"] = stage.encoder
    return info


def compare_adapters(person_path: Path, generator: Stage, adapters: Sequence[tuple[str, Stage]], syncnet=None,
                     eval_path: Optional[Path] = None, progress: bool = False, *, registry) -> dict:
    """Score every adapter on the evaluation clips; a JSON-ready dict.

    `adapters`: (label, stage) pairs. Returns `settings`, `rows` (the `truth` row first, then
    one per adapter in order: label, plugin and the pooled `scores`) and `clips` (per clip:
    name, frames and every row's scores). Mouth statistics are in the person's units; the
    distances are x1000 (`*_mm`). `registry` (the caller's) names the generator's audio encoder.
    """
    from geneface.training.person_data import load_person

    if not adapters:
        raise UsageError("--adapter: nothing to compare")
    encoder = generator_encoder(generator, registry, person_path)
    if syncnet is not None and getattr(syncnet, "encoder", "") and syncnet.encoder != encoder.name:
        raise StageMismatchError(f"--syncnet was trained on '{syncnet.encoder}' features, the motion generator "
                                 f"on '{encoder.name}' features; give a syncnet of the same encoder")
    person = load_person(Path(person_path), encoder, where="--person")
    if eval_path is not None:
        source = load_person(Path(eval_path), encoder, min_train=1, where="--eval")
        clips = [*source.train, *source.held_out]
    else:
        source, clips = person, list(person.held_out)
    producer = f"motion_generator '{generator.name}'"
    first = AudioFeatures(clips[0].features, FEATURE_RATE, encoder=encoder.name)
    problem = generator.check_input(first)
    if problem:
        raise StageMismatchError(f"features '{encoder.name}' of {eval_path or person_path} -> {producer}: {problem}")

    labels = [label for label, _ in adapters]
    running = {label: RunningMotionScores() for label in [TRUTH, *labels]}
    per_clip = []
    for clip in track(clips, len(clips), f"scoring {len(adapters)} adapter(s)", unit="clip", quiet=not progress):
        features = AudioFeatures(clip.features, FEATURE_RATE, encoder=encoder.name)
        truth = source.denormalize(clip.landmarks)
        # The truth as the person's motion: normalised by the person's statistics for sync.
        true_motion = Motion(truth, VIDEO_FPS, person.mean, person.std)
        rows = {TRUTH: score_motion(truth, truth, _sync(syncnet, true_motion, features))}
        motion = generator.apply(features, RunContext())
        if motion.n_frames != clip.n_frames:
            raise StageMismatchError(f"{producer} made {motion.n_frames} frames for a clip of {clip.n_frames}")
        for label, stage in adapters:
            adapted = _adapt(stage, label, motion, producer)
            rows[label] = score_motion(adapted.landmarks, truth, _sync(syncnet, adapted, features))
        for label, scores in rows.items():
            running[label].add(scores)
        per_clip.append({"clip": clip.name, "n_frames": clip.n_frames,
                         "scores": {label: s.as_dict() for label, s in rows.items()}})

    def pooled(label):
        result = running[label].result()
        if label == TRUTH:  # the truth against itself: only its statistics and sync mean anything
            result = attrs.evolve(result, mouth_gap=None, lmd_mm=None, landmark_mm=None)
        return result.as_dict(curve=True)

    settings = {
        "person": str(person_path),
        "eval": None if eval_path is None else str(eval_path),
        "eval_clips": "every clip of --eval" if eval_path is not None else "the person's held-out last 1/11",
        "motion_generator": _stage_info(generator),
        "syncnet": None if syncnet is None else _stage_info(syncnet),
        "encoder": encoder.name,
        "adapters": [{"label": label, **_stage_info(stage)} for label, stage in adapters],
        "n_clips": len(clips),
        "n_frames": sum(c.n_frames for c in clips),
        "units": "mouth_* in the person's canonical units; *_mm = mean L2 distance x1000 (canonical units ~ m)",
    }
    rows = [{"label": TRUTH, "plugin": None, "scores": pooled(TRUTH)}]
    rows += [{"label": label, "plugin": stage.name, "scores": pooled(label)} for label, stage in adapters]
    return {"benchmark": "adapters", "settings": settings, "rows": rows, "clips": per_clip}


def run_bench_adapters(registry, person: Path, motion_generator: Path, syncnet: Path, out: Path,
                       adapters: Optional[Sequence[str]] = None, eval_path: Optional[Path] = None,
                       overwrite: bool = False, progress: bool = False) -> tuple[dict, Path, Path]:
    """The whole command: the `--adapter [LABEL:]NAME[=CHECKPOINT]` texts parsed (None:
    `identity` alone), the output folder prepared, the adapters built and the checkpoints
    loaded by `registry`, every adapter scored (`compare_adapters`), the checkpoints recorded
    in the settings and the report written. Returns the result and the paths of
    adapters.json and adapters.md."""
    from geneface.core.outputs import prepare_output

    specs = parse_adapters(list(adapters or ["identity"]))
    inputs = [person, motion_generator, syncnet, eval_path, *(s.checkpoint for s in specs)]
    prepare_output(out, kind="dir", overwrite=overwrite, inputs=inputs, what="--out",
                   replaceable=lambda p: (p / "adapters.json").is_file())
    stages = [(s.label, build_adapter(s, registry)) for s in specs]
    generator = registry.load(motion_generator, "motion_generator", "--motion-generator")
    judge = registry.load(syncnet, "syncnet", "--syncnet")
    result = compare_adapters(person, generator, stages, judge, eval_path=eval_path, progress=progress,
                              registry=registry)
    result["settings"]["motion_generator"]["checkpoint"] = str(motion_generator)
    result["settings"]["syncnet"]["checkpoint"] = str(syncnet)
    for info, spec in zip(result["settings"]["adapters"], specs):
        info["checkpoint"] = None if spec.checkpoint is None else str(spec.checkpoint)
    json_path, md_path = write_report(result, out, overwrite=overwrite)
    return result, json_path, md_path


# -- report ---------------------------------------------------------------------------------

COLUMNS = ("adapter", "mouth mean gen / true (mm)", "mouth std gen / true (mm)", "mouth gap", "LMD mm",
           "landmark mm", "sync conf", "offset")


def _num(value, digits: int = 2, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value * scale:.{digits}f}"


def format_table(result: dict) -> str:
    """The markdown table of a `compare_adapters` result, one line per row."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(" --- " for _ in COLUMNS) + "|"]
    for row in result["rows"]:
        s = row["scores"]
        offset = s.get("sync_offset")
        cells = [
            row["label"] if row["plugin"] in (None, row["label"]) else f"{row['label']} ({row['plugin']})",
            f"{_num(s['mouth_mean_gen'], scale=MM)} / {_num(s['mouth_mean_true'], scale=MM)}",
            f"{_num(s['mouth_std_gen'], scale=MM)} / {_num(s['mouth_std_true'], scale=MM)}",
            _num(s["mouth_gap"], 3),
            _num(s["lmd_mm"]),
            _num(s["landmark_mm"]),
            _num(s["sync_confidence"], 3),
            "-" if offset is None else f"{offset:+d}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_markdown(result: dict) -> str:
    settings = result["settings"]
    where = settings["eval"] or settings["person"]
    head = (f"# Domain adapters on {where}\n\n"
            f"{settings['n_clips']} clip(s), {settings['n_frames']} frames ({settings['eval_clips']}); "
            f"motion generator '{settings['motion_generator']['plugin']}' on '{settings['encoder']}' features.\n"
            "Mouth: opening of the inner lips (mean and spread over frames, x1000); gap = (|mean diff| + "
            "|std diff|) / true std. LMD: centred mouth points 48-67; landmark: all 68 points uncentred "
            "(mean L2 x1000). Sync: the SyncScorer's confidence at offset 0 and its best offset.\n\n")
    return head + format_table(result) + "\n"


def write_report(result: dict, out: Path, overwrite: bool = False) -> tuple[Path, Path]:
    """OUT/adapters.json and OUT/adapters.md, the folder written under a temporary name."""
    from geneface.core.atomic import atomic_directory

    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        (tmp / "adapters.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
        (tmp / "adapters.md").write_text(format_markdown(result))
    return out / "adapters.json", out / "adapters.md"
