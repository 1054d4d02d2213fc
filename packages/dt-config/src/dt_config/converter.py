"""The project's one ``cattrs`` converter, tagged unions, and ``structure``/``unstructure``.

Configs are frozen ``attrs`` classes. Pluggable parts (a backbone, a head, a dataset loader) are
fields typed with a *tagged-union base*: the data's ``name`` key picks the registered config class.
Every problem is reported at once, one line each, with its full key path::

    $.roi_heads.num_classes: expected int, got str 'ten'
    $.backbone.fpn.out_chanels: unknown key (did you mean 'out_channels'?); allowed: ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import AttributeValidationNote, ForbiddenExtraKeysError, IterableValidationNote
from cattrs.gen import make_mapping_structure_fn

from .errors import ConfigError, ConfigProblem, describe
from .suggest import did_you_mean

__all__ = ["Tagged", "converter", "register_tagged_union", "structure", "unstructure"]

T = TypeVar("T")


class Tagged:
    """Mixin of tagged-union config classes: the class attribute ``name`` is the registry key."""

    name: ClassVar[str]


def _strict(kind: type, accept: tuple[type, ...]) -> Callable[[Any, type], Any]:
    def hook(value: Any, _: type) -> Any:
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, accept):
            raise ConfigProblem(f"expected {kind.__name__}, got {describe(value)}")
        return kind(value)

    return hook


converter = cattrs.Converter(forbid_extra_keys=True)
"""The converter owned by dt (never cattrs' global one): strict scalars, tagged unions."""

converter.register_structure_hook(int, _strict(int, (int,)))
converter.register_structure_hook(float, _strict(float, (int, float)))
converter.register_structure_hook(bool, _strict(bool, (bool,)))
converter.register_structure_hook(str, _strict(str, (str,)))


def _structure_literal(value: Any, literal: Any) -> Any:
    choices = get_args(literal)
    if value in choices and type(value) in {type(c) for c in choices}:
        return value
    listing = ", ".join(repr(c) for c in choices)
    hint = did_you_mean(value, [c for c in choices if isinstance(c, str)]) if isinstance(value, str) else ""
    raise ConfigProblem(f"expected one of {listing}, got {describe(value)}{hint}")


converter.register_structure_hook_func(lambda t: get_origin(t) is Literal, _structure_literal)


def _mapping_hook(mapping_type: Any) -> Callable[[Any, type], Any]:
    structure_items = make_mapping_structure_fn(mapping_type, converter)

    def hook(value: Any, _: type) -> Any:
        if not isinstance(value, Mapping):
            raise ConfigProblem(f"expected a mapping, got {describe(value)}")
        return structure_items(value, mapping_type)

    return hook


converter.register_structure_hook_factory(lambda t: get_origin(t) in (dict, Mapping), _mapping_hook)

_UNION_BASES: list[type] = []


def register_tagged_union(base: type, lookup: Callable[[str], type], default: str | None = None) -> None:
    """Make fields typed ``base`` structure into the config class that ``lookup(name)`` returns.

    Args:
        base: the union's base class (subclasses are the members).
        lookup: maps a ``name`` to a subclass of ``base``; raises ``ValueError`` for unknown names.
        default: the name used when the data has no ``name`` key (``None``: the key is required).
    """
    if base in _UNION_BASES:
        raise ValueError(f"{base.__name__} is already a tagged union (one registry per config base)")

    def structure_hook(data: Any, _: type) -> Any:
        if isinstance(data, base):
            return data
        if not isinstance(data, Mapping):
            raise ConfigProblem(f"expected a mapping with a 'name' key, got {describe(data)}")
        name = data.get("name", default)
        if name is None:
            raise ConfigProblem("missing required key", key="name")
        if not isinstance(name, str):
            raise ConfigProblem(f"expected str, got {describe(name)}", key="name")
        try:
            cls = lookup(name)
        except ValueError as e:
            raise ConfigProblem(str(e), key="name") from None
        return converter.structure({k: v for k, v in data.items() if k != "name"}, cls)

    def unstructure_hook(obj: Any) -> dict[str, Any]:
        return {"name": type(obj).name, **converter.unstructure(obj, unstructure_as=type(obj))}

    converter.register_structure_hook_func(lambda t: t is base, structure_hook)
    converter.register_unstructure_hook_func(lambda t: t is base, unstructure_hook)
    _UNION_BASES.append(base)


def _item_path(path: str, index: Any) -> str:
    """``$.a[3]`` for list items, ``$.a.key`` for mapping keys that are identifiers (``$.a['x y']`` else)."""
    if isinstance(index, str) and index.isidentifier():
        return f"{path}.{index}"
    return f"{path}[{index!r}]"


def _collect(exc: BaseException, path: str, lines: list[str]) -> None:
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            sub_path = path
            for note in getattr(sub, "__notes__", []):
                if isinstance(note, AttributeValidationNote):
                    sub_path = f"{path}.{note.name}"
                elif isinstance(note, IterableValidationNote):
                    sub_path = _item_path(path, note.index)
            _collect(sub, sub_path, lines)
    elif isinstance(exc, ForbiddenExtraKeysError):
        names = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        for key in sorted(exc.extra_fields):
            lines.append(f"{path}.{key}: unknown key{did_you_mean(key, names)}; allowed: {', '.join(names)}")
    elif isinstance(exc, ConfigProblem):
        lines.append(f"{path}.{exc.key}: {exc.message}" if exc.key else f"{path}: {exc.message}")
    elif isinstance(exc, KeyError):
        lines.append(f"{path}: missing required key")
    elif len(exc.args) > 1 and isinstance(exc.args[0], str) and isinstance(exc.args[1], attrs.Attribute):
        # attrs' own validators raise (message, attribute, ...): report at the attribute's path.
        lines.append(f"{path}.{exc.args[1].name}: {exc.args[0]}")
    else:
        lines.append(f"{path}: {exc}")


def structure(cls: type[T], data: Any, *, what: str = "config", path: str = "$") -> T:
    """Build a ``cls`` config from plain data (mappings, lists, scalars), validating all of it.

    ``path`` is where ``data`` sits in the whole config (``"$.model"``), for the error lines.

    Raises:
        ConfigError: listing every problem found, one ``"$.key.path: message"`` line each.
    """
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ConfigProblem, ValueError, TypeError, KeyError) as e:
        lines: list[str] = []
        _collect(e, path, lines)
        raise ConfigError(lines, what) from None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def unstructure(config: Any) -> Any:
    """Plain data (dicts, lists, scalars) for ``config``, with ``name`` keys; YAML-safe and round-trips."""
    as_type = next((b for b in _UNION_BASES if isinstance(config, b)), type(config))
    return _plain(converter.unstructure(config, unstructure_as=as_type))
