"""From raw talking-head videos to training datasets (`geneface process`, `process-corpus`).

Modules: `source` (probe, hash, truncation), `tracking` (tracker output -> arrays, gaps,
flags), `crop` (the static head box), `masks` (person / head / torso), `background` (the
static plate), `pose` (canonical face, head pose, camera), `frames` (crops, masks and plate
on disk), `audio` (wav and features on disk), `work` (the resumable work folder), `config`
(`ProcessConfig`), `process` (one video), `corpus` (many videos, in worker processes or Ray tasks:
the plan, the report, the index), `corpus_pool` (the local runner: long-lived worker processes),
`corpus_ray` (one Ray task per clip), `person_process` (several clips of one person into one
person folder, through the corpus runners), `identity` (the rule that tells a clip of another
person from its tracked landmarks),
`preview` (an mp4 to check tracking by eye), `av_offset` (the clip's audio-to-video offset
and the `--av-offset` rule), `offset_stage` (that step in `process`, and on finished
datasets). The commands' engine, which hands these the registry, is `geneface.app.process`.
"""

from geneface.processing.config import ProcessConfig
from geneface.processing.process import ProcessResult

__all__ = ["ProcessConfig", "ProcessResult"]
