import types

import pytest

from geneface import hookimpl, registry as registry_mod
from geneface.core.records import Motion
from geneface.core.stages import Renderer
from geneface.errors import PluginError
from geneface.registry import Origin, Registry


def _renderer(name: str, requires=()):
    class R(Renderer):
        description = f"test renderer {name}"

        def frame_size(self):
            return (2, 2)

        def render(self, motion: Motion, camera=None):
            raise NotImplementedError

    R.name = name
    R.requires = tuple(requires)
    return R


def _module(*classes, hook="register_renderers"):
    mod = types.ModuleType("fake_plugin")

    def impl(register):
        for cls in classes:
            register(cls)

    impl.__name__ = hook
    setattr(mod, hook, hookimpl(impl))
    return mod


def test_builtins_come_through_entry_points_with_origin():
    reg = registry_mod.get_registry(reload=True)
    entry = reg.get("audio_encoder", "mel")
    assert entry.origin.dist == "geneface"
    assert "geneface.plugins.mel" in entry.origin.entry_point
    assert "mel" in reg.names("audio_encoder")


def test_unknown_plugin_suggests_closest():
    reg = registry_mod.get_registry()
    with pytest.raises(PluginError, match=r"stages.audio_encoder.plugin: unknown audio_encoder plugin 'mell'; did you mean 'mel'\?"):
        reg.get("audio_encoder", "mell", where="stages.audio_encoder.plugin")


def test_duplicate_names_name_both_origins():
    reg = Registry()
    reg.register_module(_module(_renderer("twin")), Origin("dist-a", "1.0", "a = a.mod"))
    reg.register_module(_module(_renderer("twin")), Origin("dist-b", "2.0", "b = b.mod"))
    with pytest.raises(PluginError) as err:
        reg.get("renderer", "twin")
    assert "dist-a 1.0" in str(err.value) and "dist-b 2.0" in str(err.value)


def test_missing_optional_dependency_marks_unavailable():
    reg = Registry()
    reg.register_module(_module(_renderer("fast", requires=["surely_not_installed_mod"])), Origin("d", "1", "x = y"))
    entry = reg.entries[("renderer", "fast")][0]
    assert "surely_not_installed_mod" in entry.unavailable_reason
    with pytest.raises(PluginError, match="not available: missing optional dependency"):
        reg.get("renderer", "fast")


def test_registering_the_wrong_kind_is_recorded_as_broken():
    reg = Registry()
    reg.register_module(_module(_renderer("x"), hook="register_audio_encoders"), Origin("bad", "0.1", "bad = bad"))
    assert not reg.entries
    assert len(reg.broken) == 1 and "not a subclass of AudioEncoder" in reg.broken[0].error


class _FakeDist:
    name = "broken-dist"
    version = "9.9"


class _FakeEP:
    name = "broken"
    value = "broken_pkg.plugin"
    dist = _FakeDist()

    def load(self):
        raise ImportError("No module named 'broken_pkg'")


def test_import_failure_is_listed_not_fatal(monkeypatch):
    real = registry_mod.entry_points

    def fake_entry_points(group):
        return list(real(group=group)) + [_FakeEP()]

    monkeypatch.setattr(registry_mod, "entry_points", fake_entry_points)
    monkeypatch.delenv("GENEFACE_PLUGINS", raising=False)
    reg = registry_mod.get_registry(reload=True)
    assert reg.get("audio_encoder", "mel")  # the rest still loads
    foreign = [b for b in reg.broken if b.origin.dist != "geneface"]
    assert [b.origin.dist for b in foreign] == ["broken-dist"]
    assert "No module named 'broken_pkg'" in foreign[0].error


def test_env_var_narrows_third_party(monkeypatch):
    real = registry_mod.entry_points
    monkeypatch.setattr(registry_mod, "entry_points", lambda group: list(real(group=group)) + [_FakeEP()])
    monkeypatch.setenv("GENEFACE_PLUGINS", "")
    reg = registry_mod.get_registry(reload=True)
    assert not [b for b in reg.broken if b.origin.dist == "broken-dist"]  # not loaded at all
    assert all(e.origin.dist == "geneface" for e in reg.all_entries())


def test_no_builtin_plugin_is_broken():
    reg = registry_mod.get_registry(reload=True)
    assert [(b.origin.entry_point, b.error) for b in reg.broken] == []


def test_hookspecs_are_the_kinds_table():
    """The hooks are written out for readers; they must stay exactly the table's (one per kind,
    same name, a docstring naming the base class and the kind's summary)."""
    import inspect

    from geneface import hookspecs
    from geneface.core.kinds import KINDS

    declared = {name for name, fn in vars(hookspecs).items()
                if inspect.isfunction(fn) and hasattr(fn, "geneface_spec")}
    assert declared == {k.hook for k in KINDS}
    for kind in KINDS:
        fn = getattr(hookspecs, kind.hook)
        assert list(inspect.signature(fn).parameters) == ["register"], kind.hook
        doc = " ".join(fn.__doc__.split())
        assert doc.startswith(f"Register {kind.base.__name__} subclasses ({kind.summary}"), (kind.hook, doc)
