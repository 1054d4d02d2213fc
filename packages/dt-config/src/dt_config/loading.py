"""Loading typed configs: YAML files with ``_base_`` inheritance, Python config files, dotted overrides.

* A YAML file may name ``_base_: other.yaml`` (or a list); paths are relative to the file.
  Bases are merged in order, then the file itself on top: mappings merge key by key, any
  other value (lists included) replaces. A mapping whose ``name`` changes (a tagged union:
  another backbone) replaces instead of merging.
* A ``.py`` config file is run and must define ``config`` (an instance of the config class)
  or a function ``get_config()`` returning one: the typed counterpart of detectron2's
  LazyConfig.
* Overrides ``a.b.c=value`` parse ``value`` as YAML (``3``, ``0.1``, ``true``, ``[1, 2]``,
  ``{k: v}``) or a tuple ``(1, 2)``; ``a.b.c=`` with nothing sets an empty string.
* Every file is upgraded from its ``version`` to the current one before merging; the files are
  merged on top of the config class's defaults, so overrides can reach every key.
* Everything is checked at load time; problems are reported together in one ``ConfigError``.
  YAML is parsed by PyYAML's ``SafeLoader`` (what ``yaml.safe_load`` uses), extended only to read
  ``1e-4`` as a float as YAML 1.2 does (YAML 1.1 reads it as a string).
"""

from __future__ import annotations

import copy
import os
import re
import runpy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .converter import structure, unstructure
from .errors import ConfigError

__all__ = [
    "apply_overrides",
    "dump_yaml",
    "load_config",
    "load_yaml_tree",
    "merge_trees",
    "parse_override",
    "safe_load",
]

T = TypeVar("T")
Upgrader = Callable[[dict[str, Any]], dict[str, Any]]


class _SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads exponent floats without a dot (``1e-4``)."""


class _SafeDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that knows the same floats, so it quotes strings such as ``"1e-4"``."""


for _yaml_class in (_SafeLoader, _SafeDumper):
    _yaml_class.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )


_YAML_LINE_BREAKS = ("\x85", "\u2028", "\u2029")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    """Strings holding a character YAML reads as a line break (NEL, LS, PS) are written double-quoted,
    where they are escaped; written raw they would come back changed."""
    style = '"' if any(c in value for c in _YAML_LINE_BREAKS) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_SafeDumper.add_representer(str, _represent_str)


def safe_load(text: str) -> Any:
    """Parse YAML with ``_SafeLoader``: plain data only, never Python objects."""
    return yaml.load(text, Loader=_SafeLoader)


def merge_trees(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base`` (recursive for mappings; neither input is modified)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        old = out.get(key)
        same_kind = isinstance(old, Mapping) and isinstance(value, Mapping)
        if same_kind and old.get("name", value.get("name")) == value.get("name", old.get("name")):
            out[key] = merge_trees(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"]) from None
    except OSError as err:
        raise ConfigError([f"{path}: cannot read the config file ({err.strerror})"]) from None
    try:
        data = safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError([f"{where}: invalid YAML: {problem}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected a mapping at the top level, got {type(data).__name__}"])
    return data


def load_yaml_tree(
    path: str | os.PathLike[str],
    *,
    upgrade: Callable[[dict[str, Any], str], dict[str, Any]] | None = None,
    _chain: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """The merged plain data of a YAML config file and its ``_base_`` files.

    ``upgrade(data, source)`` (if given) brings each file's data to the current version
    before merging.
    """
    path = Path(path).resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise ConfigError([f"{path}: _base_ inheritance cycle: {cycle}"])
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError([f"{path}: _base_ must be a path or a list of paths, got {bases!r}"])
    if upgrade is not None:
        data = upgrade(data, str(path))
    merged: dict[str, Any] = {}
    for base in bases:
        parent = load_yaml_tree(path.parent / base, upgrade=upgrade, _chain=(*_chain, path))
        merged = merge_trees(merged, parent)
    return merge_trees(merged, data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"model.roi_heads.num_classes=3"`` -> ``(["model", "roi_heads", "num_classes"], 3)``."""
    key, sep, raw = text.partition("=")
    keys = key.strip().split(".")
    if not sep or not all(k.strip() for k in keys):
        raise ConfigError([f"override {text!r}: expected key.path=value, e.g. solver.base_lr=0.01"])
    raw = raw.strip()
    if raw.startswith("(") and raw.endswith(")"):
        raw = "[" + raw[1:-1] + "]"
    if raw == "":
        return [k.strip() for k in keys], ""
    try:
        value = safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError([f"override {text!r}: cannot parse the value {raw!r}"]) from None
    return [k.strip() for k in keys], value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``data`` with each ``key.path=value`` applied in order (unknown keys are caught when structuring)."""
    out, problems = _apply_overrides(data, overrides)
    if problems:
        raise ConfigError(problems)
    return out


def _apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    out = copy.deepcopy(dict(data))
    problems = []
    for text in overrides:
        try:
            keys, value = parse_override(text)
        except ConfigError as err:
            problems += err.problems
            continue
        node = out
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                where = "$." + ".".join(keys[: depth + 1])
                problems.append(f"override {text!r}: {where} is {child!r}, not a mapping")
                break
            node = child
        else:
            node[keys[-1]] = value
    return out, problems


def _load_python(path: Path, cls: type[T]) -> T:
    try:
        namespace = runpy.run_path(str(path), run_name="__dt_config__")
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"]) from None
    except ConfigError:
        raise
    except Exception as err:
        raise ConfigError([f"{path}: running the config file failed: {type(err).__name__}: {err}"]) from None
    if "config" in namespace:
        config = namespace["config"]
    elif callable(namespace.get("get_config")):
        config = namespace["get_config"]()
    else:
        raise ConfigError([f"{path}: a Python config must define `config` or `get_config()`"])
    if not isinstance(config, cls):
        raise ConfigError([f"{path}: expected a {cls.__name__} config, got {type(config).__name__}"])
    return config


def load_config(
    path: str | os.PathLike[str] | None,
    cls: type[T],
    overrides: Sequence[str] = (),
    *,
    upgrade: Callable[[dict[str, Any], str], dict[str, Any]] | None = None,
) -> T:
    """Load ``cls`` (which must be constructible with defaults) from a YAML or ``.py`` file, or its
    defaults when ``path`` is None, then apply the overrides."""
    data = unstructure(cls())
    if path is not None and Path(path).suffix == ".py":
        data = unstructure(_load_python(Path(path), cls))
    elif path is not None:
        data = merge_trees(data, load_yaml_tree(path, upgrade=upgrade))
    data, problems = _apply_overrides(data, overrides)
    try:
        config = structure(cls, data)
    except ConfigError as err:
        raise ConfigError(problems + err.problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def dump_yaml(config: Any) -> str:
    """The complete config as YAML; loading it gives back an equal config (and the same text)."""
    return yaml.dump(
        unstructure(config), Dumper=_SafeDumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
