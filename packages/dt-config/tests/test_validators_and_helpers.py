import subprocess
import sys

import attrs
import pytest

from dt_config import ConfigError, did_you_mean, get_rank, get_world_size, is_main_process, structure
from dt_config import validators as check


@attrs.define(frozen=True, kw_only=True)
class Sample:
    lr: float = attrs.field(default=0.1, validator=check.greater_than(0.0))
    count: int = attrs.field(default=1, validator=check.at_least(1))
    ratio: float = attrs.field(default=0.5, validator=check.between(0.0, 1.0))
    mode: str = attrs.field(default="sum", validator=check.one_of(("sum", "avg")))
    names: tuple[str, ...] = attrs.field(default=("a",), validator=[check.non_empty, check.subset_of("abc")])
    pair: tuple[int, ...] = attrs.field(default=(1, 2), validator=check.length(2))
    limit: int | None = attrs.field(default=None, validator=check.optional(check.below(10)))


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({"lr": 0.0}, "$.lr: must be > 0.0, got 0.0"),
        ({"count": 0}, "$.count: must be >= 1, got 0"),
        ({"ratio": 2.0}, "$.ratio: must be in [0.0, 1.0], got 2.0"),
        ({"mode": "summ"}, "$.mode: must be one of ['sum', 'avg'], got 'summ' (did you mean 'sum'?)"),
        ({"names": []}, "$.names: must not be empty"),
        ({"names": ["z"]}, "$.names: ['z'] not among ['a', 'b', 'c']"),
        ({"pair": [1]}, "$.pair: must have 2 values, got 1"),
        ({"limit": 10}, "$.limit: must be < 10, got 10"),
    ],
)
def test_each_validator_reports_at_the_field_path(data, line):
    with pytest.raises(ConfigError) as err:
        structure(Sample, data)
    assert err.value.problems == [line]


def test_did_you_mean():
    assert did_you_mean("num_clases", ["num_classes", "in_features"]) == " (did you mean 'num_classes'?)"
    assert did_you_mean("zzz", ["num_classes"]) == ""


def test_single_process_helpers_need_no_torch():
    assert (get_rank(), get_world_size(), is_main_process()) == (0, 1, True)
    code = "import sys, dt_config; assert 'torch' not in sys.modules and 'dt_ops' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@attrs.define(frozen=True, kw_only=True)
class Named:
    parts: dict[str, Sample] = attrs.Factory(dict)
    values: list[int] = attrs.Factory(list)


def test_mapping_keys_and_list_items_in_paths():
    with pytest.raises(ConfigError) as err:
        structure(Named, {"parts": {"mask": {"lr": 0.0}, "two words": {"cnt": 1}}, "values": [1, "x"]})
    assert err.value.problems[0] == "$.parts.mask.lr: must be > 0.0, got 0.0"
    assert err.value.problems[1].startswith("$.parts['two words'].cnt: unknown key (did you mean 'count'?)")
    assert err.value.problems[2] == "$.values[1]: expected int, got str 'x'"
    with pytest.raises(ConfigError) as err:
        structure(Named, {"parts": ["mask"]})
    assert err.value.problems == ["$.parts: expected a mapping, got list ['mask']"]
