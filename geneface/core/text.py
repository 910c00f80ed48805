"""Suggestions for a mistyped name, worded one way everywhere ("did you mean ...?")."""

from __future__ import annotations

import difflib
from typing import Iterable


def closest(name: str, candidates: Iterable[str], n: int = 1) -> list[str]:
    """Up to `n` of `candidates` that look like `name`, best first (none when nothing is close)."""
    return difflib.get_close_matches(str(name), [str(c) for c in candidates], n=n, cutoff=0.5)


def did_you_mean(name: str, candidates: Iterable[str], n: int = 1) -> str:
    """"; did you mean 'x'?" (or 'x', 'y'? with `n` > 1) to append to an error, or ""."""
    quoted = [f"'{c}'" for c in closest(name, candidates, n)]
    return f"; did you mean {', '.join(quoted)}?" if quoted else ""
