"""`geneface bench motion`: audio-to-motion models on real speakers they never trained on.

Every model (a trained `motion_generator`, the `vae` or any other through the registry)
turns each evaluation clip's audio features into motion, sampled with one temperature and
seed (deterministic). The generated motion is put into the clip's own face (its normalised
landmarks x the clip's std + the clip's mean: the convention every generic model and every
dataset share, `geneface.training.person_data.rebase`) and scored against the clip's
tracked landmarks, frame for frame:

- mouth opening (`geneface.core.landmarks68.mouth_opening`, the inner-lip gap): Pearson r at
  lag 0, and over lags -L..L the best lag and its r. Lag k pairs generated frame t + k with
  true frame t, so a positive lag means the generated mouth moves late;
- amplitude ratio: std of the generated opening / std of the true one (1: as lively);
- mouth LMD (`geneface.metrics.motion`): mean L2 of points 48-67, each frame's mouth
  centred, in the dataset's canonical units (x1000: mm);
- lip sync by the SyncScorer: its confidence at offset 0 and its best offset.

Evaluation groups: the clips of the given datasets or corpora (`load_clips`, restricted to
some speakers), and a person's held-out frames (the last 1/11 of the person's video,
`geneface.training.person_data`). A row is one model on one group; every figure is pooled
with every frame weighing the same (per-clip values weighted by the clip's frames), and the
correlations are also computed on every frame of the group pooled. A `truth` row per group
scores the true landmarks' own lip sync, the reference the models' sync is read against.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional, Sequence

import attrs
import numpy as np

from geneface.app.bench_adapters import _stage_info
from geneface.core.records import FEATURE_RATE, N_LANDMARKS, VIDEO_FPS, AudioFeatures, Motion
from geneface.core.stages import RunContext, Stage
from geneface.errors import CheckpointError, StageMismatchError, UsageError
from geneface.metrics.motion import MM, RunningMotionScores, score_motion

MAX_LAG = 5  # frames searched each way for the best mouth-opening lag
MIN_OVERLAP = 5  # frames a lagged pair must still share (and at least half the clip)
MAX_OFFSET = 15  # audio offsets the SyncScorer searches each way
GROUP_SPEAKERS = "held-out speakers"
GROUP_PERSON = "person held-out"
TRUTH = "truth"  # the label of each group's reference row
REPORT = "motion_bench"


# -- the figures of one clip -----------------------------------------------------------------


def pearson(a, b) -> Optional[float]:
    """Pearson r of two equal-length series; None when either is (nearly) constant or too short."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) != len(b):
        raise ValueError(f"series differ in length: {len(a)} and {len(b)}")
    if len(a) < 3:
        return None
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()), 1e-300)
    if den <= (1e-9 * scale) ** 2 * len(a):
        return None
    return float(np.clip((a * b).sum() / den, -1.0, 1.0))


def lag_range(n_frames: int, max_lag: int = MAX_LAG) -> int:
    """The lags searched each way for a clip of `n_frames`: at most `max_lag`, and every lagged
    pair keeps at least MIN_OVERLAP frames and half the clip."""
    return max(0, min(max_lag, n_frames - max(MIN_OVERLAP, int(math.ceil(n_frames / 2)))))


def lagged(gen: np.ndarray, true: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """The frames paired at `lag`: generated t + lag with true t (positive: generated late)."""
    n = len(true)
    if lag >= 0:
        return gen[lag:n], true[: n - lag]
    return gen[: n + lag], true[-lag:n]


def lag_curve(gen, true, max_lag: int = MAX_LAG) -> dict[int, Optional[float]]:
    """Pearson r of the two openings at every lag the clip allows (`lag_range`)."""
    gen, true = np.asarray(gen, np.float64), np.asarray(true, np.float64)
    k = lag_range(len(true), max_lag)
    return {lag: pearson(*lagged(gen, true, lag)) for lag in range(-k, k + 1)}


def best_lag(curve: dict) -> tuple[Optional[int], Optional[float]]:
    """The lag of the highest r (ties: the smallest |lag|, then the earlier) and that r."""
    scored = [(r, lag) for lag, r in curve.items() if r is not None]
    if not scored:
        return None, None
    r, lag = max(scored, key=lambda x: (x[0], -abs(x[1]), -x[1]))
    return int(lag), float(r)


def amplitude_ratio(gen, true) -> Optional[float]:
    """std(generated opening) / std(true opening); None for a still true mouth."""
    s = float(np.std(true))
    return None if s <= 1e-12 else float(np.std(gen)) / s


@attrs.frozen
class ClipScores:
    """One model on one clip (see the module doc); None where a figure is undefined."""

    n_frames: int
    r_lag0: Optional[float]
    best_lag: Optional[int]
    r_best: Optional[float]
    lags: tuple  # the lags searched, -k..k
    amplitude_ratio: Optional[float]
    motion: object  # geneface.metrics.motion.MotionScores: mouth statistics, LMD, sync

    def as_dict(self) -> dict:
        m = self.motion.as_dict()
        return {"n_frames": self.n_frames, "r_lag0": self.r_lag0, "best_lag": self.best_lag, "r_best": self.r_best,
                "lag_range": [self.lags[0], self.lags[-1]] if self.lags else None,
                "amplitude_ratio": self.amplitude_ratio, "lmd": None if m["lmd_mm"] is None else m["lmd_mm"] / MM,
                "lmd_mm": m["lmd_mm"], "sync_confidence": m["sync_confidence"], "sync_offset": m["sync_offset"],
                "mouth_std_gen": m["mouth_std_gen"], "mouth_std_true": m["mouth_std_true"],
                "mouth_mean_gen": m["mouth_mean_gen"], "mouth_mean_true": m["mouth_mean_true"]}


def score_clip(generated, true, sync_result=None, max_lag: int = MAX_LAG) -> ClipScores:
    """Generated vs true landmarks of one clip (T x 68 x 3, both in the clip's face and units)
    and, when given, the SyncScorer's result for the generated motion."""
    from geneface.core.landmarks68 import mouth_opening

    motion = score_motion(generated, true, sync_result)  # checks shapes, lengths and NaN
    g, t = mouth_opening(generated), mouth_opening(true)
    curve = lag_curve(g, t, max_lag)
    lag, r = best_lag(curve)
    return ClipScores(len(t), curve.get(0), lag, r, tuple(sorted(curve)), amplitude_ratio(g, t), motion)


class RunningRow:
    """Pools clips into one row: frame-weighted means of the per-clip figures (over the clips
    where each is defined), the correlations on every frame pooled, and the pooled motion
    scores (`RunningMotionScores`: LMD, mouth statistics, sync)."""

    def __init__(self, max_lag: int = MAX_LAG) -> None:
        self.max_lag = max_lag
        self.clips = 0
        self.frames = 0
        self._sums: dict[str, list[float]] = {}  # name -> [weighted sum, weight, clips]
        self._motion = RunningMotionScores()
        self._gen: list[np.ndarray] = []
        self._true: list[np.ndarray] = []

    def _add(self, name: str, value, weight: int) -> None:
        if value is not None and math.isfinite(value):
            s = self._sums.setdefault(name, [0.0, 0, 0])
            s[0] += weight * float(value)
            s[1] += weight
            s[2] += 1

    def add(self, scores: ClipScores, gen_opening, true_opening) -> None:
        n = scores.n_frames
        self.clips += 1
        self.frames += n
        self._add("r_lag0", scores.r_lag0, n)
        self._add("r_best", scores.r_best, n)
        self._add("best_lag", scores.best_lag, n)
        self._add("abs_best_lag", None if scores.best_lag is None else abs(scores.best_lag), n)
        self._add("amplitude_ratio", scores.amplitude_ratio, n)
        self._motion.add(scores.motion)
        self._gen.append(np.asarray(gen_opening, np.float64))
        self._true.append(np.asarray(true_opening, np.float64))

    def _mean(self, name: str) -> Optional[float]:
        s = self._sums.get(name)
        return None if not s or s[1] == 0 else s[0] / s[1]

    def result(self) -> dict:
        if not self.clips:
            raise ValueError("no clips were scored")
        m = self._motion.result().as_dict()
        # Pooled: every frame of every clip as one series (in the clips' own units), at each lag
        # the pairs of every clip that allows it.
        curve = {}
        for lag in range(-self.max_lag, self.max_lag + 1):
            pairs = [lagged(g, t, lag) for g, t in zip(self._gen, self._true) if abs(lag) <= lag_range(len(t), self.max_lag)]
            if pairs:
                curve[lag] = pearson(np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]))
        pooled_lag, pooled_r = best_lag(curve)
        gen_all, true_all = np.concatenate(self._gen), np.concatenate(self._true)
        return {
            "clips": self.clips, "n_frames": self.frames,
            "r_lag0": self._mean("r_lag0"), "best_lag": self._mean("best_lag"),
            "abs_best_lag": self._mean("abs_best_lag"), "r_best": self._mean("r_best"),
            "clips_with_r": self._sums.get("r_lag0", [0, 0, 0])[2],
            "r_lag0_pooled": pearson(gen_all, true_all), "best_lag_pooled": pooled_lag, "r_best_pooled": pooled_r,
            "amplitude_ratio": self._mean("amplitude_ratio"), "amplitude_ratio_pooled": amplitude_ratio(gen_all, true_all),
            "lmd": None if m["lmd_mm"] is None else m["lmd_mm"] / MM, "lmd_mm": m["lmd_mm"],
            "sync_confidence": m["sync_confidence"], "sync_offset": m["sync_offset"],
            "mouth_mean_gen": m["mouth_mean_gen"], "mouth_std_gen": m["mouth_std_gen"],
            "mouth_mean_true": m["mouth_mean_true"], "mouth_std_true": m["mouth_std_true"],
        }


# -- inputs ------------------------------------------------------------------------------


@attrs.frozen
class ModelSpec:
    """One `--model NAME=CHECKPOINT`."""

    label: str
    checkpoint: Path


def parse_models(texts: Sequence[str], where: str = "--model") -> list[ModelSpec]:
    """`NAME=CHECKPOINT` each, names unique (they label the rows)."""
    specs, seen = [], set()
    for text in texts:
        label, eq, ckpt = text.partition("=")
        label, ckpt = label.strip(), ckpt.strip()
        if not eq or not label or not ckpt:
            raise UsageError(f"{where} {text!r}: expected NAME=CHECKPOINT")
        if label == TRUTH:
            raise UsageError(f"{where}: the name '{TRUTH}' is the reference rows'; choose another")
        if label in seen:
            raise UsageError(f"{where}: two models named '{label}'; name them apart")
        seen.add(label)
        specs.append(ModelSpec(label, Path(ckpt).expanduser()))
    if not specs:
        raise UsageError(f"{where}: give at least one NAME=CHECKPOINT")
    return specs


def parse_speakers(text: Optional[str], where: str = "--speakers") -> Optional[list[str]]:
    if text is None:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UsageError(f"{where}: expected SPEAKER[,SPEAKER...]")
    return names


def check_request(data: Sequence[Path], speakers: Optional[Sequence[str]], person: Optional[Path],
                  temperature: Optional[float]) -> None:
    """The flags that fit together (before any output is prepared or work done)."""
    if not data and person is None:
        raise UsageError("give clips to score: --data DATASET_OR_CORPUS and/or --person DATASET")
    if speakers is not None and not data:
        raise UsageError("--speakers picks speakers of --data; give --data too")
    if temperature is not None and not (math.isfinite(temperature) and temperature >= 0):
        raise UsageError(f"--temperature: expected a number >= 0, got {temperature:g}")
    for path in data:
        if not Path(path).exists():
            raise UsageError(f"--data {path}: no such file or folder")
    if person is not None and not Path(person).exists():
        raise UsageError(f"--person {person}: no such file or folder")


class _StoredFeatures:
    """An audio encoder that cannot run here (an optional dependency is missing): its features
    can still be read from datasets that store them."""

    def __init__(self, name: str, reason: str):
        self.name, self._reason = name, reason

    def encode(self, audio):
        raise UsageError(f"audio encoder '{self.name}' cannot run here ({self._reason}) and the data does not "
                         "store its features")


def resolve_encoder(syncnet: Stage, where: str = "--syncnet", registry=None):
    """The audio encoder the SyncNet was trained on: the features every model must read."""
    from geneface.errors import PluginError
    from geneface.registry import get_registry

    name = getattr(syncnet, "encoder", "")
    if not name:
        raise CheckpointError(f"{where}: the checkpoint does not name the audio encoder it was trained on; "
                              "retrain it with this version")
    try:
        return (registry or get_registry()).get("audio_encoder", name, where=f"{where}: its audio encoder").cls()
    except PluginError as exc:
        return _StoredFeatures(name, str(exc))


def check_model(spec: ModelSpec, stage: Stage, encoder_name: str, syncnet_path: Path) -> None:
    """The model reads the SyncNet's features (one audio encoder for the whole bench)."""
    name = getattr(stage, "encoder", "")
    if not name:
        raise UsageError(f"--model {spec.label}: {spec.checkpoint} does not name the audio encoder it was trained "
                         "with; retrain it with this version")
    if name != encoder_name:
        raise StageMismatchError(f"--model {spec.label}: {spec.checkpoint} was trained on '{name}' features, "
                                 f"--syncnet {syncnet_path} on '{encoder_name}' features; give models and a SyncNet "
                                 "of one audio encoder")


@attrs.frozen(eq=False)
class EvalClip:
    """A clip to score: its features, its true landmarks (T x 68 x 3) and the face statistics
    generated motion is put into."""

    group: str
    name: str
    speaker: str
    source: str
    features: np.ndarray
    truth: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(len(self.truth))


def _face_stats(clip) -> tuple[np.ndarray, np.ndarray]:
    if clip.mean is not None and clip.std is not None:
        return clip.mean, clip.std
    truth = clip.denormalized()
    return truth.mean(0), truth.std(0) + 1e-6


def speaker_clips(data: Sequence[Path], encoder, speakers: Optional[Sequence[str]]) -> list[EvalClip]:
    """The clips of the datasets or corpora in `data` (`load_clips`), of `speakers` only when given."""
    from geneface.core.text import did_you_mean
    from geneface.training.data import load_clips

    clips = load_clips([Path(p) for p in data], encoder)
    if speakers is not None:
        known = sorted({c.speaker for c in clips})
        unknown = [s for s in speakers if s not in known]
        if unknown:
            hint = did_you_mean(unknown[0], known) if len(unknown) == 1 else ""
            raise UsageError(f"--speakers: {', '.join(unknown)} not in --data{hint} (its speakers: {', '.join(known)})")
        clips = [c for c in clips if c.speaker in set(speakers)]
    out = []
    for c in clips:
        mean, std = _face_stats(c)
        out.append(EvalClip(GROUP_SPEAKERS, c.name, c.speaker, c.source, c.features, c.denormalized(), mean, std))
    return out


def person_clips(person: Path, encoder) -> tuple[list[EvalClip], dict]:
    """The person's held-out last 1/11, in the person's face (statistics of the training frames)."""
    from geneface.training.person_data import load_person

    p = load_person(Path(person), encoder, where="--person")
    clips = [EvalClip(GROUP_PERSON, c.name, c.speaker or p.name, c.source or str(p.path), c.features,
                      p.denormalize(c.landmarks), p.mean, p.std) for c in p.held_out]
    return clips, p.info()


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
    from geneface.training.person_data import rebase

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


def bench_motion(models: Sequence[tuple[ModelSpec, Stage]], syncnet: Stage, syncnet_path: Path,
                 data: Sequence[Path] = (), speakers: Optional[Sequence[str]] = None, person: Optional[Path] = None,
                 temperature: Optional[float] = None, seed: int = 0, max_lag: int = MAX_LAG,
                 max_offset: int = MAX_OFFSET, progress: bool = False) -> dict:
    """Score every model on every group's clips; a JSON-ready dict with `settings`, `rows`
    (per group: the `truth` row, then one per model), `speakers` (per model, group and
    speaker) and `clips` (per clip, every model's figures)."""
    if not models:
        raise UsageError("--model: nothing to compare")
    check_request(data, speakers, person, temperature)
    encoder = resolve_encoder(syncnet)
    for spec, stage in models:
        check_model(spec, stage, encoder.name, syncnet_path)

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
    items = clips
    if progress:
        from geneface.core.progress import track

        items = track(clips, len(clips), f"scoring {len(models)} model(s)", unit="clip")
    from geneface.core.landmarks68 import mouth_opening

    for clip in items:
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


# -- report ---------------------------------------------------------------------------------

COLUMNS = ("model", "group", "clips", "frames", "r lag0", "best lag", "abs lag", "r best", "amplitude ratio",
           "mouth LMD mm", "sync conf (offset)")
POOLED_COLUMNS = ("model", "group", "r lag0 pooled", "best lag pooled", "r best pooled", "amplitude ratio pooled")


def _num(value, digits: int = 3, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _table(columns, lines) -> str:
    head = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    return "\n".join(head + ["| " + " | ".join(cells) + " |" for cells in lines])


def _sync_cell(s: dict) -> str:
    if s.get("sync_confidence") is None:
        return "-"
    offset = s.get("sync_offset")
    return _num(s["sync_confidence"]) + ("" if offset is None else f" ({offset:+d})")


def format_table(result: dict) -> str:
    """The markdown table of a `bench_motion` result, one line per row (model x group)."""
    lines = []
    for row in result["rows"]:
        s = row["scores"]
        if row["model"] == TRUTH:
            lines.append([TRUTH, row["group"], str(s["clips"]), str(s["n_frames"]), *["-"] * 6, _sync_cell(s)])
            continue
        lines.append([row["model"] if row["plugin"] in (None, row["model"]) else f"{row['model']} ({row['plugin']})",
                      row["group"], str(s["clips"]), str(s["n_frames"]), _num(s["r_lag0"]),
                      _num(s["best_lag"], 2, signed=True), _num(s["abs_best_lag"], 2), _num(s["r_best"]),
                      _num(s["amplitude_ratio"]), _num(s["lmd_mm"], 2), _sync_cell(s)])
    return _table(COLUMNS, lines)


def format_pooled(result: dict) -> str:
    lines = []
    for row in result["rows"]:
        if row["model"] == TRUTH:
            continue
        s = row["scores"]
        lag = s["best_lag_pooled"]
        lines.append([row["model"], row["group"], _num(s["r_lag0_pooled"]), "-" if lag is None else f"{lag:+d}",
                      _num(s["r_best_pooled"]), _num(s["amplitude_ratio_pooled"])])
    return _table(POOLED_COLUMNS, lines)


def format_markdown(result: dict) -> str:
    st = result["settings"]
    groups = "; ".join(f"{g['name']}: {g['clips']} clip(s), {g['frames']} frames ({', '.join(g['speakers'])})"
                       for g in st["groups"])
    head = (f"# Audio-to-motion models on held-out clips\n\n"
            f"{groups}. Features '{st['encoder']}'; seed {st['seed']}; temperature "
            f"{'each checkpoint' + chr(39) + 's own' if st['temperature'] is None else st['temperature']}.\n"
            f"Mouth opening (inner-lip gap) of the generated motion, put into each clip's face, against the "
            f"clip's landmarks: Pearson r at lag 0 and at the best lag in -{st['max_lag']}..{st['max_lag']} "
            "(positive: the generated mouth is late), per clip then frame-weighted; amplitude ratio = std "
            "generated / std true; mouth LMD: points 48-67, each frame centred, mean L2 x1000 (mm); sync: the "
            "SyncNet's confidence at offset 0 (its best offset in brackets); the truth rows are the real "
            "landmarks' own sync.\n\n")
    pooled = "\n\nOn every frame of the group pooled:\n\n" + format_pooled(result)
    notes = "".join(f"\n\nwarning: {w}" for w in st["warnings"])
    return head + format_table(result) + pooled + notes + "\n"


def write_report(result: dict, out: Path, overwrite: bool = False) -> tuple[Path, Path]:
    """OUT/motion_bench.json and OUT/motion_bench.md, the folder written under a temporary name."""
    from geneface.core.atomic import atomic_directory

    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        (tmp / f"{REPORT}.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
        (tmp / f"{REPORT}.md").write_text(format_markdown(result))
    return out / f"{REPORT}.json", out / f"{REPORT}.md"
