"""The PanopticDeepLab model: losses, outputs, detectron2 state-dict names, configs, the workflow's
mapper, the README example."""

import json
import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch

import dt_panoptic_deeplab
from dt_config import ConfigError, structure
from dt_data.datasets import register_shapes
from dt_engine.config.experiment import load_experiment
from dt_engine.errors import InputError
from dt_models import ModelConfig, build_model
from dt_panoptic_deeplab.trainer import PanopticDeepLabTrainer

HERE = Path(__file__).parent
KEYS = json.loads((HERE / "data" / "detectron2_keys" / "panoptic_deeplab_R_52_os16.json").read_text())
SHAPES_CPU = dt_panoptic_deeplab.config_path("panoptic_deeplab_shapes_cpu.yaml")


def _tiny(separable: bool = False) -> dict:
    decoder = {
        "project_channels": [4, 8],
        "aspp_channels": 8,
        "aspp_dilations": [1, 2, 3],
        "convs_dim": 8,
        "use_depthwise_separable_conv": separable,
    }
    return {
        "name": "PanopticDeepLab",
        "backbone": {
            "name": "DeepLabResNet",
            "depth": 50,
            "stem_out_channels": 8,
            "res2_out_channels": 16,
            "width_per_group": 4,
            "out_features": ["res2", "res3", "res5"],
        },
        "sem_seg_head": {
            "name": "PanopticDeepLabSemSegHead",
            "num_classes": 4,
            "head_channels": 8,
            **decoder,
        },
        "ins_embed_head": {"head_channels": 4, **decoder},
        "thing_ids": [2, 3],
        "stuff_area": 1,
        "center_threshold": 0.0,
    }


def _training_input(h: int = 32, w: int = 40) -> dict:
    return {
        "image": torch.rand(3, h, w) * 255,
        "sem_seg": torch.randint(0, 4, (h, w)),
        "sem_seg_weights": torch.ones(h, w),
        "center": torch.rand(h, w),
        "center_weights": torch.ones(1, h, w),
        "offset": torch.randn(2, h, w),
        "offset_weights": torch.ones(1, h, w),
    }


@pytest.mark.parametrize("separable", [False, True])
def test_training_returns_the_three_losses(separable):
    model = build_model(_tiny(separable)).train()
    losses = model([_training_input(), _training_input(28, 44)])
    assert set(losses) == {"loss_sem_seg", "loss_center", "loss_offset"}
    sum(losses.values()).backward()
    assert model.ins_embed_head.offset_predictor.weight.grad.abs().sum() > 0


def test_zero_weights_give_zero_instance_losses():
    model = build_model(_tiny()).train()
    item = _training_input() | {
        "center_weights": torch.zeros(1, 32, 40),
        "offset_weights": torch.zeros(1, 32, 40),
    }
    losses = model([item])
    assert losses["loss_center"].item() == 0 and losses["loss_offset"].item() == 0


def test_inference_outputs_semantic_panoptic_and_instances():
    model = build_model(_tiny()).eval()
    with torch.no_grad():
        (out,) = model([{"image": torch.rand(3, 40, 56) * 255, "height": 80, "width": 112}])
    assert out["sem_seg"].shape == (4, 80, 112)
    labels, segments = out["panoptic_seg"]
    assert segments is None and labels.shape == (80, 112) and labels.dtype == torch.int64
    assert ((labels == -1) | (labels >= 0)).all()
    instances = out["instances"]
    assert set(instances.pred_classes.tolist()) <= {2, 3}
    assert len(instances) == len({v for v in labels.unique().tolist() if v >= 0 and v // 1000 in (2, 3)})


@pytest.mark.parametrize("variant", ["plain", "dsconv"])
def test_state_dict_names_and_shapes_are_detectron2s(variant):
    config = load_experiment(
        dt_panoptic_deeplab.config_path(
            "panoptic_deeplab_R_52_os16_mg124_poly_90k_bs32_crop_512_1024"
            + ("_dsconv" if variant == "dsconv" else "")
            + ".yaml"
        ),
        ["model.backbone.norm=BN", "model.sem_seg_head.norm=BN", "model.ins_embed_head.norm=BN"],
    ).model
    with torch.device("meta"):
        model = build_model(config, device="meta")
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(KEYS[variant]) ^ set(ours)) == []
    assert ours == KEYS[variant]


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"\$\.thing_ids: \[7\] are not classes of sem_seg_head"):
        structure(ModelConfig, _tiny() | {"thing_ids": [2, 7]})
    with pytest.raises(ConfigError, match=r"\$\.nms_kernel: must be odd"):
        structure(ModelConfig, _tiny() | {"nms_kernel": 4})
    with pytest.raises(ConfigError, match=r"\$\.ins_embed_head\.project_channels: needs 2 values"):
        structure(ModelConfig, _tiny() | {"ins_embed_head": {"project_channels": [4]}})
    with pytest.raises(ConfigError, match=r"ins_embed_head\.in_features.*not backbone outputs"):
        structure(
            ModelConfig,
            _tiny() | {"ins_embed_head": {"in_features": ["res2", "res4"], "project_channels": [4]}},
        )


def test_parts_are_declared_as_entry_points():
    assert "PanopticDeepLab" in {ep.name for ep in entry_points(group="dt_models.meta_arch")}
    assert "PanopticDeepLabTrainer" in {ep.name for ep in entry_points(group="dt_engine.workflow")}
    assert "PanopticDeepLabSemSegHead" in {ep.name for ep in entry_points(group="dt_deeplab.sem_seg_head")}


@pytest.mark.parametrize("name", dt_panoptic_deeplab.config_names())
def test_every_shipped_recipe_loads(name):
    cfg = load_experiment(dt_panoptic_deeplab.config_path(name))
    assert type(cfg.model).name == "PanopticDeepLab" and type(cfg.workflow).name == "PanopticDeepLabTrainer"


def test_recipes_match_detectron2s_settings():
    coco = load_experiment(
        dt_panoptic_deeplab.config_path(
            "panoptic_deeplab_R_52_os16_mg124_poly_200k_bs64_crop_640_640_coco_dsconv.yaml"
        )
    )
    city = load_experiment(
        dt_panoptic_deeplab.config_path("panoptic_deeplab_R_52_os16_mg124_poly_90k_bs32_crop_512_1024.yaml")
    )
    assert coco.model.thing_ids == tuple(range(80)) and coco.model.sem_seg_head.num_classes == 133
    assert (coco.model.nms_kernel, coco.model.stuff_area, coco.model.size_divisibility) == (41, 4096, 640)
    assert coco.workflow.gaussian_sigma == 8 and city.workflow.gaussian_sigma == 10
    assert (
        city.model.ins_embed_head.center_loss_weight == 200
        and city.model.ins_embed_head.offset_loss_weight == 0.01
    )
    assert (city.solver.base_lr, city.solver.max_iter, city.solver.ims_per_batch) == (0.001, 90000, 32)


def test_the_workflow_mapper_builds_targets_from_shapes(tmp_path):
    register_shapes("pdl_unit", num_train=2, num_val=1, image_size=64, root=tmp_path)
    cfg = load_experiment(
        SHAPES_CPU,
        ["data.datasets.train=[pdl_unit_train_panoptic]", "data.datasets.test=[pdl_unit_val_panoptic]"],
    )
    trainer = PanopticDeepLabTrainer(cfg)
    trainer.check()
    from dt_data import DatasetCatalog

    item = trainer.build_train_mapper()(DatasetCatalog.get("pdl_unit_train_panoptic")[0])
    assert item["image"].shape == (3, 128, 128) and item["offset"].shape == (2, 128, 128)
    assert item["center"].max() == pytest.approx(1.0) and item["center_weights"].shape == (1, 128, 128)
    assert set(item["sem_seg"].unique().tolist()) <= set(range(7))
    bad = load_experiment(
        SHAPES_CPU, ["data.datasets.train=[pdl_unit_train_panoptic]", "model.thing_ids=[0, 1]"]
    )
    with pytest.raises(InputError, match=r"model\.thing_ids \[0, 1\] differ"):
        PanopticDeepLabTrainer(bad).check()


def test_readme_example_runs():
    readme = (HERE.parent / "README.md").read_text()
    exec(
        compile(re.search(r"## Example\n\n```python\n(.*?)```", readme, re.S).group(1), "README.md", "exec"),
        {},
    )
