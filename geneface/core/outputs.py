"""The one check every output goes through before any work starts.

Every command that writes (`run`, `say`, `synth`, `synth-corpus`, `process`,
`process-corpus`, `dataset preview`, training runs) calls `prepare_output` on each file or
folder it will create, before it decodes, synthesises or trains anything, so that a
mistake in the output path costs nothing:

- an existing target is refused unless `overwrite` (the message names `--overwrite`);
- a target that is one of the inputs is refused (same file, or a folder holding an input,
  which replacing it would delete);
- a directory where a file is expected, or a file where a folder is expected (the target or
  one of its parents), is refused;
- the folder it goes in is tested by really creating and removing a file there
  (`os.access` says yes to root on a read-only mount); when that folder is missing, its
  nearest existing ancestor is tested, and the writer creates the rest.

Each refusal is one `UsageError` line naming the path (exit code 2). The writing itself
goes through `geneface.core.atomic` (temporary name, rename when complete), so a failure
later on leaves no partial file under the final name; partials of the target that a killed
run (SIGKILL) left behind, whose owner is dead, are removed here (`atomic.sweep_partials`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from geneface.core.atomic import atomic_output, sweep_partials
from geneface.errors import UsageError


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare the resolved names
        return _resolved(a) == _resolved(b)


def _inside(child: Path, folder: Path) -> bool:
    child, folder = _resolved(child), _resolved(folder)
    return child == folder or folder in child.parents


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _check_inputs(path: Path, kind: str, inputs: Iterable[Optional[Path]], what: str) -> None:
    for item in inputs:
        if item is None:
            continue
        item = Path(item)
        if _same(path, item):
            raise UsageError(f"{path}: {what} is also an input ({item}); choose another output")
        if kind == "dir" and item.exists() and _inside(item, path):
            raise UsageError(f"{path}: {what} folder holds the input {item}; choose another output folder")


def _nearest_folder(path: Path, what: str) -> Path:
    """The nearest existing ancestor of `path`, which must be a folder (`out.mp4/x.wav` is a mistake).

    Missing folders in between are not made here: the writers make them (atomic_output,
    atomic_directory), so a command refused later for another reason leaves nothing behind.
    """
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{path}: cannot write {what} there, {ancestor} is a file, not a folder")
    return ancestor


def probe_writable(folder: Path, target: Path, what: str = "the output") -> None:
    """Create and remove a file in `folder`; UsageError naming `target` if that fails."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".geneface-probe-", dir=folder)
    except OSError as exc:
        raise UsageError(f"{target}: cannot write {what} in {folder} ({_reason(exc)})") from None
    os.close(fd)
    os.unlink(probe)


def prepare_output(
    path: Path,
    *,
    kind: str = "file",
    overwrite: bool = False,
    inputs: Sequence[Optional[Path]] = (),
    what: str = "--output",
    suffixes: Optional[Sequence[str]] = None,
    existing_ok: bool = False,
    replaceable: Optional[Callable[[Path], bool]] = None,
) -> Path:
    """Check that `path` can be written before any work starts; returns it.

    `kind` is "file" or "dir"; `inputs` are the files and folders the command reads;
    `what` names the option in messages; `suffixes` (lower case, with the dot) are the file
    extensions the command can write. `existing_ok` accepts an existing target of the
    right kind without `overwrite`, for commands that resume into it (`synth-corpus`,
    `process --resume`): the command decides what to do with it. `replaceable(path)` says
    whether an existing non-empty folder is one this command made, so that `--overwrite`
    never deletes an unrelated folder (`synth -o ~ --overwrite`).
    """
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
    path = Path(path).expanduser()
    if suffixes is not None and kind == "file" and path.suffix.lower() not in suffixes:
        raise UsageError(
            f"{path}: {what} must end in {' or '.join(suffixes)} (got '{path.suffix or 'no extension'}')"
        )
    _check_inputs(path, kind, inputs, what)
    if path.exists() or path.is_symlink():
        if kind == "file" and path.is_dir():
            raise UsageError(f"{path}: is a folder; {what} needs a file name")
        if kind == "dir" and not path.is_dir():
            raise UsageError(f"{path}: is a file; {what} needs a folder")
        if not (overwrite or existing_ok):
            raise UsageError(f"{path}: already exists; pass --overwrite to replace it")
        if overwrite and kind == "dir" and replaceable is not None and any(path.iterdir()) and not replaceable(path):
            raise UsageError(f"{path}: exists and was not made by this command; --overwrite replaces only its own output, choose another folder")
    probe_writable(_nearest_folder(path, what), path, what)
    if kind == "dir" and path.is_dir() and existing_ok:
        probe_writable(path, path, what)  # a resumed folder is written into as well
    sweep_partials(path)  # what a killed run of this output left (geneface.core.atomic)
    return path


def run_folder(path: Path, *, overwrite: bool = False, resume: bool = False, inputs: Sequence[Optional[Path]] = ()) -> Path:
    """`prepare_output` for a training run folder: `--resume` continues an existing one, and
    `--overwrite` replaces only a folder that holds a run (its run.json)."""
    return prepare_output(path, kind="dir", overwrite=overwrite, inputs=inputs, what="--out", existing_ok=resume,
                          replaceable=lambda p: (p / "run.json").is_file())


def prepare_spec_output(spec, *, output: Optional[Path] = None, inputs: Sequence[Optional[Path]] = (),
                        overwrite: bool = False) -> Path:
    """`prepare_output` for a pipeline run: the spec's output (or `output`, its override).

    The inputs it must not be: the spec file, its `input.*` files, its checkpoints, and
    `inputs` (command-line overrides such as --audio).
    """
    target = Path(output) if output is not None else (spec.output or spec.default_output())
    spec_inputs = [spec.source if spec.source.name != "<string>" else None]
    spec_inputs += [getattr(spec.input, key, None) for key in ("audio", "motion", "poses")]
    spec_inputs += [stage.checkpoint for stage in spec.stages]
    return prepare_output(target, overwrite=overwrite, inputs=[*spec_inputs, *inputs])


class JsonLine:
    """A script's result: one JSON line on stdout and, with `--json FILE`, the same line in
    FILE. The file follows the rule of every output: checked before any work (an existing
    one refused without `--overwrite`), written under a temporary name and renamed. The
    benchmarks all take it this way: `JsonLine.add_flags(parser)`, then
    `out = JsonLine.from_args(parser, args)` before the work and `out.emit(result)` after."""

    def __init__(self, path: Optional[Path] = None):
        self.path = path

    @staticmethod
    def add_flags(parser, overwrite_help: str = "Replace an existing --json file.") -> None:
        parser.add_argument("--json", type=Path, help="Also write the JSON here (an existing file only with --overwrite).")
        parser.add_argument("--overwrite", action="store_true", help=overwrite_help)

    @classmethod
    def from_args(cls, parser, args) -> "JsonLine":
        """`args.json` checked now; a refusal is the parser's one-line error (exit 2)."""
        if args.json is None:
            return cls()
        try:
            return cls(prepare_output(args.json, overwrite=args.overwrite, what="--json"))
        except UsageError as exc:
            parser.error(str(exc))

    def emit(self, result: dict) -> str:
        """Print `result` as one line (first: it is never lost) and write it to the file."""
        line = json.dumps(result)
        print(line, flush=True)
        if self.path is not None:
            with atomic_output(self.path) as tmp:
                tmp.write_text(line + "\n")
        return line
