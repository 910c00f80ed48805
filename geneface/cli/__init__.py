"""`geneface` command line. Each `cmd_*` module registers its commands on the shared app."""

from __future__ import annotations

import sys

from geneface.cli.app import STATE, app
from geneface.cli import cmd_core  # noqa: F401  (registers plugins, validate, run)


def main(argv=None) -> int:
    """Console-script entry: run the app with the one-line error policy."""
    import click

    from geneface.errors import GenefaceError

    args = list(sys.argv[1:] if argv is None else argv)
    STATE["debug"] = "--debug" in args
    try:
        app(args=args, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        print("error: interrupted", file=sys.stderr)
        return 130
    except click.ClickException as exc:  # usage errors from typer/click
        exc.show()
        return 2
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
