"""`geneface demo`'s orchestration: every step a `geneface` command, a finished step kept, an
interrupted training resumed, a failed step named, the report written from the figures.

The commands themselves are tested in their own files; the whole demo (about 9 minutes on
2 cores) is run from a fresh install for the closing notes, not here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geneface.app.demo import DemoSettings, demo_steps, run_demo
from geneface.errors import GenefaceError

EVAL = {"video": {"frames": 75}, "audio": {"length_difference_frames": 0},
        "sync": {"confidence": 0.61, "offset": 0, "offsets": [-5, 0, 5], "curve": [0.2, 0.61, 0.25]}}


def _fake_geneface(ran: list, out: Path):
    """A runner that records each command and makes the file its step is judged done by."""
    done = {tuple(str(a) for a in step.args): step.done for step in demo_steps(out.resolve(), DemoSettings())}

    def runner(cmd):
        ran.append(cmd)
        args = tuple(a for a in cmd[3:] if a != "--resume")
        made = done[args]
        made.parent.mkdir(parents=True, exist_ok=True)
        made.write_text(json.dumps(EVAL) if args[0] == "eval" else "made")
        return 0
    return runner


def test_steps_run_in_order_then_are_kept(tmp_path):
    out = tmp_path / "demo_out"
    ran, lines = [], []
    report = run_demo(out, DemoSettings(), echo=lines.append, runner=_fake_geneface(ran, out))
    assert [cmd[3] for cmd in ran] == ["synth", "process", "dataset", "synth-corpus", "train", "train", "train",
                                       "train", "say", "run", "eval"]
    assert lines[0].startswith("[1/11] the person") and "$ geneface synth" in lines[0]
    md = (tmp_path / "demo_out" / "report.md").read_text()
    assert "| sync confidence at offset 0 | 0.610 |" in md and "| sync score at offset -5 | 0.200 |" in md
    assert report["evaluation"]["sync"]["offset"] == 0
    spec = (tmp_path / "demo_out" / "pipeline.yaml").read_text()
    for part in ("plugin: vae", "plugin: landmark_projection", "plugin: person_postprocess", "plugin: hashgrid_nerf"):
        assert part in spec

    ran.clear()
    lines.clear()
    run_demo(out, DemoSettings(), echo=lines.append, runner=_fake_geneface(ran, out))
    assert ran == [] and all(line.endswith("done before, kept") for line in lines)


def test_an_interrupted_training_resumes_and_a_failed_step_is_named(tmp_path):
    out = tmp_path / "demo_out"
    ran = []
    run_demo(out, DemoSettings(), echo=lambda line: None, runner=_fake_geneface(ran, out))
    (out / "work" / "vae" / "model.safetensors").unlink()  # interrupted: a state, no model
    (out / "work" / "vae" / "state").mkdir()
    (out / "video.mp4").unlink()
    ran.clear()
    run_demo(out, DemoSettings(), echo=lambda line: None, runner=_fake_geneface(ran, out))
    assert [cmd[3:5] for cmd in ran] == [["train", "audio2motion"], ["run", str(out.resolve() / "pipeline.yaml")]]
    assert ran[0][-1] == "--resume"
    (out / "video.mp4").unlink()
    with pytest.raises(GenefaceError, match=r"demo step 10 \(rendering the person saying it"):
        run_demo(out, DemoSettings(), echo=lambda line: None, runner=lambda cmd: 3)


def test_steps_name_real_commands_and_options():
    """Every step's command line parses: the command and each flag exist."""
    from typer.main import get_command

    from geneface.cli.app import app

    root = get_command(app)
    for step in demo_steps(Path("/x/demo_out"), DemoSettings()):
        args = [str(a) for a in step.args]
        command, rest = root, args
        while hasattr(command, "commands") and rest and rest[0] in command.commands:
            command, rest = command.commands[rest[0]], rest[1:]
        known = {opt for p in command.params for opt in getattr(p, "opts", [])}
        flags = [a for a in rest if a.startswith("-")]
        if command.name == "train":  # recipe flags (--person, --profile, ...) are the plugin's own
            continue
        assert set(flags) <= known, (step.title, set(flags) - known)
