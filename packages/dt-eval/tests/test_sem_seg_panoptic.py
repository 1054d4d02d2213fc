"""SemSegEvaluator and COCOPanopticEvaluator against hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from dt_eval.panoptic_evaluation import COCOPanopticEvaluator, id2rgb, pq_compute_single_image, rgb2id
from dt_eval.sem_seg_evaluation import SemSegEvaluator


def _scores(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """One-hot scores [C, H, W] whose argmax is labels."""
    return (np.arange(num_classes)[:, None, None] == labels[None]).astype(np.float32)


def test_sem_seg_hand_computed(tmp_path):
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [2, 0, 0, 2]])
    path = tmp_path / "a_gt.png"
    Image.fromarray(gt).save(path)
    dicts = [{"file_name": "a.jpg", "sem_seg_file_name": str(path)}]
    meta = {"stuff_classes": ["x", "y", "z", "unused"], "ignore_label": 255}
    ev = SemSegEvaluator("toy", dataset_dicts=dicts, metadata=meta, output_dir=str(tmp_path))
    ev.process([{"file_name": "a.jpg"}], [{"sem_seg": _scores(pred, 4)}])
    res = ev.evaluate()["sem_seg"]
    # class 0: tp 3, gt 4, pred 4 (one on class 2) -> IoU 3/5; class 1: tp 4, gt 4, pred 5 -> 4/5;
    # class 2: tp 1, gt 2, pred 1 -> 1/2; class 3 absent: NaN. Ignored pixels do not count.
    assert res["IoU-x"] == pytest.approx(60)
    assert res["IoU-y"] == pytest.approx(80)
    assert res["IoU-z"] == pytest.approx(50)
    assert math.isnan(res["IoU-unused"]) and math.isnan(res["ACC-unused"])
    assert res["mIoU"] == pytest.approx((60 + 80 + 50) / 3)
    assert res["fwIoU"] == pytest.approx(100 * (4 * 0.6 + 4 * 0.8 + 2 * 0.5) / 10)
    assert res["pACC"] == pytest.approx(80)
    assert res["mACC"] == pytest.approx(100 * (3 / 4 + 4 / 4 + 1 / 2) / 3)
    assert res["ACC-x"] == pytest.approx(75)
    written = json.loads((tmp_path / "sem_seg_predictions.json").read_text())
    assert sorted(r["category_id"] for r in written) == [0, 1, 2]


def test_sem_seg_errors():
    with pytest.raises(ValueError, match="num_classes"):
        SemSegEvaluator()
    ev = SemSegEvaluator(num_classes=2)
    with pytest.raises(ValueError, match="no ground truth"):
        ev.process([{"file_name": "missing.jpg"}], [{"sem_seg": np.zeros((2, 3, 3))}])
    with pytest.raises(ValueError, match="sizes differ"):
        ev.process([{"sem_seg_gt": np.zeros((2, 2))}], [{"sem_seg": np.zeros((2, 3, 3))}])


def test_rgb_id_round_trip():
    ids = np.array([[0, 1, 256], [65536 + 7, 16777215, 42]])
    np.testing.assert_array_equal(rgb2id(id2rgb(ids)), ids)


CATS = {1: {"id": 1, "isthing": 1}, 2: {"id": 2, "isthing": 1}, 3: {"id": 3, "isthing": 0}}


def test_pq_single_image_hand_computed():
    gt = np.zeros((4, 10), dtype=np.int64)
    gt[:, 0:4] = 1  # thing cat 1, area 16
    gt[:, 4:6] = 2  # crowd of cat 2, area 8
    gt[:, 6:10] = 3  # stuff cat 3, area 16
    pred = np.zeros_like(gt)
    pred[:, 0:3] = 10  # cat 1: inter 12, union 16 -> IoU 0.75 (TP)
    pred[:, 4:6] = 11  # cat 2 on the crowd region: ignored, not FP
    pred[0:2, 6:10] = 12  # cat 3: inter 8, union 16 -> IoU 0.5, not > 0.5: FN + FP
    pred[2:4, 6:10] = 13  # cat 1 on stuff: FP
    gt_segments = [
        {"id": 1, "category_id": 1, "iscrowd": 0, "area": 16},
        {"id": 2, "category_id": 2, "iscrowd": 1, "area": 8},
        {"id": 3, "category_id": 3, "iscrowd": 0, "area": 16},
    ]
    pred_segments = [{"id": i, "category_id": c} for i, c in ((10, 1), (11, 2), (12, 3), (13, 1))]
    stat = pq_compute_single_image(gt, gt_segments, pred, pred_segments, CATS)
    assert stat.per_cat[1] == {"iou": 0.75, "tp": 1, "fp": 1, "fn": 0}
    assert stat.per_cat[2] == {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0}
    assert stat.per_cat[3] == {"iou": 0.0, "tp": 0, "fp": 1, "fn": 1}
    all_, per_class = stat.pq_average(CATS, None)
    # cat 1: PQ = 0.75 / (1 + 0.5) = 0.5, SQ 0.75, RQ 2/3; cat 3: 0; cat 2 does not occur
    assert all_["n"] == 2
    assert all_["pq"] == pytest.approx(0.25)
    assert per_class[1]["sq"] == pytest.approx(0.75) and per_class[1]["rq"] == pytest.approx(2 / 3)
    things, _ = stat.pq_average(CATS, True)
    stuff, _ = stat.pq_average(CATS, False)
    assert things["pq"] == pytest.approx(0.5) and stuff["pq"] == 0


def test_pq_void_is_left_out_of_the_union():
    gt = np.zeros((2, 10), dtype=np.int64)
    gt[:, 0:4] = 1
    pred = np.zeros_like(gt)
    pred[:, 0:8] = 5  # 4 of its 8 pixels lie on void: union = 16 + 8 - 8 - 8 = 8 -> IoU 1
    stat = pq_compute_single_image(
        gt, [{"id": 1, "category_id": 1, "iscrowd": 0, "area": 8}], pred, [{"id": 5, "category_id": 1}], CATS
    )
    assert stat.per_cat[1] == {"iou": 1.0, "tp": 1, "fp": 0, "fn": 0}


def test_pq_segment_mismatch_is_named():
    gt = np.ones((2, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="segment id 7 is in the prediction PNG"):
        pq_compute_single_image(gt, [], np.full((2, 2), 7), [], CATS, image="img1")
    with pytest.raises(ValueError, match=r"segments \[8\] are in segments_info"):
        pq_compute_single_image(gt, [], np.zeros((2, 2), dtype=np.int64), [{"id": 8, "category_id": 1}], CATS)


def test_panoptic_evaluator_end_to_end(tmp_path):
    gt_ids = np.zeros((4, 10), dtype=np.int64)
    gt_ids[:, 0:4] = 1
    gt_ids[:, 6:10] = 3
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    Image.fromarray(id2rgb(gt_ids)).save(gt_dir / "img.png")
    gt_json = {
        "images": [{"id": 7, "file_name": "img.jpg", "height": 4, "width": 10}],
        "categories": [{"id": 11, "isthing": 1, "name": "a"}, {"id": 33, "isthing": 0, "name": "b"}],
        "annotations": [
            {"image_id": 7, "file_name": "img.png", "segments_info": [
                {"id": 1, "category_id": 11, "iscrowd": 0, "area": 16},
                {"id": 3, "category_id": 33, "iscrowd": 0, "area": 16}]},
        ],
    }  # fmt: skip
    (tmp_path / "gt.json").write_text(json.dumps(gt_json))
    meta = {"thing_dataset_id_to_contiguous_id": {11: 0}, "stuff_dataset_id_to_contiguous_id": {33: 0}}
    ev = COCOPanopticEvaluator(gt_json=str(tmp_path / "gt.json"), gt_folder=str(gt_dir), metadata=meta)
    pred = np.zeros_like(gt_ids)
    pred[:, 0:3] = 1  # thing IoU 0.75
    pred[:, 6:10] = 2  # stuff IoU 1
    segments = [{"id": 1, "category_id": 0, "isthing": True}, {"id": 2, "category_id": 0, "isthing": False}]
    ev.process([{"image_id": 7, "file_name": "img.jpg"}], [{"panoptic_seg": (pred, segments)}])
    res = ev.evaluate()["panoptic_seg"]
    assert res["PQ_th"] == pytest.approx(75) and res["SQ_th"] == pytest.approx(75) and res["RQ_th"] == 100
    assert res["PQ_st"] == pytest.approx(100)
    assert res["PQ"] == pytest.approx(87.5)
