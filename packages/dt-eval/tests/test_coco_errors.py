"""Bad input gives errors that name the annotation; dt_eval.coco stays free of torch."""

from __future__ import annotations

import contextlib
import copy
import io
import subprocess
import sys

import pytest
from dteval_synth import load, make_dataset

from dt_eval.coco import COCOeval


@pytest.fixture(scope="module")
def data():
    return make_dataset(seed=11, num_images=6)


def _evaluate(gt, dt, iou_type):
    E = COCOeval(gt, dt, iou_type)
    with contextlib.redirect_stdout(io.StringIO()):
        E.evaluate()
    return E


@pytest.mark.parametrize(
    ("iou_type", "field", "value", "message"),
    [
        ("bbox", "bbox", [1.0, 2.0, 3.0], "'bbox' must have 4 numbers"),
        ("bbox", "bbox", "nonsense", "'bbox' must be a list of numbers"),
        ("bbox", "score", "high", "'score' must be a number"),
        ("segm", "segmentation", "nonsense", "'segmentation' must be polygons or an RLE dict"),
        ("segm", "segmentation", [[1.0, 2.0]], "fewer than 4 coordinates"),
        ("segm", "segmentation", [[1.0, 2.0, 5.0, float("nan"), 3.0, 4.0]], "non-finite or huge"),
        ("segm", "segmentation", {"size": [10, 10], "counts": "0Q"}, "malformed 'segmentation'"),
        ("segm", "segmentation", {"size": [10, 10], "counts": "a~"}, "outside '0'..'o'"),
        ("segm", "segmentation", {"size": [10, 10], "counts": [3, 2]}, "RLE counts sum to 5"),
        ("keypoints", "keypoints", [1.0, 2.0, 2.0], "'keypoints' must have 51 numbers"),
    ],
)
def test_malformed_detection_is_named(data, iou_type, field, value, message):
    gt, dt = load(*data, iou_type)
    ann = dt.dataset["annotations"][3]
    ann[field] = copy.deepcopy(value)
    with pytest.raises(ValueError, match=message) as info:
        _evaluate(gt, dt, iou_type)
    assert "cocoDt" in str(info.value)
    assert f"id={ann['id']}" in str(info.value)


def test_missing_field_is_named(data):
    gt, dt = load(*data, "bbox")
    del gt.dataset["annotations"][0]["area"]
    with pytest.raises(ValueError, match=r"cocoGt annotation id=1 \(image_id=\d+\): missing 'area'"):
        _evaluate(gt, dt, "bbox")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("areaRng", [0, 1e10], "areaRng"), ("maxDets", [1, 2.5, 3], "maxDets"), ("maxDets", [], "maxDets")],
)
def test_bad_params(data, field, value, message):
    gt, dt = load(*data, "bbox")
    E = COCOeval(gt, dt, "bbox")
    setattr(E.params, field, value)
    with pytest.raises(ValueError, match=message), contextlib.redirect_stdout(io.StringIO()):
        E.evaluate()


def test_unknown_iou_type():
    with pytest.raises(ValueError, match="iouType"):
        COCOeval(None, None, "boxes")


def test_accumulate_before_evaluate(data):
    gt, dt = load(*data, "bbox")
    E = COCOeval(gt, dt, "bbox")
    with pytest.raises(RuntimeError, match="evaluate"), contextlib.redirect_stdout(io.StringIO()):
        E.accumulate()
    with pytest.raises(RuntimeError, match="accumulate"):
        E.summarize()


def test_coco_module_imports_no_torch():
    code = (
        "import sys, dt_eval, dt_eval.coco\n"
        "bad = sorted(m for m in ('torch', 'cv2', 'dt_ops', 'dt_structures') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"importing dt_eval.coco pulled in {out}: it must need numpy and the native core only"
