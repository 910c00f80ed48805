"""`geneface` command line: typer flags and messages; each command's engine is in
geneface.app. Each `cmd_*` module registers its commands on the shared app.

Modules: `app` (the typer app and its error policy), `cmd_core` (`plugins`, `validate`,
`run`), `cmd_synth` (`synth`, `synth-corpus`, `say`), `cmd_process` (`process`,
`process-corpus`, `dataset ...`), `cmd_train` (`train`), `cmd_bench` (`bench adapters`,
`bench renderers`, `bench motion`, `bench generic`), `cmd_eval` (`eval`), `cmd_demo` (`demo`),
`cmd_stream` (`stream`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

from geneface.cli.app import STATE, app
from geneface.cli import cmd_core  # noqa: F401  (registers plugins, validate, run)
from geneface.cli import cmd_synth  # noqa: F401
from geneface.cli import cmd_process  # noqa: F401
from geneface.cli import cmd_train  # noqa: F401
from geneface.cli import cmd_bench  # noqa: F401
from geneface.cli import cmd_eval  # noqa: F401
from geneface.cli import cmd_demo  # noqa: F401
from geneface.cli import cmd_stream  # noqa: F401


def _terminate(signum, frame) -> None:
    """SIGTERM: unwind from wherever the program is, as Ctrl-C does (geneface.errors.Terminated).
    Later SIGTERMs are ignored so that they cannot cut the clean-up short (SIGKILL still can)."""
    from geneface.errors import Terminated

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    STATE["terminated"] = True
    raise Terminated()


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """The SIGTERM handler for one command (restored after it: tests call main() many times)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread; a caller on another thread keeps its own handling
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _quiet_stdout() -> None:
    """stdout's reader has gone: point fd 1 at /dev/null so the interpreter's final flush of what
    is still buffered fails silently instead of printing a BrokenPipeError at exit."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv=None) -> int:
    """Console-script entry: run the app with the one-line error policy.

    typer's standalone mode handles usage errors (exit 2) and --help; everything raised by a
    command body comes out here and gets its code from `geneface.errors.exit_status` (the
    exit-code rule, written there once).
    """
    from geneface.errors import PipeClosedError, exit_status

    args = list(sys.argv[1:] if argv is None else argv)
    STATE["debug"] = "--debug" in args
    STATE["terminated"] = False
    try:
        with _sigterm_as_interrupt():
            app(args=args, prog_name="geneface", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        if code == 130:  # typer turns Ctrl-C (and so SIGTERM, a KeyboardInterrupt) into a silent exit 130
            if STATE["terminated"]:
                code = 143
                print("error: terminated (SIGTERM)", file=sys.stderr)
            else:
                print("error: interrupted", file=sys.stderr)
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException as exc:
        if isinstance(exc, PipeClosedError):
            _quiet_stdout()
        code, message = exit_status(exc)
        if STATE["debug"] and code not in (130, 143):
            raise
        if message is None:  # a bug: still one line unless --debug
            message = f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)"
        print(f"error: {message}", file=sys.stderr)
        return code
    return 0


def entry() -> None:
    sys.exit(main())
