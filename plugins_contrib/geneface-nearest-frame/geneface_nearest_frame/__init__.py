"""geneface-nearest-frame: the `nearest_frame` renderer plugin for geneface.

A trainable renderer with no optimiser: `geneface train renderer --plugin nearest_frame
--data DATASET --out DIR` indexes the person's training frames by their canonical landmarks,
and each motion frame is rendered as the training frames with the nearest landmarks,
blended over a few neighbours and composited on the dataset's background plate. It is the
baseline every learned renderer must beat. Installed, it is found through the `geneface`
entry-point group (see pyproject.toml).
"""

__version__ = "0.1.0"

from geneface_nearest_frame.renderer import NearestFrame, NearestFrameConfig  # noqa: E402

__all__ = ["NearestFrame", "NearestFrameConfig", "__version__"]
