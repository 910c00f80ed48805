"""Components the commands pick by name from the registry (handed down to the library layers
as instances, never looked up there)."""

from __future__ import annotations


def face_tracker(tracker=None, registry=None):
    """A FaceTracker: an instance as given, else the registry's by name (default `mediapipe`,
    the tracker of `geneface process`)."""
    if tracker is not None and not isinstance(tracker, str):
        return tracker
    from geneface.registry import get_registry

    return (registry or get_registry()).get("face_tracker", tracker or "mediapipe", where="tracker").cls()


def audio_encoder(name: str, where: str, registry=None):
    """The audio encoder plugin `name`, built with its default config."""
    from geneface.registry import get_registry

    return (registry or get_registry()).get("audio_encoder", name, where=where).cls()
