"""The narrow shapes recipes build, train two iterations with ``dt train`` and run inference."""

import json

import pytest
from shapes_subsets import register_tiny_shapes

import dt_vitdet
from dt_engine.cli import main
from dt_engine.config.experiment import load_experiment

FAST = [
    "data.datasets.train=[vitdet_shapes_train4]",
    "data.datasets.test=[vitdet_shapes_val2]",
    "solver.max_iter=2",
    "solver.steps=[1]",
    "solver.warmup_iters=1",
    "solver.ims_per_batch=2",
    "workflow.image_size=64",
    "model.backbone.square_pad=64",
    "model.proposal_generator.post_nms_topk_train=100",
    "model.proposal_generator.post_nms_topk_test=50",
]


@pytest.mark.parametrize(
    "name",
    [
        "shapes/mask_rcnn_vitdet_narrow.yaml",
        "shapes/cascade_mask_rcnn_vitdet_narrow.yaml",
        "shapes/cascade_mask_rcnn_mvitv2_narrow.yaml",
    ],
)
def test_narrow_recipe_trains_two_iterations_and_evaluates(name, tmp_path, capsys):
    register_tiny_shapes()
    out = tmp_path / "run"
    assert main(["train", "--config", dt_vitdet.get_config_file(name), f"output_dir={out}", *FAST]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = next(r for r in records if "loss_mask" in r)
    box_losses = [f"loss_{kind}_stage{k}" for kind in ("cls", "box_reg") for k in range(3)]
    expected = box_losses if "cascade" in name else ["loss_cls", "loss_box_reg"]
    assert {*expected, "loss_rpn_cls", "loss_rpn_loc", "loss_mask"} <= set(losses)
    assert any("bbox/AP" in r and "segm/AP" in r for r in records)  # inference + evaluation after training
    saved = load_experiment(out / "config.yaml")
    assert saved.workflow.name == "LSJTrainer"
    assert saved.model.backbone.name == ("MViTFPN" if "mvitv2" in name else "ViTSimpleFeaturePyramid")
    assert (out / "model_final.pth").is_file()
