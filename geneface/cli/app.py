"""The typer application every command module adds itself to, and the error policy.

Command modules (`geneface/cli/cmd_*.py`) do `from geneface.cli.app import app` and define
`@app.command()` functions. Errors: a GenefaceError prints `error: <message>` on one line and
exits with its code (2 usage/spec, 1 runtime); anything else is a bug, reported in one line
too unless `--debug` asks for the traceback.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="geneface",
    help="Audio-driven talking-face synthesis: process a video, train a person, drive it with speech.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Set by the root callback; read by main() to decide whether to show tracebacks.
STATE = {"debug": False}


def version_callback(value: bool) -> None:
    if value:
        from geneface import __version__

        typer.echo(f"geneface {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    STATE["debug"] = debug
