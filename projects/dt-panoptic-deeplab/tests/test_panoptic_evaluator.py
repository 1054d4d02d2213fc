"""Label-divisor outputs of the post-processing are what dt-eval's COCOPanopticEvaluator reads."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dt_eval import COCOPanopticEvaluator
from dt_eval.panoptic_evaluation import id2rgb
from dt_panoptic_deeplab.post_processing import get_panoptic_segmentation
from dt_panoptic_deeplab.target_generator import PanopticDeepLabTargetGenerator

# dataset ids: 7 (stuff "sky", contiguous 0), 3 and 5 (things, contiguous 1 and 2)
CATEGORIES = [
    {"id": 7, "name": "sky", "isthing": 0},
    {"id": 3, "name": "disc", "isthing": 1},
    {"id": 5, "name": "box", "isthing": 1},
]
METADATA = {
    "thing_dataset_id_to_contiguous_id": {3: 1, 5: 2},
    "stuff_dataset_id_to_contiguous_id": {7: 0, 3: 1, 5: 2},
    "label_divisor": 1000,
}


def _write_ground_truth(tmp_path):
    ids = np.full((16, 16), 1, dtype=np.int64)
    ids[2:7, 2:7], ids[9:14, 3:8], ids[8:15, 9:15] = 21, 22, 31
    folder = tmp_path / "panoptic"
    folder.mkdir()
    Image.fromarray(id2rgb(ids)).save(folder / "img1.png")
    segments = [{"id": 1, "category_id": 7, "iscrowd": 0, "area": int((ids == 1).sum())}] + [
        {"id": i, "category_id": c, "iscrowd": 0, "area": int((ids == i).sum())}
        for i, c in ((21, 3), (22, 3), (31, 5))
    ]
    gt = {
        "images": [{"id": 1, "file_name": "img1.jpg", "height": 16, "width": 16}],
        "categories": CATEGORIES,
        "annotations": [{"image_id": 1, "file_name": "img1.png", "segments_info": segments}],
    }
    (tmp_path / "panoptic.json").write_text(json.dumps(gt))
    contiguous = {7: 0, 3: 1, 5: 2}
    return ids, [{"id": s["id"], "category_id": contiguous[s["category_id"]]} for s in segments]


@pytest.mark.parametrize("drop_instance", [False, True])
def test_post_processed_panoptic_labels_score_in_the_evaluator(tmp_path, drop_instance):
    ids, segments = _write_ground_truth(tmp_path)
    targets = PanopticDeepLabTargetGenerator(ignore_label=255, thing_ids=[1, 2], sigma=1)(ids, segments)
    center = targets["center"][None]
    if drop_instance:  # lose the centre of box 31: its pixels join the nearest centre, disc 22's
        center[0, 7:16, 8:16] = 0
    panoptic, _ = get_panoptic_segmentation(
        targets["sem_seg"][None],
        center,
        targets["offset"],
        thing_ids=[1, 2],
        label_divisor=1000,
        stuff_area=1,
        nms_kernel=3,
        top_k=None,
    )
    evaluator = COCOPanopticEvaluator(
        "toy",
        gt_json=str(tmp_path / "panoptic.json"),
        gt_folder=str(tmp_path / "panoptic"),
        metadata=METADATA,
        distributed=False,
    )
    evaluator.reset()
    evaluator.process([{"image_id": 1, "file_name": "img1.jpg"}], [{"panoptic_seg": (panoptic[0], None)}])
    result = evaluator.evaluate()["panoptic_seg"]
    if drop_instance:
        # disc 22 + box 31 form one instance; its majority class is box (42 of 67 pixels), which still
        # matches box 31 (IoU 0.63) but leaves disc 22 unmatched
        assert result["PQ_st"] == pytest.approx(100.0) and 0 < result["PQ_th"] < 100
    else:
        assert result["PQ"] == pytest.approx(100.0) and result["PQ_th"] == pytest.approx(100.0)
        assert result["PQ_st"] == pytest.approx(100.0)


def test_void_labels_become_segment_zero():
    labels = torch.full((4, 4), -1, dtype=torch.int64)
    labels[:2] = 0  # stuff class 0
    evaluator = COCOPanopticEvaluator("toy", gt_json="unused.json", gt_folder="unused", metadata=METADATA)
    ids, segments = evaluator._from_label_divisor(labels.numpy(), 1)
    assert ids.min() == 0 and segments == [{"id": 1, "category_id": 0, "isthing": False}]
