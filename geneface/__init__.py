"""geneface: audio-driven talking-face synthesis as a pluggable toolkit.

The package in floors (ARCHITECTURE.md, "Layers"; tests/test_layers.py): a module imports its
own floor and those below, never one above.

0. `errors` (the exceptions users can cause, the exit-code rule), `hookspecs` (the extension
   surface), `core` (records, stages, kinds, formats on disk, I/O);
1. `models` (torch modules), `nerf` (radiance-field parts), `speech` (offline speech),
   `metrics` (scores), `postprocess` (post-processing steps), `synth` (the synthetic subject),
   `processing` (raw video -> dataset);
2. `training` (tasks, recipes, the Trainer);
3. `plugins` (the built-in components), `registry` (every plugin, built-in or not);
4. `app` (one engine per command; makes the registry and hands it down);
5. `cli` (typer flags and messages), `__main__` (`python -m geneface`).
"""

from geneface.hookspecs import hookimpl  # noqa: E402  (the decorator plugins use)
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("geneface")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"
