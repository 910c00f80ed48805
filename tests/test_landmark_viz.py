"""The contrib plugin geneface-landmark-viz seen from geneface: found through its entry point,
built from a spec's config, rendering frames. Skipped unless the package is installed
(`pip install -e plugins_contrib/geneface-landmark-viz`); its own tests live beside it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("geneface_landmark_viz")

import geneface.registry as registry_mod  # noqa: E402
from geneface.core.config import structure  # noqa: E402
from geneface.errors import SpecError  # noqa: E402
from geneface_landmark_viz.synthetic import mouth_motion  # noqa: E402

DIST = "geneface-landmark-viz"


@pytest.fixture
def registry(monkeypatch):
    """Built-ins plus this one distribution, freshly loaded; the global registry is restored."""
    monkeypatch.setenv(registry_mod.ENV_ALLOW, DIST)
    monkeypatch.setattr(registry_mod, "_REGISTRY", None)
    return registry_mod.get_registry(reload=True)


def make_renderer(registry, config):
    entry = registry.get("renderer", "landmark_sketch", where="stages.renderer")
    return entry.cls(structure(entry.cls.Config, config, "stages.renderer.config"))


def test_entry_point_registers_a_renderer_from_the_distribution(registry):
    found = registry.entries[("renderer", "landmark_sketch")]
    assert len(found) == 1
    entry = found[0]
    assert entry.kind == "renderer" and entry.origin.dist == DIST
    assert "geneface_landmark_viz.plugin" in entry.origin.entry_point
    assert entry.description and entry.unavailable_reason is None
    assert "landmark_sketch" in registry.names("renderer")


def test_allow_list_without_it_leaves_it_out(monkeypatch):
    monkeypatch.setenv(registry_mod.ENV_ALLOW, "some-other-dist")
    monkeypatch.setattr(registry_mod, "_REGISTRY", None)
    assert ("renderer", "landmark_sketch") not in registry_mod.get_registry(reload=True).entries


def test_renders_one_frame_per_motion_frame(registry):
    renderer = make_renderer(registry, {"size": 128})
    motion = mouth_motion(np.linspace(0.0, 0.2, 12))
    frames = list(renderer.render(motion))
    assert renderer.frame_size() == (128, 256)
    assert len(frames) == 12
    assert all(f.dtype == np.uint8 and f.shape == (128, 256, 3) for f in frames)


def test_mouth_highlight_moves_when_the_mouth_opens(registry):
    renderer = make_renderer(registry, {"size": 256, "show_side": False})
    closed, opened = renderer.render(mouth_motion([0.0, 0.25]))

    def lowest_red_row(frame):
        rgb = frame.astype(np.int16)
        rows = np.nonzero((rgb[..., 0] - rgb[..., 1] > 60) & (rgb[..., 0] - rgb[..., 2] > 60))[0]
        assert rows.size
        return rows.max()

    assert lowest_red_row(opened) > lowest_red_row(closed) + 15


def test_odd_size_is_a_spec_error_naming_the_key(registry):
    with pytest.raises(SpecError, match=r"stages\.renderer\.config: size must be an even number"):
        make_renderer(registry, {"size": 255})
