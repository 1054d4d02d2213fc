"""The packaged shapes configs of the one-stage, segmentation, panoptic and rotated families: each
loads, and (slow) a brief ``dt train`` on 16 shapes images, evaluated on the same images through the
evaluator their split declares, raises its metric."""

import importlib.resources
import json

import pytest

from dt_data import DatasetCatalog
from dt_data.datasets import register_shapes
from dt_engine.cli import main
from dt_engine.config.experiment import load_experiment

# config file -> (shapes dataset kind, metric recorded in metrics.jsonl)
FAMILIES = {
    "shapes_retinanet.yaml": ("", "bbox/AP"),
    "shapes_fcos.yaml": ("", "bbox/AP"),
    "shapes_semantic_fpn.yaml": ("_sem_seg", "sem_seg/mIoU"),
    "shapes_keypoint_rcnn.yaml": ("_keypoints", "keypoints/AP"),
    "shapes_panoptic_fpn.yaml": ("_panoptic_separated", "panoptic_seg/PQ"),
    "shapes_rotated_faster_rcnn.yaml": ("_rotated", "bbox/AP"),
}
SUBSET = "families_shapes"


def _config_path(name: str):
    return importlib.resources.as_file(importlib.resources.files("dt_engine") / "configs" / name)


def _register_subset(kind: str, count: int) -> str:
    """``families_shapes_train<kind>``: a shapes split of ``count`` images, the first ``count`` of
    ``shapes_train<kind>`` (an image depends on its index only) with files of its own, so that
    evaluators reading whole annotation files (the panoptic json) see just these images."""
    if f"{SUBSET}_train" not in DatasetCatalog:
        register_shapes(SUBSET, num_train=count, num_val=1)
    return f"{SUBSET}_train{kind}"


@pytest.mark.parametrize("config", sorted(FAMILIES))
def test_packaged_config_loads(config):
    cfg = load_experiment(config)  # by its packaged name, as dt train --config takes it
    with _config_path(config) as path:
        assert cfg == load_experiment(path)
    assert cfg.data.datasets.train[0].startswith("shapes_train")
    assert cfg.test.best_metric == FAMILIES[config][1]


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(FAMILIES))
def test_brief_training_raises_the_metric(config, tmp_path):
    kind, metric = FAMILIES[config]
    subset = _register_subset(kind, 16)
    overrides = [
        f"output_dir={tmp_path}", f"data.datasets.train=[{subset}]", f"data.datasets.test=[{subset}]",
        "data.loader.num_workers=0", "solver.ims_per_batch=4", "solver.max_iter=150",
        "solver.warmup_iters=20", "solver.base_lr=0.002", "test.eval_period=50",
    ]  # fmt: skip
    with _config_path(config) as path:
        assert main(["train", "--config", str(path), *overrides]) == 0
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    values = [d[metric] for d in lines if metric in d]
    print(f"{config}: {metric} at iterations 50/100/150: {[round(v, 2) for v in values]}")
    assert len(values) == 3, values
    assert values[-1] > values[0] and values[-1] > 0, values
