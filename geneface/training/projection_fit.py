"""Fitting the `landmark_projection` domain adapter: no optimiser, no steps.

`geneface train domain_adapter --plugin landmark_projection --person DATASET --out DIR` reads
the person (a `geneface process` dataset, or a synthetic clip or corpus of one identity:
`geneface.training.person_data.load_person`, landmarks only), keeps the training frames
(the last 1/11 of each video is held out and never stored), their statistics and
percentiles, and writes DIR/model.safetensors (and DIR/run.json) in seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

from geneface.core.checkpoint import stage_checkpoint
from geneface.errors import UsageError
from geneface.training.person_data import load_person
from geneface.training.recipe import BuiltTask, Recipe, TrainInputs, TrainOption


class ProjectionRecipe(Recipe):
    """Closed-form fit: the stage stores the person's training landmarks."""

    needs_data = False
    options = (TrainOption("person", "the person's dataset (geneface process) or synthetic clip/corpus of one identity",
                           kind="path", required=True),)

    def build(self, inputs: TrainInputs) -> BuiltTask:
        if inputs.data:
            raise UsageError(f"{inputs.stage_cls.name} is fitted to one person: give --person DATASET, not --data")
        path = Path(inputs.options["person"]).resolve()  # recorded in run.json: usable from any folder
        started = time.perf_counter()
        person = load_person(path)  # no encoder: landmarks only
        stage = inputs.stage_cls(inputs.model_config())
        stage.fit(person.train_frames(), person.mean, person.std)
        seconds = time.perf_counter() - started
        info = {**person.info(), "seconds": round(seconds, 3)}
        meta = {**info, "name": person.name}  # what the checkpoint was fitted to
        return BuiltTask(None, info, fitted=stage_checkpoint(stage, meta=meta))
