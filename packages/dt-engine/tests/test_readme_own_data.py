"""The root README's "Train on your own data" example runs as written: ``dt data check`` on its YAML,
and ``dt train`` + ``dt predict`` on it with a tiny model layered on top (``_base_``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from user_data_files import HERE, run_dt, write_dataset

README = HERE.parents[2] / "README.md"

TINY = """\
_base_: my_data.yaml
model:
  backbone:
    resnet: {{depth: 50, stem_out_channels: 16, res2_out_channels: 32, width_per_group: 8, norm: BN}}
    out_channels: 32
  roi_heads: {{batch_size_per_image: 64, box_head: {{fc_dim: 64}}}}
data:
  input: {{min_size_train: [64], max_size_train: 96, min_size_test: 64, max_size_test: 96}}
  loader: {{num_workers: 0}}
solver: {{ims_per_batch: 2, max_iter: 2, steps: [1], checkpoint_period: 1}}
test: {{eval_period: 0}}
"""


def readme_yaml() -> str:
    section = README.read_text().split("## Train on your own data", 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    (tmp_path / "my_data.yaml").write_text(readme_yaml())
    for split, count in (("train", 4), ("val", 2)):
        write_dataset(tmp_path, split, count, annotations="annotations")
    return tmp_path


def test_readme_config_passes_dt_data_check(user_folder):
    result = run_dt("data", "check", "--config", "my_data.yaml", cwd=user_folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 datasets, 0 problems" in result.stdout


@pytest.mark.slow
def test_readme_config_trains_and_predicts(user_folder):
    (user_folder / "tiny.yaml").write_text(TINY.format())
    result = run_dt("train", "--config", "tiny.yaml", cwd=user_folder)
    assert result.returncode == 0, result.stderr[-3000:]
    run = user_folder / "runs" / "my_model"
    argv = ["--config", str(run / "config.yaml"), "--weights", str(run / "model_final.pth")]
    result = run_dt("predict", *argv, "--input", "images/val", "--output", "predictions", cwd=user_folder)
    assert result.returncode == 0, result.stderr[-3000:]
    records = json.loads((user_folder / "predictions" / "coco_instances_results.json").read_text())
    assert all(r["category_id"] in (3, 7) for r in records)
    assert sorted(p.name for p in (user_folder / "predictions").glob("*.png")) == ["img0.png", "img1.png"]
