"""From raw talking-head videos to training datasets (`geneface process`, `process-corpus`).

Modules: `source` (probe, hash, truncation), `tracking` (tracker output -> arrays, gaps,
flags), `crop` (the static head box), `masks` (person / head / torso), `background` (the
static plate), `pose` (canonical face, head pose, camera), `pipeline` (one video),
`corpus` (many videos, in worker processes), `preview` (an mp4 to check tracking by eye).
"""

from geneface.processing.pipeline import ProcessConfig, ProcessResult, process_video

__all__ = ["ProcessConfig", "ProcessResult", "process_video"]
