"""The module the `geneface` entry point names: geneface loads it and calls its hooks.

Kept cheap to import (numpy, attrs and geneface's own records): geneface imports it whenever
it lists or loads plugins. The recipe (geneface_nearest_frame.fit) is imported only by
`geneface train`, through the class's `training` string.
"""

from geneface import hookimpl

from geneface_nearest_frame.renderer import NearestFrame


@hookimpl
def register_renderers(register):
    register(NearestFrame)
