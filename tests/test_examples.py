"""The example specs parse, and every key in them says what it is for (a comment on its line)."""

import re
from pathlib import Path

import pytest

from geneface.core.spec import load_spec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SPECS = sorted(p for p in EXAMPLES.rglob("*.yaml") if p.name not in ("vae_small.yaml",))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_spec_parses(path):
    spec = load_spec(path)
    assert spec.stages and spec.output is not None


@pytest.mark.parametrize("path", [p for p in SPECS if p.name != "audio2motion.yaml"],
                         ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_key_has_a_comment(path):
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if re.match(r"^\s*[\w]+:", line):
            assert "#" in line, f"{path.name}:{number}: a key without a comment: {line.strip()}"
