"""`geneface process CLIP [CLIP ...] -o PERSON`: several clips of one person -> one person folder
(geneface.core.person).

1. The clips: the videos named, the videos below a folder (path order, `corpus.find_clips`) and
   the paths a `.txt` file lists (one a line, `#` comments, relative to the file), in the order
   given; the order matters, the last clips are held out (`held_out_clips_start`). Each clip's
   dataset is PERSON/clips/STEM (the file name without its extension), or FOLDER_STEM for clips
   whose stems collide (`clip_names`).
2. Each clip processed into its folder by the corpus machinery (`corpus.run_clips` with a
   `ClipRunner`: several at a time, a clip that crashes its worker fails alone); a clip whose
   dataset is already finished from the same file with the same settings is skipped, so a
   second run (`--resume`) after a crash or Ctrl-C continues where the first stopped. A clip
   that fails is named, and no person is written (`ClipsFailed`, exit 1).
3. The identity check over the clips' datasets (geneface.processing.identity): a clip of another
   person is refused (`IdentityError`, exit 2) or, with `--identity warn`, kept and named in
   the person's warnings; the distances go into the manifest either way.
4. `write_person_manifest`, last: a folder without manifest.json is never taken for a person.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import attrs

from geneface.core import dataset as fmt
from geneface.core.config import unstructure
from geneface.core.lock import output_lock
from geneface.core.person import CLIPS_DIR, PERSON_FORMAT, write_person_manifest
from geneface.errors import GenefaceError, UsageError
from geneface.processing import identity as ident
from geneface.processing.config import ProcessConfig
from geneface.processing.corpus import VIDEO_EXTENSIONS, ClipJob, ClipOutcome, ClipRunner, find_clips, run_clips

LIST_SUFFIX = ".txt"


class ClipsFailed(GenefaceError):
    """Some clips of a person could not be processed (exit 1); the others are kept for --resume."""


class IdentityError(UsageError):
    """A clip looks like another person (exit 2)."""


def is_person_input(inputs: Sequence[Path]) -> bool:
    """Several inputs, a folder or a clip list make a person; one video makes one dataset."""
    return len(inputs) > 1 or any(Path(p).is_dir() or Path(p).suffix.lower() == LIST_SUFFIX for p in inputs)


def read_clip_list(file: Path) -> list[Path]:
    """The clips a list file names: one path a line, blank lines and lines starting with `#`
    skipped, relative paths taken from the file's folder."""
    try:
        lines = Path(file).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{file}: cannot read the clip list ({exc})") from None
    clips = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        path = Path(text).expanduser()
        path = path if path.is_absolute() else Path(file).parent / path
        if not path.is_file():
            raise UsageError(f"{file}:{number}: {text}: no such video file")
        clips.append(path)
    if not clips:
        raise UsageError(f"{file}: lists no clips")
    return clips


def expand_inputs(inputs: Sequence[Path], log: Callable[[str], None] = lambda msg: None) -> list[Path]:
    """Every clip the inputs name, in order (see the module docstring)."""
    clips: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = find_clips(item, log)
            if not found:
                raise UsageError(f"{item}: no video files ({', '.join(VIDEO_EXTENSIONS)}) found")
            clips += found
        elif item.suffix.lower() == LIST_SUFFIX:
            clips += read_clip_list(item)
        elif not item.is_file():
            raise UsageError(f"{item}: no such video file or folder")
        else:
            clips.append(item)
    return clips


def clip_names(clips: Sequence[Path]) -> list[str]:
    """Each clip's folder name: its file's stem; clips whose stems collide (`a/video.mp4`,
    `b/video.mp4`, as `geneface synth` writes them) take their folder's name in front
    (`a_video`, `b_video`). The same file twice, or names that still collide, are refused."""
    clips = [Path(c) for c in clips]
    seen: dict[Path, Path] = {}
    for clip in clips:
        real = clip.resolve()
        if real in seen:
            raise UsageError(f"{clip}: named twice (also as {seen[real]}); a person takes each clip once")
        seen[real] = clip
    stems = [c.stem for c in clips]
    names = [c.stem if stems.count(c.stem) == 1 else f"{c.resolve().parent.name}_{c.stem}" for c in clips]
    for k, name in enumerate(names):
        if names.index(name) != k:
            first = clips[names.index(name)]
            raise UsageError(f"{first} and {clips[k]}: two clips named '{name}' (each clip's dataset is "
                             f"PERSON/{CLIPS_DIR}/<file name without extension>, or <folder>_<name> where names "
                             "collide); rename one")
    return names


def is_person_folder(path: Path) -> bool:
    """A folder this command made: a person's manifest, or an unfinished person (its clips/
    folder and nothing that is not ours). What --overwrite may replace."""
    path = Path(path)
    try:
        import json

        return json.loads((path / fmt.MANIFEST).read_text()).get("format") == PERSON_FORMAT
    except (OSError, ValueError, AttributeError):
        pass
    return (path / CLIPS_DIR).is_dir() and all(p.name in (CLIPS_DIR, "landmarks") or p.name.startswith(".")
                                               for p in path.iterdir())


@attrs.frozen
class PersonResult:
    path: Path
    manifest: dict
    outcomes: list  # ClipOutcome per clip of this run
    identity: ident.IdentityCheck


def process_person(clips: Sequence[Path], person: Path, config: Optional[ProcessConfig] = None, *,
                   runner: ClipRunner, identity: str = "refuse", overwrite: bool = False, quiet: bool = False,
                   log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr)) -> PersonResult:
    """`clips` (videos, already expanded) -> the person folder `person`. The caller has checked
    the output (`prepare_output`): an existing one is continued, or with `overwrite` replaced."""
    config = config or ProcessConfig()
    if identity not in ident.MODES:
        raise UsageError(f"--identity must be one of {', '.join(ident.MODES)}, got '{identity}'")
    clips = [Path(c) for c in clips]
    names = clip_names(clips)
    person = Path(person)
    with output_lock(person, "`geneface process` run"):
        if overwrite and person.exists():
            shutil.rmtree(person)
        # An earlier person here stops being one at once: its clips may change below.
        (person / fmt.MANIFEST).unlink(missing_ok=True)
        root = person / CLIPS_DIR
        jobs = [ClipJob(clip, Path(clip.name), root / name) for clip, name in zip(clips, names)]
        from geneface.core.progress import ProgressBars

        with ProgressBars(quiet) as bars:
            outcomes = run_clips(jobs, root, config, log, runner, bars)
        failed = sorted((o for o in outcomes if o.status == "failed"), key=lambda o: o.clip)
        if failed:
            for o in failed:
                log(f"  failed  {o.clip}: {o.error}")
            raise ClipsFailed(f"{len(failed)} of {len(outcomes)} clips failed ({', '.join(o.clip for o in failed)}); "
                              f"no person written; the others are kept: fix or drop the failed clips and run again "
                              f"with --resume")
        datasets = [fmt.Dataset(job.out) for job in jobs]
        check = ident.check_identity(names, datasets, mode=identity)
        warnings = check.lines()
        if warnings and identity == "refuse":
            raise IdentityError("; ".join(warnings[:1]) + (f" (and {len(warnings) - 1} more)" if len(warnings) > 1
                                                          else "") + "; no person written (--identity warn keeps it)")
        for line in warnings:
            log(f"warning: {line}")
        settings = {**unstructure(config), "identity": identity}
        manifest = write_person_manifest(person, [job.out for job in jobs], share=config.val_fraction, names=names,
                                         identity=check.to_manifest(), settings=settings, warnings=warnings)
    return PersonResult(person, manifest, outcomes, check)


__all__ = ["ClipOutcome", "ClipsFailed", "IdentityError", "PersonResult", "clip_names", "expand_inputs",
           "is_person_folder", "is_person_input", "process_person", "read_clip_list"]
