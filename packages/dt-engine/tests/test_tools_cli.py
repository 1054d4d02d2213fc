"""``dt env``, ``dt analyze`` and ``dt data show``: the tools detectron2 users reach for."""

from __future__ import annotations

import re

import pytest
import torch
from PIL import Image
from torch import nn
from user_data_files import run_dt, write_project

from dt_engine.analyze_command import analyze_model


class _Two(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 3)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(3, 2, bias=False))

    def forward(self, inputs: list[dict]) -> torch.Tensor:
        return self.head(self.first(inputs[0]["x"]))


def test_analyze_counts_params_flops_and_activations_per_module():
    stats = analyze_model(_Two(), [{"x": torch.zeros(5, 4)}], depth=1)
    assert stats["first"] == {"params": 15, "flops": 2 * 5 * 4 * 3, "activations": 15}
    assert stats["head"] == {"params": 6, "flops": 2 * 5 * 3 * 2, "activations": 15 + 10}
    assert stats[""] == {"params": 21, "flops": 180, "activations": 40}


def test_dt_env_lists_versions_cpu_and_dt_ops_build(tmp_path):
    result = run_dt("env", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in result.stdout.splitlines())
    assert rows["cpu capability"].strip() == torch.backends.cpu.get_cpu_capability()
    assert rows["torch"].strip() == torch.__version__ and "dt-ops" in rows
    assert "dt-ops build" in result.stdout and "torch threads" in result.stdout


@pytest.mark.slow
def test_dt_analyze_and_data_show_on_a_users_config(tmp_path):
    write_project(tmp_path)
    result = run_dt(
        "analyze", "--config", "cfg.yaml", "--height", "64", "--width", "96", "--depth", "1", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[2:]}
    assert {"(model)", "backbone", "proposal_generator", "roi_heads"} <= set(rows)
    assert rows["(model)"][1].endswith("M")  # FLOPs of one 96x64 image: millions
    for extra in ([], ["--augmented"]):
        out = tmp_path / ("aug" if extra else "plain")
        result = run_dt(
            "data", "show", "--config", "cfg.yaml", "--output", str(out), "--num", "2", *extra, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr[-2000:]
        drawn = sorted((out / "my_train").glob("*.png"))
        assert [p.name for p in drawn] == ["0000_img0.png", "0001_img1.png"]
        assert Image.open(drawn[0]).size == ((64, 48) if not extra else (160, 120))
    result = run_dt(
        "data", "show", "--config", "cfg.yaml", "--output", "x", "--dataset", "nope", cwd=tmp_path
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "dt data: error: unknown dataset 'nope'" in result.stderr
