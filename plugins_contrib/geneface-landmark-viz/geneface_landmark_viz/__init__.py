"""geneface-landmark-viz: the `landmark_sketch` renderer plugin for geneface.

Installed, it is found through the `geneface` entry-point group (see pyproject.toml);
nothing needs importing by hand. For use without the pipeline:

    from geneface_landmark_viz import LandmarkSketch, SketchConfig
    frames = LandmarkSketch(SketchConfig(size=256)).render(motion)
"""

from geneface_landmark_viz.sketch import LandmarkSketch, SketchConfig, fit_panels, y_points_up

__all__ = ["LandmarkSketch", "SketchConfig", "fit_panels", "y_points_up"]
