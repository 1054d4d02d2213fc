"""attrs field validators that report at the field's own path (``$.solver.base_lr: must be > 0, ...``).

Use these rather than ``attrs.validators``: theirs raise messages without the path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from .errors import ConfigProblem
from .suggest import did_you_mean

__all__ = [
    "at_least",
    "at_most",
    "below",
    "between",
    "greater_than",
    "instance_of",
    "length",
    "non_empty",
    "one_of",
    "optional",
    "subset_of",
]

Validator = Callable[[Any, attrs.Attribute, Any], None]


def _compare(check: Callable[[Any], bool], text: str) -> Validator:
    def validate(_: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not check(value):
            raise ConfigProblem(f"must be {text}, got {value!r}", key=attribute.name)

    return validate


def at_least(low: float) -> Validator:
    return _compare(lambda x: x >= low, f">= {low}")


def greater_than(low: float) -> Validator:
    return _compare(lambda x: x > low, f"> {low}")


def at_most(high: float) -> Validator:
    return _compare(lambda x: x <= high, f"<= {high}")


def below(high: float) -> Validator:
    return _compare(lambda x: x < high, f"< {high}")


def between(low: float, high: float) -> Validator:
    return _compare(lambda x: low <= x <= high, f"in [{low}, {high}]")


def one_of(options: Sequence[Any]) -> Validator:
    def validate(_: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in options:
            hint = (
                did_you_mean(value, [o for o in options if isinstance(o, str)])
                if isinstance(value, str)
                else ""
            )
            raise ConfigProblem(f"must be one of {list(options)}, got {value!r}{hint}", key=attribute.name)

    return validate


def subset_of(options: Sequence[Any]) -> Validator:
    def validate(_: Any, attribute: attrs.Attribute, value: Any) -> None:
        unknown = [x for x in value if x not in options]
        if unknown:
            raise ConfigProblem(f"{unknown} not among {list(options)}", key=attribute.name)

    return validate


def length(n: int) -> Validator:
    def validate(_: Any, attribute: attrs.Attribute, value: Any) -> None:
        if len(value) != n:
            raise ConfigProblem(f"must have {n} values, got {len(value)}", key=attribute.name)

    return validate


def non_empty(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if len(value) == 0:
        raise ConfigProblem("must not be empty", key=attribute.name)


def instance_of(cls: type | tuple[type, ...]) -> Validator:
    names = " or ".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))

    def validate(_: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not isinstance(value, cls):
            raise ConfigProblem(f"expected {names}, got {type(value).__name__}", key=attribute.name)

    return validate


def optional(validator: Validator) -> Validator:
    def validate(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is not None:
            validator(instance, attribute, value)

    return validate
