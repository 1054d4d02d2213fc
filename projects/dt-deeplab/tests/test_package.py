"""The package face: entry points, shipped recipes, the workflow's checks, the README example."""

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch

import dt_deeplab
from dt_config import ConfigError
from dt_deeplab.lr_scheduler import WarmupPolyLRConfig
from dt_deeplab.trainer import DeepLabTrainer, semantic_train_augmentations
from dt_engine.config.experiment import load_experiment

README = Path(__file__).parents[1] / "README.md"


def test_parts_are_declared_as_entry_points():
    groups = {
        g: {ep.name for ep in entry_points(group=g)}
        for g in ("dt_models.backbone", "dt_models.meta_arch", "dt_engine.workflow", "dt_engine.lr_scheduler")
    }
    assert "DeepLabResNet" in groups["dt_models.backbone"]
    assert "DeepLabSegmentor" in groups["dt_models.meta_arch"]
    assert "DeepLabTrainer" in groups["dt_engine.workflow"]
    assert "WarmupPolyLR" in groups["dt_engine.lr_scheduler"]


@pytest.mark.parametrize("name", dt_deeplab.config_names())
def test_every_shipped_recipe_loads(name):
    cfg = load_experiment(dt_deeplab.config_path(name))
    assert type(cfg.model).name == "DeepLabSegmentor" and type(cfg.workflow).name == "DeepLabTrainer"
    assert type(cfg.solver.lr_scheduler).name == "WarmupPolyLR"


def test_recipes_match_detectron2s_settings():
    v3 = load_experiment(dt_deeplab.config_path("deeplab_v3_R_103_os16_mg124_poly_90k_bs16.yaml"))
    plus = load_experiment(dt_deeplab.config_path("deeplab_v3_plus_R_103_os16_mg124_poly_90k_bs16.yaml"))
    os8 = load_experiment(dt_deeplab.config_path("deeplab_v3_plus_R_103_os8.yaml"))
    assert v3.model.backbone.depth == 101 and v3.model.backbone.stem_type == "deeplab"
    assert v3.model.sem_seg_head.common_stride == 16 and plus.model.sem_seg_head.common_stride == 4
    assert plus.model.sem_seg_head.project_channels == (48,)
    assert (v3.solver.base_lr, v3.solver.max_iter, v3.solver.ims_per_batch) == (0.01, 90000, 16)
    assert v3.solver.lr_scheduler == WarmupPolyLRConfig(power=0.9, constant_ending=0.0)
    assert os8.model.backbone.output_stride == 8 and plus.model.backbone.output_stride == 16


def test_unknown_recipe_names_the_known_ones():
    with pytest.raises(KeyError, match="deeplab_v3_plus_shapes_cpu.yaml"):
        dt_deeplab.config_path("deeplab.yaml")


def test_a_typo_in_a_recipe_override_is_reported_at_its_path():
    path = dt_deeplab.config_path("deeplab_v3_plus_shapes_cpu.yaml")
    with pytest.raises(ConfigError, match=r"model\.sem_seg_head\.convs_dimm.*did you mean 'convs_dim'"):
        load_experiment(path, ["model.sem_seg_head.convs_dimm=8"])


def test_the_workflow_trains_with_the_configured_poly_schedule_and_category_area_crop():
    cfg = load_experiment(dt_deeplab.config_path("deeplab_v3_plus_shapes_cpu.yaml"))
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = DeepLabTrainer(cfg).build_lr_scheduler(optimizer)
    for _ in range(150):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx((1 - 150 / cfg.solver.max_iter) ** 0.9)
    names = [type(a).__name__ for a in semantic_train_augmentations(cfg)]
    assert names == ["ResizeShortestEdge", "RandomCrop_CategoryAreaConstraint", "RandomFlip"]


def test_readme_example_runs():
    code = re.search(r"## Example\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    exec(compile(code, str(README), "exec"), {})
