"""geneface: audio-driven talking-face synthesis as a pluggable toolkit."""

from geneface.hookspecs import hookimpl  # noqa: E402  (the decorator plugins use)
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("geneface")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"
