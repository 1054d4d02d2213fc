"""``did_you_mean``: the one "did you mean" hint every dt error message uses."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["close_matches", "did_you_mean"]

CUTOFF = 0.6
"""Similarity (``difflib`` ratio) a name needs to be suggested."""


def close_matches(word: str, choices: Iterable[str], n: int = 1) -> list[str]:
    """Up to ``n`` of ``choices`` closest to ``word``, best first."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=CUTOFF)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""``."""
    close = close_matches(word, choices)
    return f" (did you mean {close[0]!r}?)" if close else ""
