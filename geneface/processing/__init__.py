"""From raw talking-head videos to training datasets (`geneface process`, `process-corpus`).

Modules: `source` (probe, hash, truncation), `tracking` (tracker output -> arrays, gaps,
flags), `crop` (the static head box), `masks` (person / head / torso), `background` (the
static plate), `pose` (canonical face, head pose, camera), `frames` (crops, masks and plate
on disk), `audio` (wav and features on disk), `work` (the resumable work folder), `config`
(`ProcessConfig`), `process` (one video, `geneface process`), `corpus` (many videos, in
worker processes, `geneface process-corpus`), `preview` (an mp4 to check tracking by eye).
"""

from geneface.processing.config import ProcessConfig
from geneface.processing.process import ProcessResult, process_video

__all__ = ["ProcessConfig", "ProcessResult", "process_video"]
