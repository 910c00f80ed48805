"""Seams between stages: a mismatch is caught where two stages meet, naming both."""

import types

import numpy as np
import pytest

from geneface import hookimpl
from geneface.core.motion_io import save_motion
from geneface.app.run import run_spec
from geneface.core.records import Motion
from geneface.core.spec import parse_spec
from geneface.core.stages import DomainAdapter, MotionGenerator
from geneface.errors import StageMismatchError
from geneface.registry import Origin, get_registry

from conftest import talking_motion


class WideGenerator(MotionGenerator):
    """Trained (in this test's story) on 1024-wide features; holds its input's mouth still."""

    name = "wide_generator"
    description = "test generator expecting 1024-wide features"

    @property
    def expected_width(self):
        return 1024

    def generate(self, features):
        return talking_motion(features.n_frames // 2)


class Shortener(DomainAdapter):
    name = "shortener"
    description = "test adapter that drops a frame (a bug the pipeline must catch)"

    def adapt(self, motion):
        return motion.with_landmarks(motion.landmarks[:-1])


def _registry():
    reg = get_registry(reload=True)
    mod = types.ModuleType("test_stages")

    @hookimpl
    def register_motion_generators(register):
        register(WideGenerator)

    @hookimpl
    def register_domain_adapters(register):
        register(Shortener)

    mod.register_motion_generators = register_motion_generators
    mod.register_domain_adapters = register_domain_adapters
    reg.register_module(mod, Origin("tests", "0", "test_stages"))
    return reg


def test_feature_width_mismatch_names_both_stages(tmp_path, wav_file):
    spec = parse_spec({"input": {"audio": str(wav_file)},
                       "stages": {"audio_encoder": "mel", "motion_generator": "wide_generator"},
                       "output": "m.npz"}, tmp_path)
    with pytest.raises(StageMismatchError) as err:
        run_spec(spec, _registry())
    msg = str(err.value)
    assert "audio_encoder 'mel' -> motion_generator 'wide_generator'" in msg and "1024" in msg and "80" in msg
    assert not (tmp_path / "m.npz").exists()


def test_rate_mismatch_at_the_input_seam(tmp_path):
    path = tmp_path / "m30.npz"
    save_motion(path, Motion(talking_motion(30).landmarks, fps=30.0))
    spec = parse_spec({"input": {"motion": str(path)}, "stages": {"domain_adapter": "shortener"},
                       "output": "o.npz"}, tmp_path)
    with pytest.raises(StageMismatchError, match=r"m30.npz' -> domain_adapter 'shortener': expects motion at 25 fps, got 30 fps"):
        run_spec(spec, _registry())


def test_stage_that_changes_length_is_caught(tmp_path, motion_file):
    spec = parse_spec({"input": {"motion": str(motion_file)}, "stages": {"domain_adapter": "shortener"},
                       "output": "o.npz"}, tmp_path)
    with pytest.raises(StageMismatchError, match="changed the length"):
        run_spec(spec, _registry())
