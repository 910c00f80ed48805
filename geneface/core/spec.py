"""Pipeline specs: YAML -> typed records, validated against the registry.

    input:                 # where data enters; at least one of audio and motion
      audio: speech.wav    # a speech file (any audio or video container)
      motion: lm.npz       # a landmark sequence: enters at the adapter or renderer
      poses: cam.npz       # camera path for the renderer: a pose file or a dataset folder
    stages:                # any contiguous run of the pipeline, in this order
      audio_encoder:    {plugin: mel, config: {n_mels: 80}}
      motion_generator: {plugin: vae, checkpoint: a2m.safetensors}
      domain_adapter:   {plugin: postnet, checkpoint: postnet.safetensors}
      renderer:         {plugin: landmark_sketch, config: {size: 256}}
    output: out.mp4        # .mp4 when the last stage renders, .npz otherwise; or a mapping:
    output:
      path: out.mp4
      paste_back: true     # the rendered crop put back into the dataset's full-size source video
      dataset: data/me     # whose source video (default: the dataset the renderer was trained on)
      clip: NAME           # of a person of several clips, the clip whose source video (default its first)

Relative paths resolve against the spec's folder, in stage configs too (fields typed Path). Every error names the key path at fault;
unknown keys are errors, with the closest known key or plugin suggested.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional

import attrs
import yaml

from geneface.core.config import structure
from geneface.core.kinds import INPUTS, PIPELINE_ORDER, STAGE_KINDS
from geneface.core.records import Camera
from geneface.core.text import did_you_mean
from geneface.core.yaml_safe import load_yaml
from geneface.errors import GenefaceError, SpecError

TOP_KEYS = ("input", "stages", "output")
INPUT_KEYS = (*INPUTS, "poses")
STAGE_KEYS = ("plugin", "config", "checkpoint")
OUTPUT_KEYS = ("path", "paste_back", "dataset", "clip")


@attrs.frozen
class StageSpec:
    kind: str
    plugin: str
    config: dict = attrs.field(factory=dict)
    checkpoint: Optional[Path] = None


@attrs.frozen
class InputSpec:
    audio: Optional[Path] = None
    motion: Optional[Path] = None
    poses: Optional[Path] = None


@attrs.frozen
class PipelineSpec:
    source: Path  # the spec file, or "<string>"
    input: InputSpec
    stages: tuple[StageSpec, ...]  # in pipeline order
    output: Optional[Path]
    paste_back: bool = False  # output.paste_back: the crop put back into the full-size source video
    paste_dataset: Optional[Path] = None  # output.dataset (None: the renderer checkpoint's dataset)
    paste_clip: Optional[str] = None  # output.clip: of a person of several clips, whose source (None: the first)

    def stage(self, kind: str) -> Optional[StageSpec]:
        return next((s for s in self.stages if s.kind == kind), None)

    @property
    def produces(self) -> str:
        return STAGE_KINDS[self.stages[-1].kind].produces

    @property
    def base(self) -> Path:
        """The folder relative paths resolve against: the spec's, or the working folder."""
        return self.source.parent if self.source.name != "<string>" else Path.cwd()

    def default_output(self) -> Path:
        suffix = ".mp4" if self.produces == "video" else ".npz"
        base = self.source if self.source.name != "<string>" else Path.cwd() / "pipeline"
        return base.with_suffix(suffix)


def _unknown(key: str, known, where: str) -> SpecError:
    return SpecError(f"{where}: unknown key{did_you_mean(key, known)} (known: {', '.join(known)})")


def _check_keys(data: Mapping, known, where: str) -> None:
    for key in data:
        if key not in known:
            raise _unknown(key, known, f"{where}.{key}" if where else str(key))


def _path(value: Any, base: Path, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise SpecError(f"{where}: expected a file path, got {value!r}")
    path = Path(value).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def _mapping(value: Any, where: str) -> Mapping:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
    return value


def parse_spec(data: Any, base: Path, source: Path = Path("<string>")) -> PipelineSpec:
    """Turn parsed YAML into a PipelineSpec (structure only; `validate_spec` checks plugins)."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}: the spec must be a mapping with keys {', '.join(TOP_KEYS)}")
    _check_keys(data, TOP_KEYS, "")

    raw_input = _mapping(data.get("input"), "input")
    _check_keys(raw_input, INPUT_KEYS, "input")
    inputs = InputSpec(**{k: _path(v, base, f"input.{k}") for k, v in raw_input.items() if v is not None})

    raw_stages = _mapping(data.get("stages"), "stages")
    if not raw_stages:
        raise SpecError(f"stages: at least one stage is needed (any of {', '.join(PIPELINE_ORDER)})")
    _check_keys(raw_stages, PIPELINE_ORDER, "stages")
    stages = []
    for kind in PIPELINE_ORDER:
        if kind not in raw_stages:
            continue
        where = f"stages.{kind}"
        raw = raw_stages[kind]
        if isinstance(raw, str):  # shorthand: `renderer: landmark_sketch`
            raw = {"plugin": raw}
        raw = _mapping(raw, where)
        _check_keys(raw, STAGE_KEYS, where)
        plugin = raw.get("plugin")
        if not isinstance(plugin, str) or not plugin:
            raise SpecError(f"{where}.plugin: required, the name of a {kind} plugin (see `geneface plugins`)")
        ckpt = raw.get("checkpoint")
        stages.append(
            StageSpec(
                kind=kind,
                plugin=plugin,
                config=dict(_mapping(raw.get("config"), f"{where}.config")),
                checkpoint=_path(ckpt, base, f"{where}.checkpoint") if ckpt is not None else None,
            )
        )

    output, paste_back, paste_dataset, paste_clip = data.get("output"), False, None, None
    if isinstance(output, Mapping):
        _check_keys(output, OUTPUT_KEYS, "output")
        paste_back = output.get("paste_back", False)
        if not isinstance(paste_back, bool):
            raise SpecError(f"output.paste_back: expected true or false, got {paste_back!r}")
        if output.get("dataset") is not None:
            paste_dataset = _path(output["dataset"], base, "output.dataset")
        paste_clip = output.get("clip")
        if paste_clip is not None and (not isinstance(paste_clip, str) or not paste_clip):
            raise SpecError(f"output.clip: expected the name of one of the person's clips, got {paste_clip!r}")
        output = output.get("path")
    return PipelineSpec(
        source=source,
        input=inputs,
        stages=tuple(stages),
        output=_path(output, base, "output") if output is not None else None,
        paste_back=paste_back,
        paste_dataset=paste_dataset,
        paste_clip=paste_clip,
    )


def load_spec(path: Path) -> PipelineSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read spec ({exc})") from None
    try:
        data = load_yaml(text, path, "spec")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{where}: YAML syntax error: {problem}") from None
    if data is None:
        raise SpecError(f"{path}: the spec is empty")
    try:
        return parse_spec(data, path.resolve().parent, path)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None


def check_flow(spec: PipelineSpec, have_audio: bool, have_motion: bool) -> None:
    """The stages must chain from the input to the output with no gap (rules from the kinds table)."""
    kinds = [STAGE_KINDS[s.kind] for s in spec.stages]
    given = {record for key, record in INPUTS.items() if {"audio": have_audio, "motion": have_motion}[key]}
    first = kinds[0]
    if first.consumes not in given:
        entry = [k for k, record in INPUTS.items() if record == first.consumes]
        if not entry:
            makers = [k.name for k in STAGE_KINDS.values() if k.produces == first.consumes]
            raise SpecError(
                f"stages: the pipeline starts at {first.name}, which needs {first.consumes}; "
                f"add {' or '.join(makers)} before it"
                + (" and give input.audio" if first.consumes == "audio features" else "")
            )
        names = [name for name, ok in (("audio", have_audio), ("motion", have_motion)) if ok]
        raise SpecError(
            f"stages: the first stage, {first.name}, needs {first.consumes} but the input gives "
            f"{' and '.join(names) if names else 'nothing'} (set input.{entry[0]})"
        )
    if have_motion and first.consumes != INPUTS["motion"]:
        enters = " or ".join(k.name for k in STAGE_KINDS.values() if k.consumes == INPUTS["motion"])
        raise SpecError(f"input.motion: a landmark input enters at {enters}, but the spec starts at "
                        f"{first.name}; drop input.motion or the stages before it")
    for a, b in zip(kinds, kinds[1:]):
        if a.produces != b.consumes:
            between = PIPELINE_ORDER[PIPELINE_ORDER.index(a.name) + 1: PIPELINE_ORDER.index(b.name)]
            missing = [k for k in between if not STAGE_KINDS[k].optional]
            raise SpecError(
                f"stages: {a.name} outputs {a.produces} but {b.name} needs {b.consumes}; the stages do not connect"
                + (f" (add {' and '.join(missing)})" if missing else "")
            )


@attrs.frozen
class ResolvedSpec:
    """What `validate_spec` read to check a spec, handed to the run so that nothing is read
    twice: each stage's checkpoint (by kind; None for a stage built from its config) and the
    camera of `input.poses` (None without one)."""

    spec: "PipelineSpec"
    checkpoints: dict = attrs.field(factory=dict)  # kind -> geneface.core.checkpoint.Checkpoint or None
    poses: Optional[Camera] = None


def validate_spec(spec: PipelineSpec, registry, have_audio: Optional[bool] = None,
                  have_motion: Optional[bool] = None) -> ResolvedSpec:
    """Check plugins, configs, checkpoints, inputs and how the stages connect; return what was
    read on the way (`ResolvedSpec`). `registry` is handed down by the caller."""
    checkpoints: dict = {}
    for stage in spec.stages:
        where = f"stages.{stage.kind}"
        entry = registry.get(stage.kind, stage.plugin, where=f"{where}.plugin")
        checkpoints[stage.kind] = None
        if stage.checkpoint is None:
            if entry.cls.needs_checkpoint:  # before any work, not when the run reaches it
                raise SpecError(f"{where}.checkpoint: {stage.kind} '{stage.plugin}' works only from a trained "
                                f"checkpoint; make one with `geneface train {stage.kind} --plugin {stage.plugin} "
                                "...` and name it here")
            structure(entry.cls.Config, stage.config, f"{where}.config", spec.base)
        elif not stage.checkpoint.is_file():
            raise SpecError(f"{where}.checkpoint: no such file {stage.checkpoint}")
        else:  # kind, plugin, readability (no pickle), finite weights; then the config it implies
            from geneface.core.checkpoint import check_checkpoint

            ckpt = check_checkpoint(stage.checkpoint, stage.kind, stage.plugin, f"{where}.checkpoint")
            structure(entry.cls.Config, {**ckpt.config, **stage.config}, f"{where}.config", spec.base)
            checkpoints[stage.kind] = ckpt
    have_audio = spec.input.audio is not None if have_audio is None else have_audio
    have_motion = spec.input.motion is not None if have_motion is None else have_motion
    for key in INPUTS:
        path = getattr(spec.input, key)
        if path is not None and not path.is_file():
            raise SpecError(f"input.{key}: no such file {path}")
    poses = None
    if spec.input.poses is not None:
        if spec.stages[-1].kind != "renderer":
            raise SpecError("input.poses: a camera path is for a renderer, and this spec has none")
        from geneface.core.camera_io import load_camera

        try:
            poses = load_camera(spec.input.poses)
        except SpecError:
            raise
        except GenefaceError as exc:
            raise SpecError(f"input.poses: {exc}") from None
    check_flow(spec, have_audio, have_motion)
    if spec.paste_clip is not None and not spec.paste_back:
        raise SpecError("output.clip: names the clip to paste back onto; set output.paste_back: true too")
    if spec.paste_back or spec.paste_dataset is not None:
        if spec.produces != "video":
            raise SpecError("output.paste_back: pasting back needs a renderer as the last stage")
        if spec.paste_back and spec.input.poses is not None:
            raise SpecError("output.paste_back: the crop goes back onto the source frames with their own head poses; "
                            "remove input.poses")
        if spec.paste_dataset is not None and not (spec.paste_dataset / "manifest.json").is_file():
            raise SpecError(f"output.dataset: {spec.paste_dataset} is not a dataset folder (no manifest.json)")
    out = spec.output
    if out is not None:
        want = ".mp4" if spec.produces == "video" else ".npz"
        if out.suffix.lower() != want:
            raise SpecError(f"output: the pipeline produces {spec.produces}, so the output must end in {want} (got {out.name})")
    return ResolvedSpec(spec, checkpoints, poses)
