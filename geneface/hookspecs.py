"""The whole extension surface of geneface: one `register_*` hook per kind of component.

A plugin module implements any of these with `@geneface.hookimpl` and calls the callback
once per class it provides:

    from geneface import hookimpl

    @hookimpl
    def register_renderers(register):
        register(MyRenderer)

Built-in plugins (geneface/plugins/*.py) are found through the same `geneface` entry-point
group as third-party ones and use these very hooks. The hooks are written out here so that a
reader sees the surface; tests/test_registry.py keeps them equal to the table of kinds
(geneface.core.kinds): a new kind needs its hook here too.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("geneface")
hookimpl = pluggy.HookimplMarker("geneface")


@hookspec
def register_audio_encoders(register):
    """Register AudioEncoder subclasses (audio -> 50 Hz features): register(MyAudioEncoder)."""


@hookspec
def register_motion_generators(register):
    """Register MotionGenerator subclasses (audio features -> 68 x 3 landmarks): register(MyMotionGenerator)."""


@hookspec
def register_domain_adapters(register):
    """Register DomainAdapter subclasses (generic motion -> a person's style): register(MyDomainAdapter)."""


@hookspec
def register_post_processors(register):
    """Register PostProcessor subclasses (motion -> motion ready to render (clamp, smooth, blinks, silence, head
    poses)): register(MyPostProcessor)."""


@hookspec
def register_renderers(register):
    """Register Renderer subclasses (motion + head path -> video frames): register(MyRenderer)."""


@hookspec
def register_face_trackers(register):
    """Register FaceTracker subclasses (video -> tracked face points): register(MyFaceTracker)."""


@hookspec
def register_syncnets(register):
    """Register SyncScorer subclasses (lip-sync judge and loss): register(MySyncScorer)."""
