"""`geneface eval`: the field's evaluation of one talking-head video.

    geneface eval talk.mp4 --audio speech.wav [--reference real.mp4] [--syncnet syncnet.safetensors] \\
        [--json] [--out scores.json]

Facts of the video (and of `geneface run`'s sidecar `<stem>.run.json`, when there is one),
lip sync with a SyncNet checkpoint, and PSNR / SSIM / LMD against real footage of the same
frames. The scoring lives in `geneface.app.eval`, the table in `geneface.app.eval_report`;
docs/evaluation.md says what each number means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from geneface.cli.app import app


@app.command("eval")
def eval_video(
    video: Path = typer.Argument(..., help="The talking-head video to judge (e.g. what `geneface run` wrote)."),
    audio: Path = typer.Option(..., "--audio", "-a", help="The speech the video should say (wav or any audio/video file)."),
    reference: Optional[Path] = typer.Option(None, "--reference", "-r", help="Real footage of the same frames (the "
                                             "person's held-out video): adds PSNR, SSIM and LMD."),
    syncnet: Optional[Path] = typer.Option(None, "--syncnet", help="Checkpoint of a trained `syncnet`: adds lip sync "
                                           "(its audio encoder is the one it was trained on)."),
    max_offset: int = typer.Option(15, "--max-offset", help="Audio offsets searched each way for lip sync, in frames."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the JSON to this file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Judge a talking-head video: its facts and speed, lip sync, and image / landmark scores against real frames."""
    from geneface.core.atomic import atomic_output
    from geneface.core.outputs import prepare_output
    from geneface.core.progress import track
    from geneface.app.eval import evaluate_video
    from geneface.app.eval_report import format_report

    if out is not None:  # before any work: an existing file, a folder, an input, an unwritable place
        prepare_output(out, kind="file", overwrite=overwrite, inputs=[video, audio, reference, syncnet],
                       what="--out", suffixes=(".json",))
    from geneface.registry import get_registry

    result = evaluate_video(video, audio, get_registry(), reference=reference, syncnet=syncnet, max_offset=max_offset,
                            progress=None if quiet else track)
    text = result.to_json()
    if out is not None:
        with atomic_output(out, overwrite=overwrite) as tmp:
            tmp.write_text(text + "\n")
    if as_json:
        typer.echo(text)
    else:
        typer.echo(format_report(result))
        if out is not None:
            typer.echo(f"wrote {out}")
