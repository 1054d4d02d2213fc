"""COCOPanopticEvaluator on detectron2's label-divisor outputs (``panoptic_seg = (labels, None)``)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from dt_eval.panoptic_evaluation import COCOPanopticEvaluator, id2rgb, rgb2id

# ground truth 4x12: thing 11 (segments 1 and 2, 16 pixels each), stuff 33 (segment 3, 16 pixels)
META = {
    "thing_dataset_id_to_contiguous_id": {11: 0},
    "stuff_dataset_id_to_contiguous_id": {33: 1},
    "label_divisor": 1000,
}


@pytest.fixture
def gt_files(tmp_path):
    gt_ids = np.zeros((4, 12), dtype=np.int64)
    gt_ids[:, 0:4] = 1
    gt_ids[:, 4:8] = 2
    gt_ids[:, 8:12] = 3
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    Image.fromarray(id2rgb(gt_ids)).save(gt_dir / "img.png")
    gt_json = {
        "images": [{"id": 7, "file_name": "img.jpg", "height": 4, "width": 12}],
        "categories": [{"id": 11, "isthing": 1, "name": "a"}, {"id": 33, "isthing": 0, "name": "b"}],
        "annotations": [
            {"image_id": 7, "file_name": "img.png", "segments_info": [
                {"id": 1, "category_id": 11, "iscrowd": 0, "area": 16},
                {"id": 2, "category_id": 11, "iscrowd": 0, "area": 16},
                {"id": 3, "category_id": 33, "iscrowd": 0, "area": 16}]},
        ],
    }  # fmt: skip
    (tmp_path / "gt.json").write_text(json.dumps(gt_json))
    return str(tmp_path / "gt.json"), str(gt_dir)


def _labels() -> np.ndarray:
    labels = np.full((4, 12), -1, dtype=np.int64)  # -1: void
    labels[:, 0:3] = 0 * 1000 + 1  # thing class 0, instance 1: IoU 12/16 with segment 1 (TP)
    labels[0:2, 4:8] = 0 * 1000 + 2  # instance 2: IoU 8/16 = 0.5 with segment 2, not > 0.5 (FP + FN)
    labels[:, 8:12] = 1 * 1000  # stuff class 1: IoU 1 (TP)
    return labels


@pytest.mark.parametrize("as_tensor", [False, True])
def test_label_divisor_outputs_hand_computed(gt_files, tmp_path, as_tensor):
    gt_json, gt_dir = gt_files
    out_dir = tmp_path / "out"
    ev = COCOPanopticEvaluator(gt_json=gt_json, gt_folder=gt_dir, metadata=META, output_dir=str(out_dir))
    labels = torch.from_numpy(_labels()).to(torch.int32) if as_tensor else _labels()
    ev.process([{"image_id": 7, "file_name": "img.jpg"}], [{"panoptic_seg": (labels, None)}])
    res = ev.evaluate()["panoptic_seg"]
    # thing 11: TP 1 (IoU 0.75), FP 1, FN 1 -> PQ 0.75 / 2, SQ 0.75, RQ 0.5; stuff 33: PQ 1
    assert res["PQ_th"] == pytest.approx(37.5) and res["SQ_th"] == pytest.approx(75)
    assert res["RQ_th"] == pytest.approx(50)
    assert res["PQ_st"] == pytest.approx(100)
    assert res["PQ"] == pytest.approx(68.75)
    written = json.loads((out_dir / "predictions.json").read_text())["annotations"][0]
    # segment id = label + 1 (void -1 becomes 0), categories mapped back to dataset ids, isthing dropped
    assert written["segments_info"] == [
        {"id": 2, "category_id": 11},
        {"id": 3, "category_id": 11},
        {"id": 1001, "category_id": 33},
    ]


def test_label_divisor_png_ids(gt_files):
    gt_json, gt_dir = gt_files
    ev = COCOPanopticEvaluator(gt_json=gt_json, gt_folder=gt_dir, metadata=META, distributed=False)
    ev.process([{"image_id": 7, "file_name": "dir/img.jpg"}], [{"panoptic_seg": (_labels(), None)}])
    (pred,) = ev._predictions
    assert pred["file_name"] == "img.png"
    with Image.open(io.BytesIO(pred["png_string"])) as im:
        np.testing.assert_array_equal(rgb2id(np.array(im)), _labels() + 1)


def test_label_divisor_errors(gt_files):
    gt_json, gt_dir = gt_files
    no_divisor = {k: v for k, v in META.items() if k != "label_divisor"}
    ev = COCOPanopticEvaluator(gt_json=gt_json, gt_folder=gt_dir, metadata=no_divisor)
    with pytest.raises(ValueError, match="image 7: .*needs metadata.label_divisor"):
        ev.process([{"image_id": 7, "file_name": "img.jpg"}], [{"panoptic_seg": (_labels(), None)}])
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="label_divisor must be a positive int"):
            COCOPanopticEvaluator(gt_json=gt_json, gt_folder=gt_dir, metadata={**META, "label_divisor": bad})
    ev = COCOPanopticEvaluator(gt_json=gt_json, gt_folder=gt_dir, metadata=META)
    with pytest.raises(ValueError, match="must be >= -1"):
        ev.process([{"image_id": 7}], [{"panoptic_seg": (np.full((2, 2), -2), None)}])
    with pytest.raises(ValueError, match="predicted stuff class 2 has no dataset id"):
        ev.process([{"image_id": 7}], [{"panoptic_seg": (np.full((2, 2), 2000), None)}])
    with pytest.raises(ValueError, match=r"must be in \[0, 256\^3\)"):
        ev.process([{"image_id": 7}], [{"panoptic_seg": (np.full((2, 2), 256**3), [{"id": 256**3}])}])
