"""A package outside dt plugs a backbone, an ROI branch and a meta-architecture into dt-models through
entry points only; `dt train` loads a config using them, trains two iterations, and reports a typo in
any of their fields at its own path; the subcommand it adds to `dt` is listed and runs."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parent / "plugin"

CONFIG = """
model:
  name: FeatureScaledRCNN
  feature_scale: 0.5
  backbone: {name: TinyConvBackbone, width: 16, levels: 2}
  proposal_generator:
    name: RPN
    in_features: [p3, p4]
    anchor_generator: {sizes: [[16, 32], [64, 128]]}
    post_nms_topk_train: 100
  roi_heads:
    name: StandardROIHeads
    num_classes: 5
    in_features: [p3, p4]
    batch_size_per_image: 32
    box_head: {fc_dim: 32}
    branches:
      center: {name: BoxCenterBranch, hidden_dim: 8, loss_weight: 2.0}
      mask: {name: MaskBranch, head: {conv_dim: 8, num_conv: 1}}
data:
  datasets: {train: [shapes_train], test: []}
  input: {min_size_train: [128], max_size_train: 160, min_size_test: 128, max_size_test: 160}
  loader: {num_workers: 0}
solver: {base_lr: 0.001, max_iter: 2, steps: [2], warmup_iters: 1, ims_per_batch: 2, checkpoint_period: 2}
seed: 0
"""


def install_by_entry_points(site: Path) -> None:
    """Install the plugin as pip would for an importlib.metadata reader: its modules plus a
    ``.dist-info`` whose ``entry_points.txt`` comes from the plugin's pyproject."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    shutil.copytree(PLUGIN / "src" / "dt_plugin_example", site / "dt_plugin_example")
    info = site / f"dt_plugin_example-{project['version']}.dist-info"
    info.mkdir()
    info.joinpath("METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = []
    for group, entries in project["entry-points"].items():
        lines += [f"[{group}]", *(f"{name} = {target}" for name, target in entries.items()), ""]
    info.joinpath("entry_points.txt").write_text("\n".join(lines))


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    install_by_entry_points(site)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def dt(env, *args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "dt_engine.cli", *args], env=env, cwd=cwd, capture_output=True, text=True
    )


def test_plugin_parts_load_build_and_train(plugin_env, tmp_path):
    (tmp_path / "plugin.yaml").write_text(CONFIG)
    run = dt(plugin_env, "train", "--config", "plugin.yaml", "output_dir=run", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert '"loss_center"' in metrics and '"loss_mask"' in metrics
    assert (tmp_path / "run" / "model_final.pth").is_file()
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "name: FeatureScaledRCNN" in saved and "name: BoxCenterBranch" in saved


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "model.roi_heads.branches.center.hidden_dimm=4",
            "$.model.roi_heads.branches.center.hidden_dimm: unknown key (did you mean 'hidden_dim'?)",
        ),
        ("model.backbone.widht=4", "$.model.backbone.widht: unknown key (did you mean 'width'?)"),
        ("model.feature_scal=2", "$.model.feature_scal: unknown key (did you mean 'feature_scale'?)"),
        ("model.feature_scale=0", "$.model.feature_scale: must be > 0.0, got 0"),
        ("model.backbone.levels=9", "$.model.backbone.levels: must be in [1, 4], got 9"),
    ],
)
def test_typos_in_plugin_fields_are_one_line_at_their_path(plugin_env, tmp_path, override, line):
    (tmp_path / "plugin.yaml").write_text(CONFIG)
    run = dt(plugin_env, "train", "--config", "plugin.yaml", "output_dir=run", override, cwd=tmp_path)
    assert run.returncode == 2
    assert line in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "run").exists()


def test_plugin_command_is_listed_and_runs(plugin_env, tmp_path):
    assert "backbone-shapes" in dt(plugin_env, "--help", cwd=tmp_path).stdout
    run = dt(plugin_env, "backbone-shapes", "--size", "64", "--width", "4", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout) == {"p3": [1, 4, 8, 8], "p4": [1, 4, 4, 4]}


def test_plugin_command_reports_bad_input_in_one_line(plugin_env, tmp_path):
    run = dt(plugin_env, "backbone-shapes", "--size", "2", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr == "dt backbone-shapes: error: --size must be at least 8 pixels, got 2\n"
