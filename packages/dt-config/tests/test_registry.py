from typing import ClassVar

import attrs
import pytest

import dt_config.registry as registry_module
from dt_config import ConfigError, Registry, Tagged, structure, unstructure


@attrs.define(frozen=True, kw_only=True)
class PartConfig(Tagged):
    """Base of the test registry's configs."""


@attrs.define(frozen=True, kw_only=True)
class Small(PartConfig):
    name: ClassVar[str] = "Small"
    width: int = 8


@attrs.define(frozen=True, kw_only=True)
class Holder:
    part: PartConfig = attrs.Factory(Small)


PARTS = Registry("part", PartConfig, group="dt_config_tests.part", default="Small")


@PARTS.register(Small)
def build_small(config: Small, scale: int = 1) -> int:
    return config.width * scale


class FakeEntryPoint:
    """Stands in for an installed package's entry point: loading it registers a part."""

    loads = 0

    def load(self):
        FakeEntryPoint.loads += 1

        @attrs.define(frozen=True, kw_only=True)
        class Plugged(PartConfig):
            name: ClassVar[str] = "Plugged"
            depth: int = 2

        PARTS.register(Plugged)(lambda config, scale=1: config.depth * scale)


@pytest.fixture
def fake_entry_points(monkeypatch):
    monkeypatch.setattr(PARTS, "_entry_points_loaded", False)  # earlier lookups saw no entry points
    monkeypatch.setattr(
        registry_module, "entry_points", lambda group: [FakeEntryPoint()] if group == PARTS.group else []
    )


def test_build_and_round_trip():
    holder = structure(Holder, {"part": {"width": 3}})
    assert PARTS.build(holder.part, scale=2) == 6
    assert unstructure(holder) == {"part": {"name": "Small", "width": 3}}


def test_unknown_name_and_key_are_one_line_each_with_suggestions():
    with pytest.raises(ConfigError) as err:
        structure(Holder, {"part": {"name": "Smal"}})
    assert err.value.problems == [
        "$.part.name: unknown part 'Smal' (did you mean 'Small'?); registered: Small"
    ]
    with pytest.raises(ConfigError) as err:
        structure(Holder, {"part": {"widht": 3}}, path="$.model")
    assert err.value.problems[0].startswith("$.model.part.widht: unknown key (did you mean 'width'?)")


def test_entry_point_parts_are_seen_by_names_contains_and_get(fake_entry_points):
    assert "Plugged" in PARTS  # loaded on demand, not only by get()
    assert PARTS.names() == ["Plugged", "Small"]
    assert PARTS.build(structure(Holder, {"part": {"name": "Plugged", "depth": 5}}).part) == 5
    assert FakeEntryPoint.loads == 1  # each entry point loads once


def test_registration_errors():
    with pytest.raises(TypeError, match="attrs subclass of PartConfig"):
        PARTS.register(int)
    with pytest.raises(ValueError, match="already registered"):
        PARTS.register(Small)(build_small)
    with pytest.raises(ValueError, match="already a tagged union"):
        Registry("again", PartConfig, group="x")
