"""Components the commands pick by name from the registry (handed down to the library layers
as instances, never looked up there)."""

from __future__ import annotations


def face_tracker(tracker, registry):
    """A FaceTracker: an instance as given, else `registry`'s by name (None: `mediapipe`, the
    tracker of `geneface process`)."""
    if tracker is not None and not isinstance(tracker, str):
        return tracker
    return registry.get("face_tracker", tracker or "mediapipe", where="tracker").cls()


def audio_encoder(name: str, where: str, registry):
    """The audio encoder plugin `name` of `registry`, built with its default config."""
    return registry.get("audio_encoder", name, where=where).cls()
