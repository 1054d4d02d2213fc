"""nms, batched_nms and box_iou against the pure-PyTorch references."""

import pytest
import torch
from dt_ops_inputs import non_contiguous, random_boxes
from dt_ops_reference import batched_nms_ref, box_iou_ref, nms_ref
from hypothesis import given, settings
from hypothesis import strategies as st

import dt_ops

DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.7])
def test_nms_matches_reference(dtype, contiguous, threshold):
    boxes = random_boxes(300, dtype, degenerate=True)
    scores = torch.rand(300, dtype=dtype).round(decimals=1)  # many ties
    if not contiguous:
        boxes, scores = non_contiguous(boxes), scores.repeat_interleave(2)[::2]
    assert torch.equal(dt_ops.nms(boxes, scores, threshold), nms_ref(boxes, scores, threshold))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batched_nms_matches_reference(dtype):
    boxes = random_boxes(400, dtype)
    scores = torch.rand(400, dtype=dtype)
    idxs = torch.randint(-2, 5, (400,))
    assert torch.equal(
        dt_ops.batched_nms(boxes, scores, idxs, 0.4), batched_nms_ref(boxes, scores, idxs, 0.4)
    )


def test_batched_nms_accepts_any_integer_idxs():
    boxes, scores = random_boxes(50), torch.rand(50)
    idxs = torch.randint(0, 3, (50,))
    want = dt_ops.batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(dt_ops.batched_nms(boxes, scores, idxs.int(), 0.5), want)
    assert torch.equal(dt_ops.batched_nms(boxes, scores, idxs.to(torch.uint8), 0.5), want)


def test_nms_large_parallel_path_matches_reference():
    # > 256 boxes crosses the serial block; many overlaps exercise suppression across blocks.
    boxes = random_boxes(2000, size=60.0)
    scores = torch.rand(2000)
    assert torch.equal(dt_ops.nms(boxes, scores, 0.5), nms_ref(boxes, scores, 0.5))


def test_nms_keeps_nan_scores_first_like_torch_sort():
    boxes = torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    scores = torch.tensor([0.5, float("nan")])
    assert dt_ops.nms(boxes, scores, 0.5).tolist() == [1, 0]


@pytest.mark.parametrize("fn", ["nms", "batched_nms"])
def test_nms_empty(fn):
    boxes, scores, idxs = torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64)
    args = (boxes, scores, idxs, 0.5) if fn == "batched_nms" else (boxes, scores, 0.5)
    keep = getattr(dt_ops, fn)(*args)
    assert keep.shape == (0,) and keep.dtype == torch.int64


def test_nms_identical_boxes_keep_highest_score():
    boxes = torch.tensor([[0.0, 0, 10, 10]] * 3)
    assert dt_ops.nms(boxes, torch.tensor([0.1, 0.9, 0.5]), 0.5).tolist() == [1]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("contiguous", [True, False])
def test_box_iou_matches_reference(dtype, contiguous):
    a, b = random_boxes(37, dtype, degenerate=True), random_boxes(23, dtype, degenerate=True)
    if not contiguous:
        a, b = non_contiguous(a), non_contiguous(b)
    torch.testing.assert_close(dt_ops.box_iou(a, b), box_iou_ref(a, b), equal_nan=True, atol=0, rtol=0)


def test_box_iou_empty_and_zero_area():
    assert dt_ops.box_iou(torch.zeros(0, 4), random_boxes(3)).shape == (0, 3)
    assert dt_ops.box_iou(random_boxes(3), torch.zeros(0, 4)).shape == (3, 0)
    point = torch.tensor([[1.0, 1, 1, 1]])
    assert dt_ops.box_iou(point, torch.tensor([[0.0, 0, 2, 2]])).item() == 0.0
    assert dt_ops.box_iou(point, point).isnan().item()  # 0 / 0, as torchvision


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: dt_ops.nms(torch.zeros(3, 5), torch.zeros(3), 0.5), ValueError, "boxes must have 4 values"),
        (
            lambda: dt_ops.nms(torch.zeros(3, 4), torch.zeros(4), 0.5),
            ValueError,
            "scores must have one entry",
        ),
        (
            lambda: dt_ops.nms(torch.zeros(3, 4, dtype=torch.int64), torch.zeros(3), 0.5),
            TypeError,
            "boxes must have dtype",
        ),
        (
            lambda: dt_ops.nms(torch.zeros(3, 4), torch.zeros(3, dtype=torch.float64), 0.5),
            TypeError,
            "same dtype",
        ),
        (lambda: dt_ops.nms([[0, 0, 1, 1]], torch.zeros(1), 0.5), TypeError, "boxes must be a torch.Tensor"),
        (lambda: dt_ops.nms(torch.zeros(3, 4), torch.zeros(3), "0.5"), TypeError, "iou_threshold"),
        (
            lambda: dt_ops.nms(torch.zeros(3, 4), torch.zeros(3, device="meta"), 0.5),
            ValueError,
            "cpu or cuda",
        ),
        (
            lambda: dt_ops.batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(3), 0.5),
            TypeError,
            "idxs must have dtype int64 or int32",
        ),
        (
            lambda: dt_ops.batched_nms(
                torch.zeros(3, 4), torch.zeros(3), torch.zeros(2, dtype=torch.int64), 0.5
            ),
            ValueError,
            "idxs must have one entry",
        ),
        (lambda: dt_ops.box_iou(torch.zeros(3, 4), torch.zeros(3)), ValueError, "boxes2 must be 2-D"),
    ],
)
def test_validation_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_batched_nms_tie_order_follows_torchvision_per_class_path():
    # Above 1000 boxes torchvision orders the kept boxes with torch's descending sort of their scores.
    boxes = random_boxes(1500, size=300.0)
    scores = torch.rand(1500).round(decimals=2)  # many equal scores
    idxs = torch.randint(0, 5, (1500,))
    keep = dt_ops.batched_nms(boxes, scores, idxs, 0.5)
    kept = batched_nms_ref(boxes, scores, idxs, 0.5).sort().values
    assert torch.equal(keep, kept[scores[kept].sort(descending=True).indices])


@settings(max_examples=30, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            *[st.floats(0, 50, width=32)] * 2, *[st.floats(0, 20, width=32)] * 2, st.floats(0, 1, width=32)
        ),
        max_size=40,
    ),
    threshold=st.floats(0.05, 0.95),
)
def test_nms_properties(data, threshold):
    table = torch.tensor(data, dtype=torch.float32).view(-1, 5)
    boxes = torch.cat([table[:, :2], table[:, :2] + table[:, 2:4]], dim=1)
    scores = table[:, 4]
    keep = dt_ops.nms(boxes, scores, threshold)
    iou = box_iou_ref(boxes, boxes)
    kept = set(keep.tolist())
    # kept boxes never overlap each other above the threshold
    for a in kept:
        for b in kept:
            assert a == b or not iou[a, b] > threshold
    # every dropped box is suppressed by a kept box ranked before it
    rank = {i: r for r, i in enumerate(sorted(range(len(scores)), key=lambda i: (-scores[i].item(), i)))}
    for j in set(range(len(scores))) - kept:
        assert any(rank[i] < rank[j] and iou[i, j] > threshold for i in kept)
    assert keep.tolist() == sorted(kept, key=rank.get)
