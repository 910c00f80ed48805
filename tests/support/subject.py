"""The synthetic subject as a processed dataset, for the renderer tests (made once per session)."""

from __future__ import annotations

from pathlib import Path


def subject_dataset(root: Path, seconds: float = 2.0, size: int = 64) -> Path:
    """Synthesise the subject talking for `seconds` (128 px) and process it at `size` px into
    `root / "ds"` (reused when it is already there)."""
    from geneface.cli import main

    out = Path(root) / "ds"
    if not (out / "manifest.json").exists():
        assert main(["synth", "-o", str(root / "clip"), "--seconds", str(seconds), "--size", "128", "-q"]) == 0
        assert main(["process", str(root / "clip" / "video.mp4"), "-o", str(out), "--size", str(size),
                     "--min-face", "20", "-q"]) == 0
    return out


def read_metrics(path: Path) -> dict:
    """A run's metrics.csv as {(step, phase, name): value}."""
    from geneface.training.metrics import read_metrics as rows

    return {(int(s), phase, name): float(v) for s, phase, name, v in rows(Path(path))}
