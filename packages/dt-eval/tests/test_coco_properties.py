"""Randomized comparisons with pycocotools: rasterization, RLE boxes, and whole evaluations."""

from __future__ import annotations

import numpy as np
from dteval_compare import assert_same_eval, run_both
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from dt_eval import _C

coords = st.floats(min_value=-20, max_value=80, allow_nan=False, width=32)
polygon = st.lists(st.tuples(coords, coords), min_size=3, max_size=9).map(
    lambda pts: [c for p in pts for c in p]
)


@settings(max_examples=150, deadline=None)
@given(polys=st.lists(polygon, min_size=1, max_size=3), h=st.integers(1, 60), w=st.integers(1, 60))
def test_polygon_rasterization_is_bit_exact(polys, h, w):
    expected = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    counts = _C.polygons_to_rle(polys, h, w)
    ours = mask_utils.frPyObjects({"size": [h, w], "counts": counts.tolist()}, h, w)
    assert ours["counts"] == expected["counts"]


@settings(max_examples=150, deadline=None)
@given(runs=st.lists(st.integers(0, 7), min_size=0, max_size=12), h=st.integers(1, 6))
def test_rle_bbox_matches_pycocotools(runs, h):
    total = sum(runs)
    w = max(1, -(-total // h))
    runs = [*runs, h * w - total]
    rle = mask_utils.frPyObjects({"size": [h, w], "counts": runs}, h, w)
    expected = mask_utils.toBbox(rle)
    np.testing.assert_array_equal(_C.rle_bbox(np.asarray(runs, dtype=np.uint32), h, w), expected)


box = st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 30), st.integers(0, 30)).map(
    lambda b: [float(v) for v in b]
)


def _shape(b: list[float], cut: int) -> list[float]:
    """Polygon inside box b: the box itself or a triangle (cut selects which)."""
    x, y, w, h = b
    if cut == 0:
        return [x, y, x + w, y, x + w, y + h, x, y + h]
    return [x, y, x + w, y + h / 2, x + w / 3, y + h]


def _kpts(draw, b: list[float]) -> list[float]:
    x, y, w, h = b
    out = []
    for _ in range(NUM_KPTS):
        out += [
            x + draw(st.integers(0, 10)) * w / 10,
            y + draw(st.integers(0, 10)) * h / 10,
            draw(st.sampled_from([0, 2])),
        ]
    return out


NUM_KPTS = 3


@st.composite
def small_sets(draw):
    """A few 80x80 images with boxes, polygon/RLE masks and 3 keypoints; crowds, odd areas, tied scores."""
    num_images = draw(st.integers(1, 4))
    images = [{"id": i + 1, "height": 80, "width": 80} for i in range(num_images)]
    cats = [{"id": c, "name": str(c), "keypoints": ["a", "b", "c"]} for c in (1, 2)]
    anns, results = [], []
    for img in images:
        for _ in range(draw(st.integers(0, 4))):
            b = draw(box)
            kpts = _kpts(draw, b)
            ann = {"id": len(anns) + 1, "image_id": img["id"], "category_id": draw(st.sampled_from([1, 2]))}
            ann["bbox"] = b
            ann["area"] = draw(st.sampled_from([b[2] * b[3], 500.0, 5000.0, 20000.0]))
            ann["iscrowd"] = int(draw(st.integers(0, 5)) == 0)
            ann["segmentation"] = [_shape(b, draw(st.integers(0, 1)))]
            ann["keypoints"] = kpts
            ann["num_keypoints"] = sum(v > 0 for v in kpts[2::3])
            anns.append(ann)
        for _ in range(draw(st.integers(0, 5))):
            b = draw(box)
            rle = mask_utils.merge(mask_utils.frPyObjects([_shape(b, draw(st.integers(0, 1)))], 80, 80))
            result = {"image_id": img["id"], "category_id": draw(st.sampled_from([1, 2])), "bbox": b}
            result["score"] = draw(st.sampled_from([0.1, 0.5, 0.5, 0.9, 1.0]))
            result["segmentation"] = {"size": [80, 80], "counts": rle["counts"].decode()}
            result["keypoints"] = _kpts(draw, b)
            results.append(result)
    return {"images": images, "annotations": anns, "categories": cats}, results


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=small_sets(),
    use_cats=st.sampled_from([0, 1]),
    iou_type=st.sampled_from(["bbox", "segm", "keypoints"]),
)
def test_random_small_sets_equal_pycocotools(data, use_cats, iou_type):
    gt, results = data

    def setup(p):
        p.useCats = use_cats
        if iou_type == "keypoints":
            p.kpt_oks_sigmas = np.array([0.5, 0.8, 1.0])

    assert_same_eval(*run_both(gt, results, iou_type, setup))
