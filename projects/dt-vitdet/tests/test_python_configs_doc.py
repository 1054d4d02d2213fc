"""docs/python_configs.md's worked example runs and prints what it says: its first Python block is the
config file, its second loads it next to the YAML recipe."""

import contextlib
import io
import re
from pathlib import Path

import pytest

import dt_vitdet
from dt_config import ConfigError
from dt_engine.config.experiment import load_experiment

DOC = Path(__file__).resolve().parents[3] / "docs" / "python_configs.md"


def test_worked_example_runs_and_prints_what_it_says(tmp_path, monkeypatch):
    config_file, script = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    (tmp_path / "lvis_vitdet_b.py").write_text(config_file)
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(script, str(DOC), "exec"), {})
    promised = [line[2:] for line in script.splitlines() if line.startswith("# ")]
    assert printed.getvalue().splitlines() == promised


def test_the_error_the_doc_quotes():
    path = dt_vitdet.get_config_file("COCO/cascade_mask_rcnn_swin_b_in21k_50ep.yaml")
    with pytest.raises(ConfigError) as err:
        load_experiment(path, ["model.backbone.swin.dephts=[2, 2, 6, 2]"])
    assert "$.model.backbone.swin.dephts: unknown key (did you mean 'depths'?)" in str(err.value)
    assert "$.model.backbone.swin.dephts: unknown key (did you mean 'depths'?)" in DOC.read_text()
