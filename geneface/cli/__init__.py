"""`geneface` command line. Each `cmd_*` module registers its commands on the shared app."""

from __future__ import annotations

import sys

from geneface.cli.app import STATE, app
from geneface.cli import cmd_core  # noqa: F401  (registers plugins, validate, run)
from geneface.cli import cmd_synth  # noqa: F401
from geneface.cli import cmd_process  # noqa: F401
from geneface.cli import cmd_train  # noqa: F401


def main(argv=None) -> int:
    """Console-script entry: run the app with the one-line error policy.

    typer's standalone mode handles usage errors (exit 2) and --help; everything raised by a
    command body comes out here.
    """
    from geneface.errors import GenefaceError

    args = list(sys.argv[1:] if argv is None else argv)
    STATE["debug"] = "--debug" in args
    try:
        app(args=args, prog_name="geneface", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        if code == 130:  # typer turns Ctrl-C into a silent exit 130
            print("error: interrupted", file=sys.stderr)
        return code if isinstance(code, int) else (0 if code is None else 1)
    except GenefaceError as exc:
        if STATE["debug"]:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line unless --debug
        if STATE["debug"]:
            raise
        print(f"error: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1
    return 0


def entry() -> None:
    sys.exit(main())
