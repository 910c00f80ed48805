"""`geneface` command line: typer flags and messages; each command's engine is in
geneface.app. Each `cmd_*` module registers its commands on the shared app.

Modules: `app` (the typer app and its error policy), `cmd_core` (`plugins`, `validate`,
`run`), `cmd_synth` (`synth`, `synth-corpus`, `say`), `cmd_process` (`process`,
`process-corpus`, `dataset ...`), `cmd_train` (`train`), `cmd_bench` (`bench adapters`,
`bench renderers`, `bench motion`, `bench generic`), `cmd_eval` (`eval`), `cmd_demo` (`demo`),
`cmd_stream` (`stream`).
"""

from __future__ import annotations

import sys

from geneface.cli.app import STATE, app
from geneface.cli import cmd_core  # noqa: F401  (registers plugins, validate, run)
from geneface.cli import cmd_synth  # noqa: F401
from geneface.cli import cmd_process  # noqa: F401
from geneface.cli import cmd_train  # noqa: F401
from geneface.cli import cmd_bench  # noqa: F401
from geneface.cli import cmd_eval  # noqa: F401
from geneface.cli import cmd_demo  # noqa: F401
from geneface.cli import cmd_stream  # noqa: F401


def main(argv=None) -> int:
    """Console-script entry: run the app with the one-line error policy.

    typer's standalone mode handles usage errors (exit 2) and --help; everything raised by a
    command body comes out here and gets its code from `geneface.errors.exit_status` (the
    exit-code rule, written there once).
    """
    from geneface.errors import exit_status

    args = list(sys.argv[1:] if argv is None else argv)
    STATE["debug"] = "--debug" in args
    try:
        app(args=args, prog_name="geneface", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        if code == 130:  # typer turns Ctrl-C into a silent exit 130
            print("error: interrupted", file=sys.stderr)
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException as exc:
        code, message = exit_status(exc)
        if STATE["debug"] and code != 130:
            raise
        if message is None:  # a bug: still one line unless --debug
            message = f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)"
        print(f"error: {message}", file=sys.stderr)
        return code
    return 0


def entry() -> None:
    sys.exit(main())
