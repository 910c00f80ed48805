"""`python -m geneface` is the same as the `geneface` command."""

from geneface.cli import entry

entry()
