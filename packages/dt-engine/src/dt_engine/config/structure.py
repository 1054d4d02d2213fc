"""Strict structuring of plain data (parsed YAML) into attrs config classes, with readable errors.

One project-owned ``cattrs.Converter(forbid_extra_keys=True)`` (never the global one) whose
primitive hooks refuse silent conversions (``"3"`` is not an int, ``1.5`` is not an int,
``1`` is not a bool). Every problem becomes one line with the full key path, what was
expected, what was given, and a "did you mean" for unknown keys::

    $.solver.max_iter: expected int, got str 'abc'
    $.solver.base_lrr: unknown key (did you mean 'base_lr'?)

The API (``structure(cls, data)``, ``unstructure``, ``ConfigError.problems``) is the one of
``dt_models.config`` so the two report problems the same way.
"""

from __future__ import annotations

import difflib
import enum
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

__all__ = ["ConfigError", "converter", "structure", "unstructure"]

T = TypeVar("T")
_MISSING = object()


class ConfigError(ValueError):
    """Invalid configuration; ``problems`` holds one line per problem (``str(err)`` joins them)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_name(a) for a in args)
    if origin in (tuple, list, Sequence) and args:
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        if origin is tuple:
            return f"a list of {len(args)} ({', '.join(_type_name(a) for a in args)})"
        return f"a list of {_type_name(args[0])}"
    if origin is dict and args:
        return f"a mapping of {_type_name(args[0])} to {_type_name(args[1])}"
    return str(tp).replace("typing.", "")


def _describe(value: Any) -> str:
    if value is _MISSING:
        return "nothing"
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected int")
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("expected float")
    return float(value)


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected bool")
    return value


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError("expected str")
    return value


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(str, _strict_str)
    conv.register_unstructure_hook(enum.Enum, lambda e: e.value)
    return conv


converter = _make_converter()


def _join(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"


def _lookup(data: Any, key: str | int) -> Any:
    try:
        return data[key]
    except (KeyError, IndexError, TypeError):
        return _MISSING


def _walk(exc: BaseException, path: str, data: Any, cls: Any, out: list[str]) -> None:
    """Collect one line per leaf problem of a cattrs exception tree."""
    if isinstance(exc, ForbiddenExtraKeysError):
        names = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        for extra in sorted(exc.extra_fields):
            close = difflib.get_close_matches(extra, names, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(names)})"
            out.append(f"{_join(path, extra)}: unknown key{hint}")
        return
    if isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, without_notes = exc.group_exceptions()
        for sub, note in with_notes:
            key: str | int = note.name if hasattr(note, "name") else note.index
            _walk(sub, _join(path, key), _lookup(data, key), getattr(note, "type", None), out)
        for sub in without_notes:
            _walk(sub, path, data, cls, out)
        return
    if isinstance(exc, ExceptionGroup):
        for sub in exc.exceptions:
            _walk(sub, path, data, cls, out)
        return
    where = path
    if data is _MISSING and isinstance(exc, KeyError):
        out.append(f"{where}: required key is missing")
    elif cls is not None and (isinstance(exc, TypeError) or not attrs.has(cls)):
        out.append(f"{where}: expected {_type_name(cls)}, got {_describe(data)}")
    elif isinstance(exc, ValueError) and len(exc.args) >= 2 and isinstance(exc.args[1], attrs.Attribute):
        name = exc.args[1].name  # an attrs validator: (message, attribute, bound, value)
        message = str(exc.args[0]).replace(f"'{name}' ", "", 1)
        out.append(f"{_join(path, name)}: {message}")
    else:
        out.append(f"{where}: {exc}")


def structure(cls: type[T], data: Any, *, path: str = "$") -> T:
    """Build ``cls`` from plain data; raises ``ConfigError`` listing every problem.

    Cross-field validators (``attrs`` validators, ``__attrs_post_init__``) raising
    ``ValueError``/``TypeError`` are reported at the path of the class they belong to.
    """
    try:
        return converter.structure(data, cls)
    except ConfigError:
        raise
    except Exception as exc:  # cattrs wraps every problem; turn the tree into lines
        out: list[str] = []
        _walk(exc, path, data, cls, out)
        raise ConfigError(out) from None


def unstructure(obj: Any) -> Any:
    """Plain data (dicts, lists, scalars) for ``obj``; tuples become lists (YAML has no tuples)."""
    return _lists(converter.unstructure(obj))


def _lists(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _lists(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_lists(v) for v in data]
    return data
