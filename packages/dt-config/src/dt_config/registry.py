"""``Registry``: names mapped to a config class and the function that builds the part it describes.

Register a part with a decorator; its config class (a frozen ``attrs`` class deriving from the
registry's base config, with a ``name`` class attribute) is then accepted wherever that kind of
part is configured::

    @attrs.define(frozen=True, kw_only=True)
    class MyBackboneConfig(BackboneConfig):
        name: ClassVar[str] = "MyBackbone"
        width: int = 64

    @BACKBONE_REGISTRY.register(MyBackboneConfig)
    def build_my_backbone(config: MyBackboneConfig, input_shape: ShapeSpec) -> Backbone:
        return MyBackbone(width=config.width, in_channels=input_shape.channels)

Packages outside dt declare their parts as entry points of the registry's ``group``
(``dt_models.backbone`` for backbones): each is imported the first time the registry is asked
for a name it does not have, or for its list of names.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import attrs

from .converter import register_tagged_union
from .suggest import did_you_mean

__all__ = ["Registry", "RegistryEntry", "load_entry_points"]


def load_entry_points(group: str, error: type[Exception] = ValueError) -> list[tuple[str, Any]]:
    """The objects of ``group``'s entry points, sorted by name, each with a phrase naming its entry
    point for messages; a plugin that fails to import raises ``error`` (one line naming it)."""
    loaded = []
    for point in sorted(entry_points(group=group), key=lambda p: p.name):
        where = f"entry point {point.name!r} = {point.value!r} of group {group!r}"
        try:
            loaded.append((where, point.load()))
        except Exception as err:  # any failure importing a plugin is one line
            raise error(f"{where} failed to load: {type(err).__name__}: {err}") from None
    return loaded


@attrs.frozen
class RegistryEntry:
    """A registered part: its ``name``, its ``config`` class and the ``build(config, **context)`` function."""

    name: str
    config: type
    build: Callable[..., Any]


class Registry:
    """Maps names to ``(config class, build function)`` for one kind of part.

    Args:
        name: the kind of part (``"backbone"``), used in messages.
        config_base: every registered config class must derive from it; fields typed with it are a
            tagged union resolved through this registry.
        group: the entry-point group that plugs parts in from other packages.
        default: the name assumed when configuration data has no ``name`` key.
    """

    def __init__(self, name: str, config_base: type, group: str, default: str | None = None) -> None:
        self.name = name
        self.config_base = config_base
        self.group = group
        self._entries: dict[str, RegistryEntry] = {}
        self._entry_points_loaded = False
        register_tagged_union(config_base, self.config_class, default)

    def register(self, config: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a build function under ``config.name``; returns the function unchanged."""
        if not (isinstance(config, type) and issubclass(config, self.config_base) and attrs.has(config)):
            raise TypeError(
                f"config must be an attrs subclass of {self.config_base.__name__}, got {config!r}"
            )
        name = getattr(config, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{config.__name__} needs a class attribute `name: ClassVar[str]`")

        def decorator(build: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(build):
                raise TypeError(f"expected a callable to register, got {build!r}")
            if name in self._entries:
                raise ValueError(f"{self.name} {name!r} is already registered")
            self._entries[name] = RegistryEntry(name, config, build)
            return build

        return decorator

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.group):
            ep.load()

    def get(self, name: str) -> RegistryEntry:
        """The entry registered as ``name``; ``ValueError`` with a suggestion if there is none."""
        if name not in self._entries:
            self._load_entry_points()
        if name not in self._entries:
            raise ValueError(
                f"unknown {self.name} {name!r}{did_you_mean(name, self.names())}; "
                f"registered: {', '.join(self.names())}"
            )
        return self._entries[name]

    def config_class(self, name: str) -> type:
        """The config class registered as ``name``."""
        return self.get(name).config

    def build(self, config: Any, **context: Any) -> Any:
        """Build the part described by ``config`` (an instance of a registered config class)."""
        if not isinstance(config, self.config_base):
            raise TypeError(f"expected a {self.config_base.__name__}, got {type(config).__name__}")
        return self.get(type(config).name).build(config, **context)

    def names(self) -> list[str]:
        """Every registered name, entry-point parts included."""
        self._load_entry_points()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            self._load_entry_points()
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, names={self.names()})"
