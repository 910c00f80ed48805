"""Style of the synthetic subject for a target person: lip-corner offset, mouth amplitude,
and corpora of one identity and style (what a domain adapter is meant to learn)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geneface.cli import main
from geneface.errors import UsageError
from geneface.synth.clip import ClipSpec, generate
from geneface.synth.corpus import CorpusSpec, identity_for, plan_corpus
from geneface.synth.face_model import CORNER_RAISE_CM
from geneface.synth.variation import Style

TEXT = "Ah, what a wonderful morning."
LEFT, RIGHT = 54, 48  # the subject's left mouth corner is image-right (landmark 54)


@pytest.fixture(scope="module")
def plain():
    return generate(ClipSpec(text=TEXT, size=64, seed=2))


def test_lip_corner_offset_raises_the_left_corner_more_as_the_jaw_opens(plain):
    lopsided = generate(ClipSpec(text=TEXT, size=64, seed=2, style=Style(lip_corner_offset=0.5)))
    a, b = plain.ground_truth, lopsided.ground_truth
    up = a.landmarks68_canonical[:, LEFT, 1] - b.landmarks68_canonical[:, LEFT, 1]  # y is down: + is up
    jaw = np.maximum(a.articulation[:, 0], 0.0)
    want = 0.5 * CORNER_RAISE_CM * (0.5 + jaw)
    assert np.allclose(up, want, atol=0.01)  # cm; 1.0-2.5 mm on this text
    assert up.min() > 0.09
    assert np.abs(a.landmarks68_canonical[:, RIGHT] - b.landmarks68_canonical[:, RIGHT]).max() < 0.005
    # The image truth is read from the same mesh, so it moves too (up, in pixels).
    assert (a.landmarks68_image[:, LEFT, 1] - b.landmarks68_image[:, LEFT, 1]).mean() > 0.1
    # A speaking habit, not a constant: it follows the mouth opening, which it leaves alone.
    assert np.corrcoef(up, a.mouth_opening)[0, 1] > 0.5
    assert np.abs(a.mouth_opening - b.mouth_opening).max() < 0.01


def test_mouth_amplitude_scales_the_spread_of_mouth_opening(plain):
    loud = generate(ClipSpec(text=TEXT, size=64, seed=2, style=Style(mouth_amplitude=1.5)))
    ratio = loud.ground_truth.mouth_opening.std() / plain.ground_truth.mouth_opening.std()
    assert 1.3 < ratio < 1.7


def test_style_round_trips_and_old_records_load():
    style = Style(mouth_amplitude=1.5, lip_corner_offset=-0.25)
    assert Style.from_dict(style.to_dict()) == style
    old = {k: v for k, v in Style().to_dict().items() if k != "lip_corner_offset"}
    assert Style.from_dict(old).lip_corner_offset == 0.0
    with pytest.raises(UsageError, match="lip_corner_offset"):
        Style(lip_corner_offset=1.5)


def test_one_person_corpus(tmp_path, capsys):
    out = tmp_path / "target"
    args = ["synth-corpus", str(out), "--clips", "2", "--size", "64", "--identities", "3", "--identity-id", "2",
            "--voices", "en-us,en-gb", "--mouth-amplitude", "1.5", "--lip-corner-offset", "0.5", "-q"]
    assert main(args) == 2  # the default test split would need held-out identities
    assert "--test-fraction 0" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
    assert main(args + ["--test-fraction", "0"]) == 0
    manifest = json.loads((out / "corpus.json").read_text())
    assert manifest["spec"]["identity_id"] == 2 and manifest["spec"]["style"]["lip_corner_offset"] == 0.5
    spec = CorpusSpec(clips=2, identities=3)
    for entry in manifest["clips"]:
        meta = json.loads((out / entry["id"] / "meta.json").read_text())
        assert entry["identity_id"] == 2 and entry["split"] == "train"
        assert meta["spec"]["identity"] == identity_for(spec, 2).to_dict()
        assert meta["spec"]["style"] == Style(mouth_amplitude=1.5, lip_corner_offset=0.5).to_dict()
    assert main(args + ["--test-fraction", "0"]) == 0  # resumes: nothing to remake
    assert main(args + ["--test-fraction", "0", "--lip-corner-offset", "0.2"]) == 2  # other settings


def test_corpus_style_options_are_checked():
    with pytest.raises(UsageError, match="identity-id must be 0..2"):
        CorpusSpec(clips=1, identities=3, identity_id=3, test_fraction=0).validate()
    with pytest.raises(UsageError, match="test-fraction 0"):
        CorpusSpec(clips=1, identities=3, identity_id=1).validate()
    # Only the identity changes: voices, texts and seeds match the corpus without it.
    free = plan_corpus(CorpusSpec(clips=4, identities=3, test_fraction=0))
    fixed = plan_corpus(CorpusSpec(clips=4, identities=3, test_fraction=0, identity_id=1))
    assert [e["identity_id"] for e in fixed] == [1] * 4
    assert [{**e, "identity_id": 0} for e in free] == [{**e, "identity_id": 0} for e in fixed]
