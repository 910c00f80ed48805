"""The whole extension surface of geneface: one `register_*` hook per kind of component.

A plugin module implements any of these with `@geneface.hookimpl` and calls the callback
once per class it provides:

    from geneface import hookimpl

    @hookimpl
    def register_renderers(register):
        register(MyRenderer)

Built-in plugins (geneface/plugins/*.py) are found through the same `geneface` entry-point
group as third-party ones and use these very hooks. The hooks are made from the table of
kinds (geneface.core.kinds), so a new kind brings its hook with it.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("geneface")
hookimpl = pluggy.HookimplMarker("geneface")


def _hook(kind):
    """The `register_*` hookspec of one kind, named and documented from the kinds table."""

    def spec(register):
        pass

    spec.__name__ = spec.__qualname__ = kind.hook
    spec.__doc__ = (f"Register {kind.base.__name__} subclasses ({kind.summary}): "
                    f"register(My{kind.base.__name__}).")
    return hookspec(spec)


def _declare_hooks() -> None:
    from geneface.core.kinds import KINDS

    for kind in KINDS:
        globals()[kind.hook] = _hook(kind)


# One hook per kind of component, from geneface.core.kinds.KINDS: register_audio_encoders,
# register_motion_generators, register_domain_adapters, register_post_processors,
# register_renderers, register_face_trackers, register_syncnets.
_declare_hooks()
