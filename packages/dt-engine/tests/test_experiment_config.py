import pytest

from dt_config import ConfigError
from dt_engine.config import experiment
from dt_engine.config.experiment import ExperimentConfig, dump_config, load_experiment, upgrade_data


def test_defaults_round_trip_yaml_object_yaml(tmp_path):
    cfg = load_experiment(None)
    assert cfg == ExperimentConfig()
    text = dump_config(cfg)
    assert text.startswith("version: 1\nmodel:\n  name: GeneralizedRCNN\n")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    again = load_experiment(path)
    assert again == cfg and dump_config(again) == text


def test_model_and_data_overrides_and_errors(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("model:\n  roi_heads: {num_classes: 10}\nsolver: {max_iter: 100, steps: [80]}\n")
    child = tmp_path / "child.yaml"
    child.write_text("_base_: base.yaml\ndata: {datasets: {train: [shapes_train]}}\n")
    cfg = load_experiment(child, ["model.roi_heads.num_classes=3", "data.input.min_size_train=(320, 352)"])
    assert cfg.model.roi_heads.num_classes == 3 and cfg.solver.max_iter == 100
    assert cfg.data.input.min_size_train == (320, 352)
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_config(cfg))
    assert load_experiment(path) == cfg
    with pytest.raises(ConfigError) as err:
        load_experiment(
            child, ["model.roi_heads.num_clases=3", "solver.max_iter=ten", "data.loader.num_workers=-1"]
        )
    lines = err.value.problems
    assert len(lines) == 3
    assert any(
        line.startswith("$.model.roi_heads.num_clases: unknown key (did you mean 'num_classes'?)")
        for line in lines
    )
    assert "$.solver.max_iter: expected int, got str 'ten'" in lines
    assert "$.data.loader.num_workers: must be >= 0, got -1" in lines


def test_python_config_file(tmp_path):
    path = tmp_path / "exp.py"
    path.write_text(
        "from dt_engine.config.experiment import ExperimentConfig\n"
        "from dt_engine.config.solver import SolverConfig\n"
        "config = ExperimentConfig(solver=SolverConfig(base_lr=0.5, max_iter=10, steps=()), seed=7)\n"
    )
    cfg = load_experiment(path, ["model.roi_heads.num_classes=2"])
    assert cfg.solver.base_lr == 0.5 and cfg.seed == 7 and cfg.model.roi_heads.num_classes == 2


def test_versions_and_upgrades(monkeypatch):
    with pytest.raises(ConfigError, match=r"\$.version: 9 is newer"):
        upgrade_data({"version": 9})
    with pytest.raises(ConfigError, match=r"\$.version: expected int"):
        upgrade_data({"version": "1"})
    monkeypatch.setattr(experiment, "CURRENT_VERSION", 2)
    rename = lambda d: {**{k: v for k, v in d.items() if k != "random_seed"}, "seed": d["random_seed"]}  # noqa: E731
    monkeypatch.setitem(experiment.UPGRADES, 1, rename)
    assert upgrade_data({"version": 1, "random_seed": 5}) == {"version": 2, "seed": 5}
    assert upgrade_data({"seed": 3}) == {"seed": 3}  # no version: the current one
