"""Fast R-CNN on precomputed proposals end to end: ``dt train`` and ``dt eval`` of a tiny model reading
proposal files the test writes (``data.datasets.proposal_files_*``), and the checks of those files."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from engine_tiny_datasets import register_tiny_datasets

from dt_config import ConfigError
from dt_data import DatasetCatalog
from dt_engine.cli import main
from dt_engine.config.experiment import load_experiment
from dt_engine.defaults import DefaultTrainer
from dt_structures import BoxMode

CONFIG = """\
model:
  backbone:
    resnet: {depth: 50, stem_out_channels: 16, res2_out_channels: 32, width_per_group: 8, norm: BN}
    out_channels: 32
  proposal_generator: {name: PrecomputedProposals}
  roi_heads: {num_classes: 5, batch_size_per_image: 64, score_thresh_test: 0.0, box_head: {fc_dim: 64}}
data:
  datasets:
    train: [engine_shapes_train4]
    test: [engine_shapes_val2]
    proposal_files_train: [PROPOSALS/train.pkl]
    proposal_files_test: [PROPOSALS/val.pkl]
    precomputed_proposal_topk_train: 30
    precomputed_proposal_topk_test: 20
  input: {min_size_train: [128], max_size_train: 160, min_size_test: 128, max_size_test: 160}
  loader: {num_workers: 0}
solver: {base_lr: 0.002, max_iter: 2, steps: [1], warmup_iters: 1, ims_per_batch: 2, checkpoint_period: 2}
test: {eval_period: 0}
seed: 3
"""


def _write_proposals(dataset_name: str, path: Path, rng: np.random.Generator) -> None:
    """detectron2's proposal file format: per image its id, XYXY boxes and objectness logits: the
    ground truth jittered, then random boxes, in decreasing objectness."""
    ids, boxes, logits = [], [], []
    for record in DatasetCatalog.get(dataset_name):
        gt = np.array(
            [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in record["annotations"]]
        ).reshape(-1, 4)
        jittered = gt + rng.normal(0, 3, size=gt.shape)
        corner = rng.uniform(0, 200, size=(40, 2))
        random = np.concatenate([corner, corner + rng.uniform(10, 56, size=(40, 2))], axis=1)
        ids.append(record["image_id"])
        boxes.append(np.concatenate([jittered, random]).astype(np.float32))
        logits.append(np.linspace(5, -5, len(boxes[-1]), dtype=np.float32))
    with open(path, "wb") as f:
        pickle.dump({"ids": ids, "boxes": boxes, "objectness_logits": logits, "bbox_mode": 0}, f)


@pytest.fixture
def fast_rcnn_config(tmp_path):
    register_tiny_datasets()
    rng = np.random.default_rng(0)
    _write_proposals("engine_shapes_train4", tmp_path / "train.pkl", rng)
    _write_proposals("engine_shapes_val2", tmp_path / "val.pkl", rng)
    config = tmp_path / "fast_rcnn.yaml"
    config.write_text(CONFIG.replace("PROPOSALS", str(tmp_path)))
    return config


@pytest.mark.filterwarnings("error:.*no detections")  # the detections come from the proposals
def test_fast_rcnn_trains_and_evaluates_on_precomputed_proposals(fast_rcnn_config, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", str(fast_rcnn_config), f"output_dir={out}"]) == 0
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = set().union(*lines)
    assert {"loss_cls", "loss_box_reg", "bbox/AP"} <= losses
    assert not any(name.startswith("loss_rpn") for name in losses)
    capsys.readouterr()
    args = ["eval", "--config", str(fast_rcnn_config), "--weights", str(out / "model_final.pth")]
    assert main([*args, f"output_dir={tmp_path / 'eval'}"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results) == {"bbox"} and 0 <= results["bbox"]["AP"] <= 100


def test_loaders_carry_the_top_proposals_of_each_file(fast_rcnn_config):
    workflow = DefaultTrainer(load_experiment(fast_rcnn_config))
    (test_input,) = next(iter(workflow.build_test_loader("engine_shapes_val2")))
    train_batch = next(iter(workflow.build_train_loader(seed=0)))
    assert len(test_input["proposals"]) == 20 and all(len(x["proposals"]) == 30 for x in train_batch)
    logits = test_input["proposals"].objectness_logits
    assert (logits[:-1] >= logits[1:]).all()  # the best ones, in decreasing objectness
    image_size = tuple(test_input["image"].shape[-2:])
    assert test_input["proposals"].image_size == image_size == (128, 128)  # resized with the image


def test_proposal_files_are_checked_before_running(fast_rcnn_config, tmp_path, capsys):
    weights = tmp_path / "none.pth"
    weights.write_bytes(b"")
    eval_args = ["eval", "--config", str(fast_rcnn_config), "--weights", str(weights)]
    missing = str(tmp_path / "missing.pkl")
    assert main([*eval_args, f"data.datasets.proposal_files_test=[{missing}]"]) == 2
    assert (
        f"data.datasets.proposal_files_test[0]: proposal file not found: {missing}" in capsys.readouterr().err
    )
    assert main([*eval_args, "data.datasets.proposal_files_train=[]"]) == 2
    assert "proposal_files_train: expected a proposal file per dataset" in capsys.readouterr().err
    assert main([*eval_args, "model.proposal_generator={name: RPN}"]) == 2
    assert (
        "read by a model with proposal_generator {name: PrecomputedProposals} only" in capsys.readouterr().err
    )
    with pytest.raises(
        ConfigError, match="proposal_files_test: expected one proposal file per dataset of test"
    ):
        load_experiment(fast_rcnn_config, ["data.datasets.proposal_files_test=[a.pkl,b.pkl]"])
