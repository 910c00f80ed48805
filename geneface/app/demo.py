"""`geneface demo`: the whole method on a fresh install, with nothing but the toolkit.

It makes its own data (the synthetic subject as the person, a small synthetic multi-voice
corpus for the generic motion models), trains every stage with its quick settings, renders
the subject saying a sentence it never said, evaluates that video and writes `demo_out/`:

    demo_out/video.mp4             the subject saying the new sentence (H.264 + the speech)
    demo_out/report.md, report.json the figures (`geneface eval`), the settings, the timings
    demo_out/tracking_preview.mp4  the person's video with its tracking drawn on it
    demo_out/pipeline.yaml         the spec that made video.mp4 (run it again with `geneface run`)
    demo_out/work/                 every intermediate: datasets, runs, logs

Every step is an ordinary `geneface` command (printed as it starts, so each can be re-run by
hand) run in its own process (its memory is returned when it ends). A step whose result is
already there is skipped, and a training step that was interrupted resumes from its last
saved state, so running `geneface demo` again after an interruption goes on where it
stopped.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import attrs

from geneface.errors import GenefaceError

# What the person says in their "training video", and the new sentence the demo renders.
PERSON_TEXT = (
    "Good morning, and welcome to the evening summary. Today we look at how rivers change their course "
    "over many years, why some bridges sway in the wind, and what makes a simple loaf of bread rise. "
    "First, the rivers. Water always takes the easiest path, and over centuries that path moves. "
    "Then the bridges, which are built to bend a little so that they do not break. "
    "Finally, bread: yeast breathes out tiny bubbles, and the dough puffs up around them. "
    "That is all for today. Thank you for listening, and see you again tomorrow."
)
NEW_TEXT = "Hello! This face never said these words before, yet the lips follow every one of them."


@attrs.frozen
class DemoSettings:
    """The demo's sizes, chosen so that the whole run takes under 10 minutes on 2 quiet CPU cores.

    Where the time goes was measured (docs/demo.md): the renderer's held-out PSNR gains 0.5 dB
    from minute 3.5 to minute 7 of a 7-minute budget, so it gets 5. The VAE keeps its 500
    steps: at 300 (its validation curve flat after ~300) the demo's own lip-sync figures came
    out lower in one run (0.321 against 0.352), and the 50 s saved were not needed; the
    SyncNet, also the demo's judge, is kept as it was."""

    size: int = 128  # the person's crop, in pixels
    corpus_clips: int = 40
    corpus_size: int = 128
    syncnet_steps: int = 600
    vae_steps: int = 500
    renderer_minutes: float = 5.0  # hashgrid_nerf's wall-clock budget (quick profile)
    seed: int = 1
    threads: int = 0  # torch CPU threads (0: torch's choice)
    min_face: int = 80  # `geneface process --min-face`: the face's width in the person's video, pixels
    person_text: str = PERSON_TEXT
    new_text: str = NEW_TEXT


@attrs.frozen
class Step:
    """One demo step: a `geneface` command, skipped when `done` exists."""

    title: str
    args: tuple = attrs.field(converter=tuple)
    done: Path
    resumable: Optional[Path] = None  # a training run folder: add --resume when it holds a state


def demo_steps(out: Path, s: DemoSettings) -> list[Step]:
    w = out / "work"
    threads = ["--threads", str(s.threads)] if s.threads else []
    vae_config = w / "vae_small.yaml"
    person, dataset, corpus = w / "person", w / "person_dataset", w / "corpus"
    syncnet, vae, adapter, renderer = w / "syncnet", w / "vae", w / "adapter", w / "renderer"
    return [
        Step("the person: a synthetic subject reading a text (their 'training video')",
             ("synth", "-o", person, "--text", s.person_text, "--size", s.size * 2, "--seed", s.seed, "--overwrite",
              "--quiet"), person / "video.mp4"),
        Step("processing the person's video into a dataset (tracking, pose, masks, background)",
             ("process", person / "video.mp4", "-o", dataset, "--size", s.size, "--min-face", s.min_face, "--overwrite",
              "--quiet"),
             dataset / "manifest.json"),
        Step("tracking preview of the person's dataset",
             ("dataset", "preview", dataset, "-o", out / "tracking_preview.mp4", "--overwrite", "--quiet"),
             out / "tracking_preview.mp4"),
        Step(f"a synthetic multi-voice corpus of {s.corpus_clips} clips for the generic motion models",
             ("synth-corpus", corpus, "--clips", s.corpus_clips, "--size", s.corpus_size, "--seed", s.seed + 1,
              "--quiet"), corpus / "corpus.json"),
        Step("training the lip-sync judge (SyncNet)",
             ("train", "syncnet", "--data", corpus, "--out", syncnet, "--steps", s.syncnet_steps, "--val-every", 200,
              *threads, "--quiet"), syncnet / "model.safetensors", syncnet),
        Step("training the generic audio-to-motion model (VAE)",
             ("train", "audio2motion", "--data", corpus, "--syncnet", syncnet / "model.safetensors", "--out", vae,
              "--config", vae_config, "--steps", s.vae_steps, "--lr", 0.001, "--val-every", 100, *threads, "--quiet"),
             vae / "model.safetensors", vae),
        Step("fitting the person's style (landmark_projection)",
             ("train", "domain_adapter", "--plugin", "landmark_projection", "--person", dataset, "--out", adapter,
              "--overwrite", "--quiet"), adapter / "model.safetensors"),
        Step(f"training the person's renderer (hashgrid_nerf, quick profile, {s.renderer_minutes:g} min)",
             ("train", "renderer", "--plugin", "hashgrid_nerf", "--data", dataset, "--out", renderer, "--profile",
              "quick", "--max-minutes", s.renderer_minutes, "--steps", 10**9, *threads, "--quiet"),
             renderer / "model.safetensors", renderer),
        Step("new speech for the person to say",
             ("say", s.new_text, "-o", w / "speech.wav", "--overwrite"), w / "speech.wav"),
        Step("rendering the person saying it (geneface run)",
             ("run", out / "pipeline.yaml", "--overwrite", "--quiet"), out / "video.mp4"),
        Step("evaluating the video (geneface eval)",
             ("eval", out / "video.mp4", "--audio", w / "speech.wav", "--syncnet", syncnet / "model.safetensors",
              "--out", w / "eval.json"), w / "eval.json"),
    ]


def pipeline_spec(out: Path) -> str:
    """The demo's spec: speech -> mel -> vae -> landmark_projection -> post-processing -> hashgrid_nerf."""
    return f"""# Written by `geneface demo`: the person saying new speech. Run it again with
#   geneface run {out / 'pipeline.yaml'} --overwrite
input:
  audio: work/speech.wav
stages:
  audio_encoder: {{plugin: mel}}
  motion_generator: {{plugin: vae, checkpoint: work/vae/model.safetensors}}
  domain_adapter: {{plugin: landmark_projection, checkpoint: work/adapter/model.safetensors}}
  post_processor: {{plugin: person_postprocess, config: {{person: work/person_dataset}}}}
  renderer: {{plugin: hashgrid_nerf, checkpoint: work/renderer/model.safetensors}}
output: video.mp4
"""


def vae_small(steps: int) -> str:
    """The demo's VAE config: its learning rate decays over the steps it is given."""
    return ("# A VAE small enough to train in minutes on a CPU (METHOD.md's full size: hidden 256).\n"
            f"model: {{hidden: 128}}\ntrain: {{warmup: 100, decay_steps: {int(steps)}}}\n")


def _command(args: Sequence) -> list[str]:
    return [sys.executable, "-m", "geneface", *(str(a) for a in args)]


def run_demo(out: Path, settings: DemoSettings = DemoSettings(), echo: Callable[[str], None] = print,
             runner: Callable[[list[str]], int] = lambda cmd: subprocess.call(cmd)) -> dict:
    """Run (or resume) every step into `out`; then write the report. Returns the report."""
    out = Path(out).resolve()
    (out / "work").mkdir(parents=True, exist_ok=True)
    (out / "work" / "vae_small.yaml").write_text(vae_small(settings.vae_steps))
    (out / "pipeline.yaml").write_text(pipeline_spec(out))
    timings_file = out / "work" / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    steps = demo_steps(out, settings)
    started = time.perf_counter()
    for i, step in enumerate(steps, 1):
        head = f"[{i}/{len(steps)}] {step.title}"
        if step.done.exists():
            echo(f"{head}: done before, kept")
            continue
        args = list(step.args)
        if step.resumable is not None and (step.resumable / "state").is_dir():
            args.append("--resume")
            head += " (resuming)"
        echo(f"{head}\n    $ geneface {' '.join(shlex.quote(str(a)) for a in args)}")
        t0 = time.perf_counter()
        code = runner(_command(args))
        if code != 0:
            raise GenefaceError(f"demo step {i} ({step.title}) failed with exit code {code}; fix what it said and "
                                "run `geneface demo` again to go on from there")
        timings[step.title] = time.perf_counter() - t0
        timings_file.write_text(json.dumps(timings, indent=2))
    report = demo_report(out, timings, time.perf_counter() - started, settings)
    return report


def demo_report(out: Path, timings: dict, seconds: float, settings: DemoSettings) -> dict:
    """report.json and report.md from the eval figures, the run's facts and the step timings."""
    from geneface.core.atomic import atomic_output
    from geneface.app.run import run_record_path

    evaluation = json.loads((out / "work" / "eval.json").read_text())
    record = run_record_path(out / "video.mp4")
    run = json.loads(record.read_text()) if record.is_file() else {}
    report = {"video": str(out / "video.mp4"), "text": settings.new_text, "evaluation": evaluation, "run": run,
              "settings": attrs.asdict(settings), "step_seconds": timings,
              "total_minutes": sum(timings.values()) / 60.0, "this_invocation_minutes": seconds / 60.0}
    with atomic_output(out / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    with atomic_output(out / "report.md") as tmp:
        tmp.write_text(format_report(report))
    return report


def _fmt(value, digits=3) -> str:
    return "-" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def format_report(report: dict) -> str:
    e = report["evaluation"]
    sync = e.get("sync") or {}
    lines = [
        "# geneface demo",
        "",
        f"The synthetic subject saying: \"{report['text']}\" ([video.mp4](video.mp4)).",
        "",
        "| figure | value |",
        "| --- | --- |",
    ]
    rows = [("frames", (e.get("video") or {}).get("frames")),
            ("video minus audio length (frames)", (e.get("audio") or {}).get("length_difference_frames")),
            ("sync confidence at offset 0", sync.get("confidence")),
            ("best audio-visual offset (frames)", sync.get("offset")),
            ("render fps", report.get("run", {}).get("fps"))]
    curve = dict(zip(sync.get("offsets", []), sync.get("curve", [])))
    for k in (-5, 5):
        if k in curve:
            rows.append((f"sync score at offset {k:+d}", curve[k]))
    if 0 in curve:
        rows.append(("sync score at offset 0", curve[0]))
    lines += [f"| {name} | {_fmt(value)} |" for name, value in rows]
    lines += ["", "Steps (minutes):", ""]
    lines += [f"- {title}: {seconds / 60:.1f}" for title, seconds in report["step_seconds"].items()]
    lines += ["", f"Total: {report['total_minutes']:.1f} min of steps.", ""]
    return "\n".join(lines)

