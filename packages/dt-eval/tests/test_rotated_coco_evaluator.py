"""RotatedCOCOEvaluator: COCO box AP with rotated IoU, on crafted predictions with hand-computed AP,
and equal to COCOEvaluator when every angle is 0."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dt_eval import COCOEvaluator, RotatedCOCOEvaluator
from dt_structures import Boxes, BoxMode, Instances, RotatedBoxes

METADATA = {"thing_classes": ["thing", "other"]}


def dataset_dicts(boxes_per_image: list[list[list[float]]], mode: BoxMode, classes=None) -> list[dict]:
    return [
        {
            "file_name": f"{i}.png",
            "image_id": i,
            "height": 100,
            "width": 100,
            "annotations": [
                {"bbox": b, "bbox_mode": mode, "category_id": 0 if classes is None else classes[i][k]}
                for k, b in enumerate(boxes)
            ],
        }  # fmt: skip
        for i, boxes in enumerate(boxes_per_image)
    ]


def outputs(boxes: list[list[float]], scores: list[float], rotated: bool, classes=None) -> list[dict]:
    instances = Instances((100, 100))
    tensor = torch.tensor(boxes, dtype=torch.float32)
    instances.pred_boxes = RotatedBoxes(tensor) if rotated else Boxes(tensor)
    instances.scores = torch.tensor(scores)
    instances.pred_classes = torch.tensor(classes or [0] * len(boxes))
    return [{"instances": instances}]


def evaluate(evaluator, per_image: list[tuple[list, list, list | None]], rotated: bool) -> dict:
    evaluator.reset()
    for image_id, (boxes, scores, classes) in enumerate(per_image):
        if boxes:
            evaluator.process([{"image_id": image_id}], outputs(boxes, scores, rotated, classes))
    return evaluator.evaluate()


def test_hand_computed_rotated_ap(tmp_path):
    """Ranked detections: TP (the box itself), FP (the box turned by 90 degrees: IoU 1/3 at every
    threshold), TP (the other image's box turned by 180 degrees, the same region). Two ground truths:
    interpolated precision is 1 up to recall 0.5 (51 of COCO's 101 recall points) and 2/3 after."""
    gt = dataset_dicts(
        [[[50.0, 50.0, 40.0, 20.0, 30.0]], [[30.0, 30.0, 20.0, 20.0, 45.0]]], BoxMode.XYWHA_ABS
    )
    evaluator = RotatedCOCOEvaluator(
        "rot", output_dir=str(tmp_path), dataset_dicts=gt, metadata=METADATA, distributed=False
    )
    per_image = [
        ([[50.0, 50.0, 40.0, 20.0, 30.0], [50.0, 50.0, 40.0, 20.0, 120.0]], [0.9, 0.8], None),
        ([[30.0, 30.0, 20.0, 20.0, -135.0]], [0.7], None),
    ]
    bbox = evaluate(evaluator, per_image, rotated=True)["bbox"]
    expected = (51 * 1.0 + 50 * 2.0 / 3.0) / 101 * 100
    for name in ("AP", "AP50", "AP75", "APs"):
        assert bbox[name] == pytest.approx(expected, abs=1e-6), name
    assert math.isnan(bbox["APm"]) and math.isnan(bbox["APl"])  # areas 800 and 400 are small (< 32**2)


def test_rotated_iou_decides_the_match(tmp_path):
    """A thin box at 45 degrees and the same box at -45 degrees have the same axis-aligned enclosing
    box, yet cross only in a small square: rotated matching makes the second a false positive."""
    gt = dataset_dicts([[[50.0, 50.0, 60.0, 10.0, 45.0]]], BoxMode.XYWHA_ABS)
    evaluator = RotatedCOCOEvaluator("rot", output_dir=str(tmp_path), dataset_dicts=gt, metadata=METADATA)
    bbox = evaluate(evaluator, [([[50.0, 50.0, 60.0, 10.0, -45.0]], [0.9], None)], rotated=True)["bbox"]
    assert bbox["AP50"] == 0.0


def test_zero_angles_give_the_axis_aligned_result(tmp_path):
    rng = np.random.default_rng(0)
    gt_xywh, per_image_xyxy, per_image_xywha = [], [], []
    for _ in range(6):
        xy = rng.uniform(5, 60, size=(3, 2))
        wh = rng.uniform(6, 35, size=(3, 2))
        gt_xywh.append(np.concatenate([xy, wh], axis=1).tolist())
        jitter = rng.normal(0, 2.0, size=(3, 4))
        pred = np.concatenate([xy, wh], axis=1) + jitter  # XYWH near the ground truth
        pred[:, 2:] = np.abs(pred[:, 2:]) + 1
        scores = rng.uniform(0.1, 1.0, size=3).tolist()
        classes = [0, 1, int(rng.integers(0, 2))]  # the last detection's class is right half the time
        per_image_xyxy.append(
            (np.concatenate([pred[:, :2], pred[:, :2] + pred[:, 2:]], 1).tolist(), scores, classes)
        )
        centres = pred[:, :2] + pred[:, 2:] / 2
        xywha = np.concatenate([centres, pred[:, 2:], np.zeros((3, 1))], axis=1).tolist()
        per_image_xywha.append((xywha, scores, classes))
    gt_classes = [[0, 1, 0]] * 6
    axis = COCOEvaluator(
        "aa", output_dir=str(tmp_path / "aa"), metadata=METADATA,
        dataset_dicts=dataset_dicts(gt_xywh, BoxMode.XYWH_ABS, gt_classes),
    )  # fmt: skip
    rotated_gt = [[[x + w / 2, y + h / 2, w, h, 0.0] for x, y, w, h in boxes] for boxes in gt_xywh]
    rotated = RotatedCOCOEvaluator(
        "rot", output_dir=str(tmp_path / "rot"), metadata=METADATA,
        dataset_dicts=dataset_dicts(rotated_gt, BoxMode.XYWHA_ABS, gt_classes),
    )  # fmt: skip
    expected = evaluate(axis, per_image_xyxy, rotated=False)["bbox"]
    result = evaluate(rotated, per_image_xywha, rotated=True)["bbox"]
    assert set(result) == set(expected) and 10 < expected["AP"] < 95
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, abs=1e-3, nan_ok=True), name


def test_rotated_evaluator_rejects_other_tasks_and_axis_aligned_predictions(tmp_path):
    gt = dataset_dicts([[[50.0, 50.0, 10.0, 10.0, 0.0]]], BoxMode.XYWHA_ABS)
    with pytest.raises(ValueError, match="boxes only"):
        RotatedCOCOEvaluator(
            "rot", tasks=("segm",), output_dir=str(tmp_path), dataset_dicts=gt, metadata=METADATA
        )
    evaluator = RotatedCOCOEvaluator("rot", output_dir=str(tmp_path), dataset_dicts=gt, metadata=METADATA)
    with pytest.raises(ValueError, match=r"needs rotated pred_boxes \[N, 5\]"):
        evaluator.process([{"image_id": 0}], outputs([[40.0, 40.0, 60.0, 60.0]], [0.5], rotated=False))
    axis = COCOEvaluator("empty", output_dir=str(tmp_path / "empty"), dataset_dicts=[], metadata=METADATA)
    axis.process([{"image_id": 0}], outputs([[50.0, 50.0, 10.0, 10.0, 30.0]], [0.5], rotated=True))
    assert axis._predictions[0]["instances"][0]["bbox"] == [50.0, 50.0, 10.0, 10.0, 30.0]
    with pytest.raises(ValueError, match="have no COCO json form"):
        COCOEvaluator("aa", output_dir=str(tmp_path / "aa"), dataset_dicts=gt, metadata=METADATA)
