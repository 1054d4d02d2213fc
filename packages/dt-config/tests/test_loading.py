import textwrap
from typing import Literal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dt_config import ConfigError, ConfigProblem, structure, unstructure
from dt_config import validators as check
from dt_config.loading import apply_overrides, dump_yaml, load_config, merge_trees, parse_override


@attrs.define(frozen=True, kw_only=True)
class Switch:
    enabled: bool = False
    precision: Literal["auto", "float16", "bfloat16"] = "auto"


@attrs.define(frozen=True, kw_only=True)
class SolverConfig:
    """A solver-like section: scalars, tuples, Literal choices, nested sections, a cross-field rule."""

    optimizer: Literal["SGD", "AdamW"] = "SGD"
    base_lr: float = attrs.field(default=0.02, validator=check.greater_than(0.0))
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay_bias: float | None = None
    steps: tuple[int, ...] = (60, 80)
    max_iter: int = attrs.field(default=90, validator=check.greater_than(0))
    ims_per_batch: int = 16
    accumulate_steps: int = 1
    clip_gradients: Switch = attrs.Factory(Switch)
    amp: Switch = attrs.Factory(Switch)

    def __attrs_post_init__(self) -> None:
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ConfigProblem(f"must increase strictly, got {list(self.steps)}", key="steps")
        if self.ims_per_batch % self.accumulate_steps:
            raise ConfigProblem(
                f"must be divisible by accumulate_steps ({self.accumulate_steps})", key="ims_per_batch"
            )


@attrs.define(frozen=True, kw_only=True)
class EvalConfig:
    eval_period: int = attrs.field(default=0, validator=check.at_least(0))


@attrs.define(frozen=True, kw_only=True)
class Mini:
    """An experiment-like config made of plain sections."""

    solver: SolverConfig = attrs.Factory(SolverConfig)
    test: EvalConfig = attrs.Factory(EvalConfig)
    output_dir: str = "./output"
    seed: int = -1


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def problems(excinfo):
    return excinfo.value.problems


def test_defaults_and_round_trip_is_identical(tmp_path):
    cfg = load_config(None, Mini)
    assert cfg == Mini()
    text = dump_yaml(cfg)
    again = load_config(write(tmp_path / "c.yaml", text), Mini)
    assert again == cfg and dump_yaml(again) == text


def test_base_inheritance_relative_paths_and_lists(tmp_path):
    write(tmp_path / "bases" / "a.yaml", "solver: {base_lr: 0.1, steps: [10, 20], max_iter: 30}\nseed: 1\n")
    write(tmp_path / "bases" / "b.yaml", "_base_: a.yaml\nsolver: {momentum: 0.5}\n")
    write(tmp_path / "c.yaml", "test: {eval_period: 7}\n")
    child_text = "_base_: [../bases/b.yaml, ../c.yaml]\nsolver: {steps: [15]}\n"
    child = write(tmp_path / "exp" / "child.yaml", child_text)
    cfg = load_config(child, Mini)
    assert cfg.solver.base_lr == 0.1 and cfg.solver.momentum == 0.5 and cfg.solver.max_iter == 30
    assert cfg.solver.steps == (15,)  # lists replace, they do not merge
    assert cfg.test.eval_period == 7 and cfg.seed == 1


def test_base_errors(tmp_path):
    write(tmp_path / "x.yaml", "_base_: y.yaml\n")
    write(tmp_path / "y.yaml", "_base_: x.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "x.yaml", Mini)
    write(tmp_path / "m.yaml", "_base_: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"missing.yaml: config file not found"):
        load_config(tmp_path / "m.yaml", Mini)
    write(tmp_path / "n.yaml", "_base_: 3\n")
    with pytest.raises(ConfigError, match="_base_ must be"):
        load_config(tmp_path / "n.yaml", Mini)
    write(tmp_path / "bad.yaml", "solver:\n  base_lr: [1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+:\d+: invalid YAML"):
        load_config(tmp_path / "bad.yaml", Mini)
    write(tmp_path / "list.yaml", "- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_config(tmp_path / "list.yaml", Mini)


def test_yaml_is_loaded_safely(tmp_path):
    write(tmp_path / "evil.yaml", "seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(tmp_path / "evil.yaml", Mini)


def test_every_problem_reported_once_per_line_with_path_expected_given_and_hint(tmp_path):
    path = write(
        tmp_path / "c.yaml",
        """
        solver:
          base_lrr: 0.1
          max_iter: "1000"
          optimizer: Adam
          amp: {enabled: 1}
        test: {eval_perod: 5}
        seed: 1.5
        """,
    )
    with pytest.raises(ConfigError) as err:
        load_config(path, Mini)
    expected = [
        "$.solver.base_lrr: unknown key (did you mean 'base_lr'?)",
        "$.solver.max_iter: expected int, got str '1000'",
        "$.solver.optimizer: expected one of 'SGD', 'AdamW', got str 'Adam' (did you mean 'AdamW'?)",
        "$.solver.amp.enabled: expected bool, got int 1",
        "$.test.eval_perod: unknown key (did you mean 'eval_period'?)",
        "$.seed: expected int, got float 1.5",
    ]
    lines = problems(err)
    assert len(lines) == len(expected)
    for start in expected:
        assert sum(line.startswith(start) for line in lines) == 1, start


def test_cross_field_and_validator_problems_sit_at_the_field_path():
    with pytest.raises(ConfigError) as err:
        load_config(None, Mini, ["solver.steps=[50, 10]"])
    assert problems(err) == ["$.solver.steps: must increase strictly, got [50, 10]"]
    with pytest.raises(ConfigError) as err:
        load_config(None, Mini, ["solver.accumulate_steps=3"])
    assert problems(err) == ["$.solver.ims_per_batch: must be divisible by accumulate_steps (3)"]
    with pytest.raises(ConfigError) as err:
        load_config(None, Mini, ["solver.base_lr=0", "test.eval_period=-1"])
    assert problems(err) == [
        "$.solver.base_lr: must be > 0.0, got 0.0",
        "$.test.eval_period: must be >= 0, got -1",
    ]


def test_dotted_overrides_with_lists_tuples_and_nesting():
    cfg = load_config(
        None,
        Mini,
        [
            "solver.max_iter=100",
            "solver.steps=(40, 80)",
            "solver.betas=[0.8, 0.9]",
            "solver.clip_gradients.enabled=true",
            "solver.weight_decay_bias=null",
            "output_dir=/tmp/run 1",
            "solver.amp={enabled: true, precision: bfloat16}",
        ],
    )
    assert cfg.solver.steps == (40, 80) and cfg.solver.betas == (0.8, 0.9)
    assert cfg.solver.clip_gradients.enabled and cfg.solver.amp.precision == "bfloat16"
    assert cfg.output_dir == "/tmp/run 1" and cfg.solver.weight_decay_bias is None
    with pytest.raises(ConfigError) as err:
        apply_overrides({"solver": {"base_lr": 0.02}}, ["nokey", "solver.base_lr.x=1", "solver.max_iter=5"])
    assert problems(err) == [
        "override 'nokey': expected key.path=value, e.g. solver.base_lr=0.01",
        "override 'solver.base_lr.x=1': $.solver.base_lr is 0.02, not a mapping",
    ]
    data = apply_overrides({}, ["solver.max_itr=5", "test.eval_period=soon"])
    with pytest.raises(ConfigError) as err:
        structure(Mini, data)
    lines = problems(err)
    assert len(lines) == 2
    assert lines[0].startswith("$.solver.max_itr: unknown key (did you mean 'max_iter'?)")
    assert lines[1] == "$.test.eval_period: expected int, got str 'soon'"
    with pytest.raises(ConfigError) as err:  # the same through load_config, on top of the defaults
        load_config(None, Mini, ["solver.max_itr=5", "solver.base_lr.x=1"])
    lines = problems(err)
    assert lines[0] == "override 'solver.base_lr.x=1': $.solver.base_lr is 0.02, not a mapping"
    assert lines[1].startswith("$.solver.max_itr: unknown key") and len(lines) == 2


def test_parse_override_and_merge():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=1e-4") == (["a"], 1e-4)  # YAML 1.1 would read a string
    assert parse_override("a=-2.5E+3") == (["a"], -2500.0)
    assert parse_override("a=") == (["a"], "")
    assert parse_override("a=(1, 2)") == (["a"], [1, 2])
    assert parse_override(" a . b = x=y ") == (["a", "b"], "x=y")
    with pytest.raises(ConfigError):
        parse_override("a..b=1")
    base = {"m": {"name": "A", "x": 1, "y": {"z": 1}}, "k": [1, 2]}
    assert merge_trees(base, {"m": {"y": {"w": 2}}, "k": [3]}) == {
        "m": {"name": "A", "x": 1, "y": {"z": 1, "w": 2}},
        "k": [3],
    }
    # another member of a tagged union replaces instead of merging
    assert merge_trees(base, {"m": {"name": "B", "q": 1}})["m"] == {"name": "B", "q": 1}
    assert base["m"]["y"] == {"z": 1}


def test_python_config_files(tmp_path):
    good = write(
        tmp_path / "exp.py",
        """
        from test_loading import Mini, SolverConfig

        config = Mini(solver=SolverConfig(base_lr=0.5), seed=3)
        """,
    )
    cfg = load_config(good, Mini, ["seed=4"])
    assert cfg.solver.base_lr == 0.5 and cfg.seed == 4
    fn_text = "from test_loading import Mini\ndef get_config():\n    return Mini(seed=9)\n"
    fn = write(tmp_path / "fn.py", fn_text)
    assert load_config(fn, Mini).seed == 9
    write(tmp_path / "none.py", "x = 1\n")
    with pytest.raises(ConfigError, match="must define `config` or `get_config\\(\\)`"):
        load_config(tmp_path / "none.py", Mini)
    write(tmp_path / "wrong.py", "config = {'seed': 1}\n")
    with pytest.raises(ConfigError, match="expected a Mini config, got dict"):
        load_config(tmp_path / "wrong.py", Mini)
    write(tmp_path / "boom.py", "raise RuntimeError('nope')\n")
    with pytest.raises(ConfigError, match="running the config file failed: RuntimeError: nope"):
        load_config(tmp_path / "boom.py", Mini)


def test_upgrade_hook_runs_per_file(tmp_path):
    def upgrade(data, source):
        if data.get("version", 2) == 1:
            data = dict(data)
            data["seed"] = data.pop("random_seed")
        data.pop("version", None)
        return data

    write(tmp_path / "old.yaml", "version: 1\nrandom_seed: 5\n")
    write(tmp_path / "new.yaml", "_base_: old.yaml\nversion: 2\noutput_dir: out\n")
    cfg = load_config(tmp_path / "new.yaml", Mini, upgrade=upgrade)
    assert cfg.seed == 5 and cfg.output_dir == "out"


@settings(max_examples=25, deadline=None)
@given(
    base_lr=st.floats(1e-6, 10.0),
    steps=st.lists(st.integers(1, 1000), max_size=4, unique=True).map(sorted),
    seed=st.integers(-1, 2**31),
    clip=st.booleans(),
    out=st.text(min_size=1, max_size=12),
)
def test_yaml_round_trip_property(tmp_path_factory, base_lr, steps, seed, clip, out):
    cfg = load_config(
        None,
        Mini,
        [
            f"solver.base_lr={base_lr!r}",
            f"solver.steps={steps}",
            f"seed={seed}",
            f"solver.clip_gradients.enabled={clip}",
        ],
    )
    cfg = attrs.evolve(cfg, output_dir=out)
    text = dump_yaml(cfg)
    path = tmp_path_factory.mktemp("rt") / "c.yaml"
    path.write_text(text)
    again = load_config(path, Mini)
    assert again == cfg
    assert dump_yaml(again) == text
    assert unstructure(again) == unstructure(cfg)


def test_strings_that_read_as_exponent_floats_are_quoted_when_saved(tmp_path):
    cfg = attrs.evolve(load_config(None, Mini), output_dir="0e0")
    text = dump_yaml(cfg)
    assert "output_dir: '0e0'" in text
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert load_config(path, Mini).output_dir == "0e0"
