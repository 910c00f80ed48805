"""`geneface bench motion`: audio-to-motion models on real speakers they never trained on.

Every model (a trained `motion_generator`, the `vae` or any other through the registry)
turns each evaluation clip's audio features into motion, sampled with one temperature and
seed (deterministic). The generated motion is put into the clip's own face (its normalised
landmarks x the clip's std + the clip's mean: the convention every generic model and every
dataset share, `geneface.core.records.rebase`) and scored against the clip's
tracked landmarks, frame for frame (`geneface.metrics.lag`):

- mouth opening (`geneface.core.landmarks68.mouth_opening`, the inner-lip gap): Pearson r at
  lag 0, and over lags -L..L the best lag and its r. Lag k pairs generated frame t + k with
  true frame t, so a positive lag means the generated mouth moves late;
- amplitude ratio: std of the generated opening / std of the true one (1: as lively);
- mouth LMD (`geneface.metrics.motion`): mean L2 of points 48-67, each frame's mouth
  centred, in the dataset's canonical units (x1000: mm);
- lip sync by the SyncScorer: its confidence at offset 0 and its best offset.

Evaluation groups: the clips of the given datasets or corpora, restricted to some speakers,
and a person's held-out frames (the last 1/11 of the person's video). A row is one model on
one group; every figure is pooled with every frame weighing the same (per-clip values
weighted by the clip's frames), and the correlations are also computed on every frame of the
group pooled. A `truth` row per group scores the true landmarks' own lip sync, the reference
the models' sync is read against.

Beside it: `bench_motion_choice` (the models and flags, checked before any work),
`bench_motion_clips` (the groups' clips and their features), `bench_motion_report`
(motion_bench.json and motion_bench.md). `run_bench_motion` is the whole command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from geneface.app.bench_adapters import _stage_info
from geneface.app.bench_motion_choice import (
    TRUTH,
    ModelSpec,
    check_model,
    check_request,
    parse_models,
    parse_speakers,
)
from geneface.app.bench_motion_clips import (
    GROUP_PERSON,
    GROUP_SPEAKERS,
    EvalClip,
    person_clips,
    resolve_encoder,
    speaker_clips,
)
from geneface.app.bench_motion_report import REPORT, write_report
from geneface.core.landmarks68 import mouth_opening
from geneface.core.progress import track
from geneface.core.records import FEATURE_RATE, N_LANDMARKS, VIDEO_FPS, AudioFeatures, Motion
from geneface.core.stages import RunContext, Stage
from geneface.errors import StageMismatchError, UsageError
from geneface.metrics.lag import MAX_LAG, RunningRow, score_clip
from geneface.metrics.motion import RunningMotionScores, score_motion

MAX_OFFSET = 15  # audio offsets the SyncScorer searches each way


# -- running the models ------------------------------------------------------------------


def _accepts(fn, *names: str) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return all(n in params for n in names)


def sampling_of(stage: Stage) -> str:
    return "generate" if _accepts(getattr(stage, "generate", None), "temperature", "seed") else "apply"


def effective_temperature(stage: Stage, temperature: Optional[float]) -> Optional[float]:
    if sampling_of(stage) != "generate":
        return None
    return getattr(stage.config, "temperature", None) if temperature is None else float(temperature)


def generate(stage: Stage, label: str, features: AudioFeatures, temperature: Optional[float], seed: int) -> Motion:
    """The model's motion for `features`: `generate(features, temperature, seed)` where the
    plugin samples that way (the `vae`), else `apply` with torch's generator seeded."""
    problem = stage.check_input(features)
    if problem:
        raise StageMismatchError(f"features '{features.encoder}' -> --model {label} ('{stage.name}'): {problem}")
    if sampling_of(stage) == "generate":
        motion = stage.generate(features, temperature=temperature, seed=seed)
    else:
        import torch

        torch.manual_seed(seed)
        motion = stage.apply(features, RunContext())
    if not isinstance(motion, Motion):
        raise StageMismatchError(f"--model {label} ('{stage.name}') returned {type(motion).__name__}, not motion")
    return motion


def into_face(motion: Motion, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Generated motion in a clip's own face: its normalised landmarks x the clip's std + the
    clip's mean (`rebase`; motion without statistics is taken as in the clip's units)."""
    from geneface.core.records import rebase

    z = rebase(motion, mean, std).reshape(motion.n_frames, N_LANDMARKS, 3).astype(np.float64)
    return z * np.maximum(np.asarray(std, np.float64), 1e-6) + np.asarray(mean, np.float64)


def _sync(syncnet, landmarks: np.ndarray, clip: EvalClip, features: AudioFeatures, max_offset: int):
    from geneface.models.syncnet import V_FRAMES

    if syncnet is None or clip.n_frames < V_FRAMES:
        return None  # shorter than one sync window: scored on the other figures only
    return syncnet.score(Motion(landmarks, VIDEO_FPS, clip.mean, clip.std), features, max_offset=max_offset)


def trained_speakers(path: Path) -> Optional[list[str]]:
    """The speakers a checkpoint's training run read (its metadata), when it says."""
    from geneface.core.checkpoint import read_meta

    names = (read_meta(Path(path)).get("data") or {}).get("train_speakers")
    return sorted(map(str, names)) if isinstance(names, list) else None


# -- the bench ---------------------------------------------------------------------------------


def _load_groups(data: Sequence[Path], speakers: Optional[Sequence[str]], person: Optional[Path],
                 encoder) -> tuple[list[EvalClip], list[dict]]:
    """Every group's clips, and each group's record for the settings (its clips and frames)."""
    clips: list[EvalClip] = []
    groups: list[dict] = []
    if data:
        found = speaker_clips(data, encoder, speakers)
        clips += found
        groups.append({"name": GROUP_SPEAKERS, "data": [str(p) for p in data], "speakers": sorted({c.speaker for c in found})})
    if person is not None:
        found, info = person_clips(person, encoder)
        clips += found
        groups.append({"name": GROUP_PERSON, **info, "speakers": sorted({c.speaker for c in found})})
    for g in groups:
        members = [c for c in clips if c.group == g["name"]]
        g.update(clips=len(members), frames=sum(c.n_frames for c in members))
    return clips, groups


def bench_motion(models: Sequence[tuple[ModelSpec, Stage]], syncnet: Stage, syncnet_path: Path,
                 data: Sequence[Path] = (), speakers: Optional[Sequence[str]] = None, person: Optional[Path] = None,
                 temperature: Optional[float] = None, seed: int = 0, max_lag: int = MAX_LAG,
                 max_offset: int = MAX_OFFSET, progress: bool = False, *, registry) -> dict:
    """Score every model on every group's clips; a JSON-ready dict with `settings`, `rows`
    (per group: the `truth` row, then one per model), `speakers` (per model, group and
    speaker) and `clips` (per clip, every model's figures). `registry` (the application's)
    names the SyncNet's audio encoder."""
    if not models:
        raise UsageError("--model: nothing to compare")
    check_request(data, speakers, person, temperature)
    encoder = resolve_encoder(syncnet, registry)
    for spec, stage in models:
        check_model(spec, stage, encoder.name, syncnet_path)

    clips, groups = _load_groups(data, speakers, person, encoder)
    first = AudioFeatures(clips[0].features, FEATURE_RATE, encoder=encoder.name)
    width = getattr(syncnet, "expected_width", None)
    if width is not None and first.width != width:
        raise StageMismatchError(f"--syncnet {syncnet_path} was trained on features {width} wide, the data's "
                                 f"'{encoder.name}' features are {first.width} wide")
    for spec, stage in models:  # a feature-width mismatch: one line, before any work
        problem = stage.check_input(first)
        if problem:
            raise StageMismatchError(f"'{encoder.name}' features of the data -> --model {spec.label} "
                                     f"({spec.checkpoint}): {problem}")

    labels = [spec.label for spec, _ in models]
    temps = {spec.label: effective_temperature(stage, temperature) for spec, stage in models}
    trained = {spec.label: trained_speakers(spec.checkpoint) for spec, _ in models}
    group_names = [g["name"] for g in groups]
    rows = {(g, m): RunningRow(max_lag) for g in group_names for m in labels}
    truth_rows = {g: RunningMotionScores() for g in group_names}
    per_speaker: dict[tuple, RunningRow] = {}
    per_clip = []
    for clip in track(clips, len(clips), f"scoring {len(models)} model(s)", unit="clip", quiet=not progress):
        features = AudioFeatures(clip.features, FEATURE_RATE, encoder=encoder.name)
        truth_sync = _sync(syncnet, clip.truth, clip, features, max_offset)
        truth_rows[clip.group].add(score_motion(clip.truth, clip.truth, truth_sync))
        true_opening = mouth_opening(clip.truth)
        entry = {"group": clip.group, "clip": clip.name, "speaker": clip.speaker, "source": clip.source,
                 "n_frames": clip.n_frames,
                 "truth_sync": None if truth_sync is None else {"confidence": float(truth_sync.confidence),
                                                                "offset": int(truth_sync.offset)},
                 "models": {}}
        for spec, stage in models:
            motion = generate(stage, spec.label, features, temps[spec.label], seed)
            if motion.n_frames != clip.n_frames:
                raise StageMismatchError(f"--model {spec.label} ('{stage.name}') made {motion.n_frames} frames for "
                                         f"clip {clip.name} of {clip.n_frames}")
            gen = into_face(motion, clip.mean, clip.std)
            scores = score_clip(gen, clip.truth, _sync(syncnet, gen, clip, features, max_offset), max_lag)
            gen_opening = mouth_opening(gen)
            rows[clip.group, spec.label].add(scores, gen_opening, true_opening)
            key = (spec.label, clip.group, clip.speaker)
            per_speaker.setdefault(key, RunningRow(max_lag)).add(scores, gen_opening, true_opening)
            entry["models"][spec.label] = scores.as_dict()
        per_clip.append(entry)

    out_rows, warnings = [], []
    for g in group_names:
        t = truth_rows[g].result().as_dict()
        n_clips = next(x["clips"] for x in groups if x["name"] == g)
        out_rows.append({"model": TRUTH, "plugin": None, "group": g,
                         "scores": {"clips": n_clips, "n_frames": t["n_frames"],
                                    "sync_confidence": t["sync_confidence"], "sync_offset": t["sync_offset"],
                                    "mouth_mean_true": t["mouth_mean_true"], "mouth_std_true": t["mouth_std_true"]}})
        for spec, stage in models:
            out_rows.append({"model": spec.label, "plugin": stage.name, "group": g,
                             "scores": rows[g, spec.label].result()})
    speaker_rows = []
    for (label, g, speaker), running in per_speaker.items():
        seen = trained[label]
        speaker_rows.append({"model": label, "group": g, "speaker": speaker,
                             "trained_on": None if seen is None else speaker in seen, "scores": running.result()})
    for label in labels:  # the checkpoint's own record of its training speakers
        known = sorted({r["speaker"] for r in speaker_rows if r["model"] == label and r["trained_on"]
                        and r["group"] == GROUP_SPEAKERS})
        if known:
            warnings.append(f"model '{label}' was trained on speaker(s) {', '.join(known)}: its '{GROUP_SPEAKERS}' "
                            "figures include clips it was trained on")

    settings = {
        "data": [str(p) for p in data],
        "speakers": None if speakers is None else list(speakers),
        "person": None if person is None else str(person),
        "encoder": encoder.name,
        "syncnet": {"checkpoint": str(syncnet_path), **_stage_info(syncnet)},
        "models": [{"label": spec.label, "checkpoint": str(spec.checkpoint), **_stage_info(stage),
                    "sampling": sampling_of(stage), "temperature": temps[spec.label], "seed": seed,
                    "train_speakers": trained[spec.label]} for spec, stage in models],
        "temperature": temperature,
        "seed": seed,
        "max_lag": max_lag,
        "max_offset": max_offset,
        "lag_convention": "lag k pairs generated frame t+k with true frame t: positive = generated motion late",
        "groups": groups,
        "units": "lmd in the data's canonical units (about metres), lmd_mm = lmd x1000; mouth_* in those units; "
                 "generated motion is put into each clip's face (normalised x clip std + clip mean)",
        "warnings": warnings,
    }
    return {"benchmark": "motion", "settings": settings, "rows": out_rows, "speakers": speaker_rows,
            "clips": per_clip}


def run_bench_motion(registry, models: Sequence[str], syncnet: Path, out: Path, data: Sequence[Path] = (),
                     speakers: Optional[str] = None, person: Optional[Path] = None,
                     temperature: Optional[float] = None, seed: int = 0, overwrite: bool = False,
                     progress: bool = False) -> tuple[dict, Path, Path]:
    """The whole command: the flags checked (`--model NAME=CHECKPOINT` texts, `--speakers`
    comma-separated), the output folder prepared, the SyncNet and the models loaded by
    `registry`, every model scored (`bench_motion`) and the report written. Returns the
    result and the paths of motion_bench.json and motion_bench.md."""
    from geneface.core.outputs import prepare_output

    specs = parse_models(models)
    names = parse_speakers(speakers)
    check_request(data, names, person, temperature)  # flags that do not fit: one line, before any work
    inputs = [syncnet, person, *data, *(s.checkpoint for s in specs)]
    prepare_output(out, kind="dir", overwrite=overwrite, inputs=inputs, what="--out",
                   replaceable=lambda p: (p / f"{REPORT}.json").is_file())
    judge = registry.load(syncnet, "syncnet", "--syncnet")
    stages = [(s, registry.load(s.checkpoint, "motion_generator", f"--model {s.label}")) for s in specs]
    result = bench_motion(stages, judge, syncnet, data=data, speakers=names, person=person,
                          temperature=temperature, seed=seed, progress=progress, registry=registry)
    json_path, md_path = write_report(result, out, overwrite=overwrite)
    return result, json_path, md_path
