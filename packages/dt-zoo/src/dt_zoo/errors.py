"""``ZooError``: the one error type of dt-zoo, always a single line that says what to do."""

from __future__ import annotations

__all__ = ["ZooError"]


class ZooError(ValueError):
    """A zoo problem (unknown model, bad manifest, failed or unverifiable download), in one line."""
