"""Registries of pluggable parts: a name maps to a config class and a function building the part.

Register your own part with a decorator; its config class (a frozen ``attrs`` class deriving from
the registry's base config, with a ``name`` class attribute) is then accepted wherever that kind of
part is configured::

    @attrs.define(frozen=True, kw_only=True)
    class MyBackboneConfig(BackboneConfig):
        name: ClassVar[str] = "MyBackbone"
        width: int = 64

    @BACKBONE_REGISTRY.register(MyBackboneConfig)
    def build_my_backbone(config: MyBackboneConfig, input_shape: ShapeSpec) -> Backbone:
        return MyBackbone(width=config.width, in_channels=input_shape.channels)

Packages outside dt can also declare parts as entry points in the group ``dt_models.<registry>``
(e.g. ``dt_models.backbone``); they are imported the first time a name is not found.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import attrs

from dt_models.config.core import did_you_mean, register_tagged_union
from dt_models.config.model import (
    BackboneConfig,
    BoxHeadConfig,
    MaskHeadConfig,
    ModelConfig,
    ProposalGeneratorConfig,
    ROIHeadsConfig,
)

__all__ = [
    "BACKBONE_REGISTRY",
    "META_ARCH_REGISTRY",
    "PROPOSAL_GENERATOR_REGISTRY",
    "ROI_BOX_HEAD_REGISTRY",
    "ROI_HEADS_REGISTRY",
    "ROI_MASK_HEAD_REGISTRY",
    "Registry",
    "RegistryEntry",
]


@attrs.frozen
class RegistryEntry:
    """A registered part: its ``name``, its ``config`` class and the ``build(config, **context)`` function."""

    name: str
    config: type
    build: Callable[..., Any]


class Registry:
    """Maps names to ``(config class, build function)`` for one kind of part.

    Args:
        name: the kind of part (``"backbone"``); also names the entry-point group ``dt_models.<name>``.
        config_base: every registered config class must derive from it.
        default: the name assumed when configuration data has no ``name`` key.
    """

    def __init__(self, name: str, config_base: type, default: str | None = None) -> None:
        self.name = name
        self.config_base = config_base
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
        for ep in entry_points(group=f"dt_models.{self.name}"):
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
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, names={self.names()})"


BACKBONE_REGISTRY = Registry("backbone", BackboneConfig)
"""Backbones: ``build(config, input_shape: ShapeSpec) -> Backbone``."""
PROPOSAL_GENERATOR_REGISTRY = Registry("proposal_generator", ProposalGeneratorConfig)
"""Proposal generators: ``build(config, input_shape: dict[str, ShapeSpec]) -> nn.Module``."""
ROI_HEADS_REGISTRY = Registry("roi_heads", ROIHeadsConfig)
"""ROI heads: ``build(config, input_shape: dict[str, ShapeSpec]) -> ROIHeads``."""
ROI_BOX_HEAD_REGISTRY = Registry("roi_box_head", BoxHeadConfig)
"""Box heads: ``build(config, input_shape: ShapeSpec) -> nn.Module`` with an ``output_shape``."""
ROI_MASK_HEAD_REGISTRY = Registry("roi_mask_head", MaskHeadConfig)
"""Mask heads: ``build(config, input_shape: ShapeSpec, num_classes: int) -> nn.Module``."""
META_ARCH_REGISTRY = Registry("meta_arch", ModelConfig, default="GeneralizedRCNN")
"""Meta-architectures: ``build(config) -> nn.Module``."""
