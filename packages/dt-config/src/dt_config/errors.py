"""The two config error types: ``ConfigProblem`` (one value is wrong) and ``ConfigError`` (all of them).

Every problem renders as one line ``$.full.path: what was expected, what was given``::

    $.model.roi_heads.num_classes: expected int, got str 'ten'
    $.solver.base_lr: must be > 0, got -1.0
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConfigError", "ConfigProblem", "describe"]


class ConfigError(ValueError):
    """An invalid configuration; ``problems`` holds one ``"$.path: message"`` line per problem."""

    def __init__(self, problems: list[str], what: str = "config") -> None:
        self.problems = list(problems)
        super().__init__(
            f"invalid {what} ({len(problems)} problem{'s' * (len(problems) != 1)}):\n  "
            + "\n  ".join(problems)
        )


class ConfigProblem(ValueError):
    """One bad value. Raised by validators and ``__attrs_post_init__`` checks with the field's ``key``
    (a dotted path below the config class being built); the structuring error puts the class's own
    path in front."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


def describe(value: Any) -> str:
    """``"str 'ten'"``: a value's type and (shortened) repr, for "got ..." messages."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"
