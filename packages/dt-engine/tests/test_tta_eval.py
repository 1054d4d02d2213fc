"""Test-time augmentation from the config (``test.aug``): dt-data's shortest-edge resize, the checks,
and ``dt train``/``dt eval`` reporting ``<task>_TTA`` on tiny subsets of the shapes dataset."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_tiny_datasets import register_tiny_datasets
from PIL import Image

from dt_config import structure
from dt_engine.cli import main
from dt_engine.config.experiment import ExperimentConfig
from dt_engine.defaults import DefaultTrainer
from dt_engine.errors import InputError
from dt_engine.evaluation import resize_shortest_edge

CONFIG = str(Path(__file__).parent / "engine_tiny_rcnn.yaml")
TTA = ["test.aug.enabled=true", "test.aug.min_sizes=[96,128]", "test.aug.max_size=150"]
QUICK = ["solver.max_iter=2", "test.eval_period=0", "test.val_loss_period=0", "test.precise_bn.enabled=false"]


def test_resize_caps_the_long_edge_at_max_size_and_matches_pil():
    image = torch.randint(0, 256, (3, 100, 300), dtype=torch.uint8)
    capped = resize_shortest_edge(image, 200, 400)  # 200 x 600 would exceed 400
    assert capped.shape == (3, 133, 400) and capped.dtype == torch.uint8
    pil = Image.fromarray(image.permute(1, 2, 0).numpy()).resize((400, 133), Image.BILINEAR)
    assert torch.equal(capped, torch.from_numpy(np.array(pil)).permute(2, 0, 1))
    assert resize_shortest_edge(image, 50, 400).shape == (3, 50, 150)
    assert resize_shortest_edge(image.float(), 200, 4000).shape == (3, 200, 600)


def test_check_refuses_models_test_time_augmentation_cannot_merge():
    cfg = structure(
        ExperimentConfig,
        {"model": {"name": "RetinaNet", "num_classes": 5}, "test": {"aug": {"enabled": True}}},
    )
    with pytest.raises(InputError, match="test.aug.enabled: .* not a RetinaNet model"):
        DefaultTrainer(cfg).check()
    keypoints = {
        "roi_heads": {
            "name": "StandardROIHeads",
            "num_classes": 5,
            "branches": {"keypoint": {"name": "KeypointBranch"}},
        }
    }
    cfg = structure(ExperimentConfig, {"model": keypoints, "test": {"aug": {"enabled": True}}})
    with pytest.raises(InputError, match="not keypoint heads"):
        DefaultTrainer(cfg).check()


@pytest.mark.slow  # about 20 s: trains 2 iterations, evaluates plain and augmented twice
def test_train_and_eval_report_tta_results(tmp_path, capsys):
    register_tiny_datasets()
    out = tmp_path / "run"
    assert main(["train", "--config", CONFIG, f"output_dir={out}", *QUICK, *TTA]) == 0
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # only after the last iteration, as detectron2's train_net
    assert [d["iteration"] for d in lines if "bbox_TTA/AP" in d] == [1]
    assert all("segm_TTA/AP" in d for d in lines if "bbox_TTA/AP" in d)
    capsys.readouterr()
    weights = str(out / "model_final.pth")
    assert (
        main(["eval", "--config", CONFIG, "--weights", weights, f"output_dir={tmp_path / 'eval'}", *TTA]) == 0
    )
    results = json.loads(capsys.readouterr().out)
    assert set(results) == {"bbox", "segm", "bbox_TTA", "segm_TTA"}
    assert set(results["bbox_TTA"]) == set(results["bbox"])
    assert (tmp_path / "eval" / "inference_TTA" / "engine_shapes_val2").is_dir()
    assert main(["eval", "--config", CONFIG, "--weights", weights, f"output_dir={tmp_path / 'plain'}"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert set(plain) == {"bbox", "segm"} and plain["bbox"] == results["bbox"]
