"""The synthetic talking subject: a real face photo that speaks, with exact ground truth.

    from geneface.synth import ClipSpec, generate, write_clip, Identity, Style
    clip = generate(ClipSpec(text="Hello there.", size=256, seed=0))   # in memory
    write_clip(ClipSpec(seconds=10), "clip")                             # folder on disk

Modules: `photo` (the source photo, tracked once), `face_model` (the animatable mesh),
`visemes` (phonemes -> articulator tracks), `motion` (blinks, head motion), `render`
(texture mapping), `clip` (one clip and its ground truth), `corpus` (many clips),
`grid` (a contact sheet), `check` (a tracker against the truth), `text` (sentences to
speak), `variation` (identity and style). See
docs/synthetic_subject.md.
"""

from __future__ import annotations

from geneface.synth.clip import Clip, ClipSpec, GroundTruth, generate, write_clip
from geneface.synth.corpus import CorpusSpec, make_corpus
from geneface.synth.variation import Identity, Style
from geneface.synth.visemes import CHANNELS, VISEMES

__all__ = [
    "CHANNELS",
    "Clip",
    "ClipSpec",
    "CorpusSpec",
    "GroundTruth",
    "Identity",
    "Style",
    "VISEMES",
    "generate",
    "make_corpus",
    "write_clip",
]
