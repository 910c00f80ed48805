"""The kinds of component, declared once.

Everything that depends on the list of kinds is derived from `KINDS`: which hook registers
which kind (`geneface.registry`), the spec's `stages:` keys and how stages must connect
(`geneface.core.spec`) and the pipeline's dispatch (`geneface.app.run`, through
`Stage.apply`). Adding a kind is one entry here, its base class in `geneface.core.stages`
and its hook written out in `geneface.hookspecs` (a test keeps the two equal).

`consumes` / `produces` name what flows through a pipeline: "audio", "audio features",
"motion" or "video". A kind that consumes what it produces (motion -> motion) may be left
out of a spec; a kind with neither is not part of the pipeline (it serves `process` or
training).
"""

from __future__ import annotations

from typing import Optional

import attrs

from geneface.core.stages import (
    AudioEncoder,
    DomainAdapter,
    FaceTracker,
    MotionGenerator,
    PostProcessor,
    Renderer,
    Stage,
    SyncScorer,
)

# What a pipeline input enters as (spec key -> the record it provides).
INPUTS = {"audio": "audio", "motion": "motion"}


@attrs.frozen
class StageKind:
    name: str  # the spec key and the registry's kind (`renderer`)
    base: type
    hook: str  # the pluggy hook that registers it (`register_renderers`)
    summary: str  # what it does, for the hook's docstring and `geneface plugins`
    consumes: Optional[str] = None
    produces: Optional[str] = None

    @property
    def in_pipeline(self) -> bool:
        return self.consumes is not None

    @property
    def optional(self) -> bool:
        """May be skipped between its neighbours (it maps a record to one of the same kind)."""
        return self.in_pipeline and self.consumes == self.produces


# Pipeline kinds in the order they run, then the kinds beside the pipeline.
KINDS: tuple[StageKind, ...] = (
    StageKind("audio_encoder", AudioEncoder, "register_audio_encoders",
              "audio -> 50 Hz features", "audio", "audio features"),
    StageKind("motion_generator", MotionGenerator, "register_motion_generators",
              "audio features -> 68 x 3 landmarks", "audio features", "motion"),
    StageKind("domain_adapter", DomainAdapter, "register_domain_adapters",
              "generic motion -> a person's style", "motion", "motion"),
    StageKind("post_processor", PostProcessor, "register_post_processors",
              "motion -> motion ready to render (clamp, smooth, blinks, silence, head poses)", "motion", "motion"),
    StageKind("renderer", Renderer, "register_renderers",
              "motion + head path -> video frames", "motion", "video"),
    StageKind("face_tracker", FaceTracker, "register_face_trackers", "video -> tracked face points"),
    StageKind("syncnet", SyncScorer, "register_syncnets", "lip-sync judge and loss"),
)

STAGE_KINDS: dict[str, StageKind] = {k.name: k for k in KINDS}
PIPELINE_ORDER: tuple[str, ...] = tuple(k.name for k in KINDS if k.in_pipeline)
HOOK_KINDS: dict[str, str] = {k.hook: k.name for k in KINDS}

for _kind in KINDS:  # the base class and the table must agree
    assert issubclass(_kind.base, Stage) and _kind.base.kind == _kind.name, _kind

