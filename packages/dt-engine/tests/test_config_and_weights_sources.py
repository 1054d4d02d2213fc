"""The entry-point seams that let a package (dt-zoo) answer `--config NAME` and `--weights prefix:NAME`."""

import pytest
import torch

from dt_config import ConfigError
from dt_engine import weights as weights_module
from dt_engine.config import experiment
from dt_engine.errors import InputError


class _Point:
    """Stands in for an ``importlib.metadata.EntryPoint`` of a package that is not installed."""

    def __init__(self, name, obj):
        self.name, self._obj = name, obj

    def load(self):
        return self._obj


def _serve(monkeypatch, module, wanted_group, points):
    """``module.entry_points(group=...)`` answers ``points`` for ``wanted_group``, nothing for others."""

    def entry_points(*, group):
        return points if group == wanted_group else []

    monkeypatch.setattr(module, "entry_points", entry_points)


def test_a_config_source_answers_names_that_are_not_files(tmp_path, monkeypatch):
    packaged = tmp_path / "pkg" / "Zoo" / "tiny.yaml"
    packaged.parent.mkdir(parents=True)
    packaged.write_text("solver: {max_iter: 7, steps: [5]}\n")
    asked = []

    def source(name):
        asked.append(name)
        return packaged if name == "Zoo/tiny" else None

    _serve(monkeypatch, experiment, experiment.CONFIG_SOURCE_GROUP, [_Point("zoo", source)])
    monkeypatch.chdir(tmp_path)
    assert experiment.load_experiment("Zoo/tiny", ["seed=3"]).solver.max_iter == 7
    with pytest.raises(ConfigError, match="other.yaml: config file not found"):
        experiment.load_experiment("other.yaml")  # no source knows it: the missing-file error
    own = tmp_path / "Zoo" / "tiny"
    own.parent.mkdir()
    own.write_text("solver: {max_iter: 9, steps: [5]}\n")
    assert experiment.load_experiment("Zoo/tiny").solver.max_iter == 9  # an existing file wins
    assert asked == ["Zoo/tiny", "other.yaml"]


def test_without_sources_paths_behave_as_before(tmp_path, monkeypatch):
    _serve(monkeypatch, experiment, experiment.CONFIG_SOURCE_GROUP, [])
    assert experiment.resolve_config_path(None) is None
    assert experiment.resolve_config_path("missing.yaml") == "missing.yaml"


def test_a_weights_source_answers_its_prefix(tmp_path, monkeypatch):
    model = torch.nn.Linear(2, 1)
    file = tmp_path / "w.pth"
    torch.save({"model": model.state_dict()}, file)

    def zoo(name):
        if name != "Tiny/linear":
            raise ValueError(f"unknown zoo model {name!r}")
        return file

    _serve(monkeypatch, weights_module, weights_module.WEIGHTS_SOURCE_GROUP, [_Point("zoo", zoo)])
    assert weights_module.resolve_weights("zoo:Tiny/linear") == str(file)
    target = torch.nn.Linear(2, 1)
    weights_module.load_model_weights(target, "zoo:Tiny/linear")
    assert torch.equal(target.weight, model.weight)
    with pytest.raises(InputError, match="^weights zoo:Nope: unknown zoo model 'Nope'$"):
        weights_module.resolve_weights("zoo:Nope")
    with pytest.raises(InputError, match="no weights source 'hub' \\(installed: zoo:\\)"):
        weights_module.resolve_weights("hub:Tiny/linear")
    for plain in (str(file), "output/model_final.pth", "https://example.com/w.pth"):
        assert weights_module.resolve_weights(plain) == plain  # files and URLs are not source names
    odd = tmp_path / "run:1.pth"
    odd.write_bytes(b"")
    assert weights_module.resolve_weights(str(odd)) == str(odd)  # an existing file with a colon
