"""The module the `geneface` entry point names: geneface loads it and calls its hooks."""

from geneface import hookimpl

from geneface_landmark_viz.sketch import LandmarkSketch


@hookimpl
def register_renderers(register):
    register(LandmarkSketch)
