"""Box-proposal recall (detectron2's ``_evaluate_box_proposals``) on hand-computed cases."""

from __future__ import annotations

import contextlib
import io
import json
import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO

from dt_eval.box_proposals import evaluate_box_proposals, proposal_arrays, proposal_metrics
from dt_eval.coco_evaluation import COCOEvaluator
from dt_structures import Boxes, Instances

KEYS = ["AR@100", "ARs@100", "ARm@100", "ARl@100", "AR@1000", "ARs@1000", "ARm@1000", "ARl@1000"]


def _gt(annotations: list[dict], num_images: int = 2) -> dict:
    images = [
        {"id": i, "height": 200, "width": 200, "file_name": f"{i}.jpg"} for i in range(1, num_images + 1)
    ]
    anns = []
    for k, (image_id, bbox, iscrowd) in enumerate(annotations, start=1):
        area = bbox[2] * bbox[3]
        anns.append({"id": k, "image_id": image_id, "category_id": 1, "bbox": bbox, "area": area,
                     "iscrowd": iscrowd})  # fmt: skip
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}]}


def _coco(gt: dict) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
    return coco


def _proposals(boxes: list, logits: list) -> Instances:
    inst = Instances((200, 200))
    inst.proposal_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.objectness_logits = torch.tensor(logits, dtype=torch.float32)
    return inst


# image 1: A = [0, 0, 10, 10] (area 100, small), B = [50, 50, 40, 40] (area 1600, medium), and a crowd
# box that must be ignored. Proposals (XYXY): p0 covers A exactly (IoU 1), p1 covers B with IoU
# 1200 / 1600 = 0.75, p2 covers half of A (IoU 0.5). Objectness order: p0, p2, p1.
GT = _gt([(1, [0, 0, 10, 10], 0), (1, [50, 50, 40, 40], 0), (1, [0, 0, 100, 100], 1)])
PROPOSALS = _proposals([[0, 0, 10, 10], [50, 50, 90, 80], [0, 0, 10, 5]], [0.9, 0.1, 0.5])


def test_hand_computed_recall():
    preds = [{"image_id": 1, "proposals": PROPOSALS}]
    stats = evaluate_box_proposals(preds, _coco(GT))
    # greedy: A-p0 (1.0) first, then B-p1 (0.75); B passes the 6 thresholds 0.50..0.75
    assert stats["num_pos"] == 2
    assert stats["gt_overlaps"].tolist() == [0.75, 1.0]
    assert stats["recalls"].tolist() == [1.0] * 6 + [0.5] * 4
    assert stats["ar"].item() == pytest.approx(0.8)
    assert stats["thresholds"].tolist() == torch.arange(0.5, 0.95 + 1e-5, 0.05).tolist()
    # limit keeps the highest objectness first: p0 and p2 leave B uncovered (overlap 0)
    for limit in (1, 2):
        stats = evaluate_box_proposals(preds, _coco(GT), limit=limit)
        assert stats["gt_overlaps"].tolist() == [0.0, 1.0]
        assert stats["ar"].item() == pytest.approx(0.5)
    assert evaluate_box_proposals(preds, _coco(GT), area="small")["ar"].item() == pytest.approx(1.0)
    assert evaluate_box_proposals(preds, _coco(GT), area="medium")["ar"].item() == pytest.approx(0.6)
    large = evaluate_box_proposals(preds, _coco(GT), area="large")
    assert large["num_pos"] == 0 and math.isnan(large["ar"].item())


def test_greedy_takes_the_best_covered_box_first():
    gt = _gt([(1, [0, 0, 10, 10], 0), (1, [0, 0, 10, 8], 0)], num_images=1)
    # one proposal for two boxes: A (IoU 1) takes it, B (IoU 0.8) is left at 0
    one = [{"image_id": 1, "proposals": _proposals([[0, 0, 10, 10]], [1.0])}]
    assert evaluate_box_proposals(one, _coco(gt))["gt_overlaps"].tolist() == [0.0, 1.0]
    # p0 = [0,0,10,9]: A 0.9, B 80/90; p1 = [0,0,10,8]: A 0.8, B 1.0. B-p1 is matched first, then A-p0.
    two = [{"image_id": 1, "proposals": _proposals([[0, 0, 10, 9], [0, 0, 10, 8]], [2.0, 1.0])}]
    stats = evaluate_box_proposals(two, _coco(gt))
    assert stats["gt_overlaps"].tolist() == pytest.approx([0.9, 1.0])
    assert stats["recalls"].tolist() == [1.0] * 9 + [0.5]  # 0.9 passes the (float32) 0.9 threshold
    assert stats["ar"].item() == pytest.approx(0.95)


def test_area_bounds_are_inclusive():
    # area exactly 32^2 counts as small and as medium (detectron2's closed ranges)
    gt = _gt([(1, [0, 0, 32, 32], 0)], num_images=1)
    preds = [{"image_id": 1, "proposals": _proposals([[0, 0, 32, 32]], [0.0])}]
    for area in ("all", "small", "medium"):
        assert evaluate_box_proposals(preds, _coco(gt), area=area)["num_pos"] == 1
    assert evaluate_box_proposals(preds, _coco(gt), area="large")["num_pos"] == 0


def test_images_without_proposals_or_gt_do_not_count():
    gt = _gt(
        [(1, [0, 0, 10, 10], 0), (1, [50, 50, 40, 40], 0), (2, [0, 0, 20, 20], 0), (3, [0, 0, 5, 5], 1)], 4
    )
    preds = [
        {"image_id": 1, "proposals": PROPOSALS},
        {"image_id": 2, "proposals": _proposals([], [])},  # its box is not in the denominator
        {"image_id": 3, "proposals": PROPOSALS},  # crowd only
        {"image_id": 4, "proposals": PROPOSALS},  # no ground truth
    ]
    stats = evaluate_box_proposals(preds, _coco(gt))
    assert stats["num_pos"] == 2 and stats["ar"].item() == pytest.approx(0.8)
    empty = evaluate_box_proposals(preds[1:], _coco(gt))
    assert empty["num_pos"] == 0 and len(empty["gt_overlaps"]) == 0 and math.isnan(empty["ar"].item())


def test_bad_arguments_are_named():
    preds = [{"image_id": 1, "proposals": PROPOSALS}]
    with pytest.raises(ValueError, match="area must be one of"):
        evaluate_box_proposals(preds, _coco(GT), area="tiny")
    with pytest.raises(ValueError, match="limit must be >= 1"):
        evaluate_box_proposals(preds, _coco(GT), limit=0)
    inst = Instances((5, 5))
    inst.proposal_boxes = Boxes(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="image_id=7.*'objectness_logits'"):
        proposal_arrays(inst, 7)
    with pytest.raises(ValueError, match=r"objectness_logits of image_id=7 must be \[2\]"):
        proposal_arrays(_Plain(torch.zeros(2, 4), torch.zeros(3)), 7)
    with pytest.raises(ValueError, match=r"proposal_boxes of image_id=7 must be \[N, 4\]"):
        proposal_arrays(_Plain(torch.zeros(2, 5), torch.zeros(2)), 7)


class _Plain:
    """Duck-typed proposals: plain tensors instead of Boxes/Instances."""

    def __init__(self, boxes, logits):
        self.proposal_boxes, self.objectness_logits = boxes, logits


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(*[st.integers(0, 60)] * 4, st.integers(0, 4)), min_size=1, max_size=12),
    st.randoms(use_true_random=False),
    st.integers(1, 6),
)
def test_order_and_limit_properties(raw, rnd, limit):
    """The proposals' order does not matter (distinct logits), and ``limit=k`` equals keeping the
    k most confident proposals."""
    gt = _gt([(1, [3, 4, 20, 25], 0), (1, [30, 10, 8, 40], 0), (1, [0, 0, 60, 60], 0)], num_images=1)
    boxes = [[x, y, x + w, y + h] for x, y, w, h, _ in raw]
    logits = rnd.sample(range(1000), len(raw))
    perm = list(range(len(raw)))
    rnd.shuffle(perm)
    coco = _coco(gt)

    def recall(b, s, lim=None):
        stats = evaluate_box_proposals([{"image_id": 1, "proposals": _proposals(b, s)}], coco, limit=lim)
        return stats["gt_overlaps"].tolist(), stats["recalls"].tolist()

    base = recall(boxes, logits)
    assert recall([boxes[i] for i in perm], [logits[i] for i in perm]) == base
    top = sorted(range(len(raw)), key=lambda i: -logits[i])[:limit]
    assert recall(boxes, logits, limit) == recall([boxes[i] for i in top], [logits[i] for i in top])
    assert all(0.0 <= r <= 1.0 for r in base[1])


def test_coco_evaluator_reports_box_proposals(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(GT))
    ev = COCOEvaluator("toy", output_dir=str(tmp_path), coco_json=str(path), distributed=False)
    ev.process(
        [{"image_id": 1}, {"image_id": 2}], [{"proposals": PROPOSALS}, {"proposals": _proposals([], [])}]
    )
    res = ev.evaluate()
    assert list(res) == ["box_proposals"]
    ar = res["box_proposals"]
    assert list(ar) == KEYS
    for limit in (100, 1000):
        assert ar[f"AR@{limit}"] == pytest.approx(80)
        assert ar[f"ARs@{limit}"] == pytest.approx(100)
        assert ar[f"ARm@{limit}"] == pytest.approx(60)
        assert math.isnan(ar[f"ARl@{limit}"])
    with open(tmp_path / "box_proposals.pkl", "rb") as f:
        saved = pickle.load(f)
    assert saved["ids"] == [1, 2] and saved["bbox_mode"] == 0
    np.testing.assert_array_equal(saved["boxes"][0], PROPOSALS.proposal_boxes.tensor.numpy())
    np.testing.assert_array_equal(saved["objectness_logits"][0], PROPOSALS.objectness_logits.numpy())


def test_coco_evaluator_proposals_and_instances_together(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(GT))
    meta = {"thing_classes": ["a"], "thing_dataset_id_to_contiguous_id": {1: 0}}
    ev = COCOEvaluator("toy", coco_json=str(path), distributed=False, tasks=("bbox",), metadata=meta)
    inst = Instances((200, 200))
    inst.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 90.0, 90.0]]))
    inst.scores = torch.tensor([0.9, 0.8])
    inst.pred_classes = torch.tensor([0, 0])
    ev.process([{"image_id": 1}], [{"instances": inst, "proposals": PROPOSALS}])
    res = ev.evaluate()
    assert list(res) == ["box_proposals", "bbox"]
    assert res["bbox"]["AP"] == pytest.approx(100)
    assert res["box_proposals"]["AR@1000"] == pytest.approx(80)


def test_proposal_metrics_many_proposals():
    """More than 100 proposals: the best one ranked 101st counts at 1000 only."""
    gt = _gt([(1, [100, 100, 50, 50], 0)], num_images=1)
    boxes = [[0, 0, 5, 5]] * 100 + [[100, 100, 150, 150]]
    logits = list(np.linspace(1.0, 0.5, 100)) + [0.0]
    res = proposal_metrics([{"image_id": 1, "proposals": _proposals(boxes, logits)}], _coco(gt))
    assert res["AR@100"] == 0 and res["ARm@100"] == 0
    assert res["AR@1000"] == pytest.approx(100) and res["ARm@1000"] == pytest.approx(100)
    assert math.isnan(res["ARs@1000"]) and math.isnan(res["ARl@1000"])
