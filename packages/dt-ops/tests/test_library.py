"""torch.library integration of every op: opcheck, torch.compile(fullgraph=True), torch.export."""

import pytest
import torch
from dt_ops_inputs import random_boxes, random_rois, random_rotated_boxes

import dt_ops


def _op_cases():
    """(name, op overload, args) for opcheck; gradients are checked for float64 inputs that require grad."""
    boxes = random_boxes(40, torch.float64)
    scores = torch.rand(40, dtype=torch.float64)
    idxs = torch.randint(0, 3, (40,))
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64, requires_grad=True)
    rois = random_rois(5, 2, 9, 11, torch.float64)
    rboxes = random_rotated_boxes(30, torch.float64, size=30.0)
    rscores, ridxs = torch.rand(30, dtype=torch.float64), torch.randint(0, 3, (30,))
    rrois = torch.cat(
        [torch.zeros(4, 1, dtype=torch.float64), random_rotated_boxes(4, torch.float64, 10.0)], 1
    )
    dx = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    dw = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    doff = torch.randn(1, 18, 4, 5, dtype=torch.float64, requires_grad=True)
    dmask = torch.rand(1, 9, 4, 5, dtype=torch.float64, requires_grad=True)
    db = torch.randn(4, dtype=torch.float64, requires_grad=True)
    ones = (1, 1, 1, 1, 1, 1)  # stride, padding, dilation
    return [
        ("nms", torch.ops.dt.nms.default, (boxes, scores, 0.5)),
        ("batched_nms", torch.ops.dt.batched_nms.default, (boxes, scores, idxs, 0.5)),
        ("box_iou", torch.ops.dt.box_iou.default, (boxes, boxes[:7])),
        ("roi_align", torch.ops.dt.roi_align.default, (x, rois, 0.5, 3, 2, 2, True)),
        ("roi_align_legacy", torch.ops.dt.roi_align.default, (x, rois, 1.0, 2, 3, -1, False)),
        ("roi_align_backward", torch.ops.dt.roi_align_backward.default,
         (torch.randn(5, 3, 2, 2, dtype=torch.float64), rois, 1.0, 2, 3, 9, 11, 2, True, False)),
        ("roi_align_backward_channels_last", torch.ops.dt.roi_align_backward.default,
         (torch.randn(5, 3, 2, 2, dtype=torch.float64), rois, 1.0, 2, 3, 9, 11, 2, True, True)),
        ("roi_pool", torch.ops.dt.roi_pool.default, (x, rois, 0.5, 2, 3)),
        ("box_iou_rotated", torch.ops.dt.box_iou_rotated.default, (rboxes, rboxes[:5])),
        ("nms_rotated", torch.ops.dt.nms_rotated.default, (rboxes, rscores, 0.3)),
        ("batched_nms_rotated", torch.ops.dt.batched_nms_rotated.default, (rboxes, rscores, ridxs, 0.3)),
        ("roi_align_rotated", torch.ops.dt.roi_align_rotated.default, (x, rrois, 0.5, 2, 3, 2)),
        ("deform_conv2d_v1", torch.ops.dt.deform_conv2d.default, (dx, dw, doff, None, db, *ones)),
        ("deform_conv2d_v2", torch.ops.dt.deform_conv2d.default, (dx, dw, doff, dmask, None, *ones)),
        ("deform_conv2d_backward", torch.ops.dt.deform_conv2d_backward.default,
         (torch.randn(1, 4, 4, 5, dtype=torch.float64), *(t.detach() for t in (dx, dw, doff, dmask)), *ones)),
    ]  # fmt: skip


@pytest.mark.parametrize(("name", "op", "args"), _op_cases(), ids=[c[0] for c in _op_cases()])
def test_opcheck(name, op, args):
    torch.library.opcheck(op, args)


def _detector_tail(features, rois, boxes, scores, idxs):
    pooled = dt_ops.roi_align(features, rois, 2, 0.5, 2, True)
    keep = dt_ops.batched_nms(boxes, scores, idxs, 0.5)
    keep_all = dt_ops.nms(boxes, scores, 0.5)
    return pooled.sum(dim=(1, 2, 3)), boxes[keep], keep_all, dt_ops.box_iou(boxes, boxes[:3])


def _tail_inputs():
    features = torch.randn(2, 4, 10, 12, requires_grad=True)
    return features, random_rois(6, 2, 20, 24), random_boxes(30), torch.rand(30), torch.randint(0, 3, (30,))


def test_compile_fullgraph_matches_eager():
    inputs = _tail_inputs()
    compiled = torch.compile(_detector_tail, fullgraph=True, backend="aot_eager")
    for got, want in zip(compiled(*inputs), _detector_tail(*inputs), strict=True):
        torch.testing.assert_close(got, want)
    grad = torch.autograd.grad(compiled(*inputs)[0].sum(), inputs[0])[0]
    torch.testing.assert_close(grad, torch.autograd.grad(_detector_tail(*inputs)[0].sum(), inputs[0])[0])


def test_compile_inductor_nms_and_roi_align():
    def fn(features, rois, boxes, scores):
        return dt_ops.roi_align(features, rois, 2, aligned=True), dt_ops.nms(boxes, scores, 0.3)

    args = (torch.randn(1, 2, 8, 8), random_rois(3, 1, 8, 8), random_boxes(50), torch.rand(50))
    compiled = torch.compile(fn, fullgraph=True)
    for got, want in zip(compiled(*args), fn(*args), strict=True):
        torch.testing.assert_close(got, want)


def _rotated_and_deform(x, offset, mask, weight, rrois, rboxes, rscores, ridxs, rois):
    y = dt_ops.deform_conv2d(x, offset, weight, padding=1, mask=mask)
    pooled = dt_ops.roi_align_rotated(y, rrois, 2, 1.0, 2) + dt_ops.roi_pool(y, rois, 2)
    keep = dt_ops.nms_rotated(rboxes, rscores, 0.3)
    keep_batched = dt_ops.batched_nms_rotated(rboxes, rscores, ridxs, 0.3)
    return pooled, rboxes[keep], keep_batched, dt_ops.box_iou_rotated(rboxes, rboxes[:2])


def test_compile_fullgraph_rotated_roi_pool_and_deform_conv():
    x = torch.randn(1, 4, 8, 9, requires_grad=True)
    offset = torch.randn(1, 18, 8, 9, requires_grad=True)
    args = (
        x, offset, torch.rand(1, 9, 8, 9), torch.randn(4, 4, 3, 3),
        torch.tensor([[0, 4.0, 4, 4, 3, 30]]), random_rotated_boxes(20, size=20.0), torch.rand(20),
        torch.randint(0, 2, (20,)), random_rois(3, 1, 8, 9),
    )  # fmt: skip
    compiled = torch.compile(_rotated_and_deform, fullgraph=True, backend="aot_eager")
    got, want = compiled(*args), _rotated_and_deform(*args)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
    grads = torch.autograd.grad(got[0].sum(), (x, offset))
    for a, b in zip(grads, torch.autograd.grad(want[0].sum(), (x, offset)), strict=True):
        torch.testing.assert_close(a, b)


class _Tail(torch.nn.Module):
    def forward(self, features, rois, boxes, scores, idxs):
        return _detector_tail(features, rois, boxes, scores, idxs)


def test_export_with_data_dependent_nms_output():
    inputs = tuple(t.detach() for t in _tail_inputs())
    n = torch.export.Dim("n", min=3)  # box_iou uses boxes[:3]
    dynamic = {"features": None, "rois": None, "boxes": {0: n}, "scores": {0: n}, "idxs": {0: n}}
    exported = torch.export.export(_Tail(), inputs, dynamic_shapes=dynamic)
    ops = {str(node.target) for node in exported.graph.nodes if node.op == "call_function"}
    assert {"dt.nms.default", "dt.batched_nms.default", "dt.roi_align.default", "dt.box_iou.default"} <= ops
    other = (inputs[0], inputs[1], random_boxes(50, size=30.0), torch.rand(50), torch.randint(0, 3, (50,)))
    for args in (inputs, other):
        for got, want in zip(exported.module()(*args), _detector_tail(*args), strict=True):
            torch.testing.assert_close(got, want)


def test_torchscript_trace():
    x, rois = torch.randn(1, 2, 8, 8), random_rois(3, 1, 8, 8)
    traced = torch.jit.trace(lambda f, r: dt_ops.roi_align(f, r, 2, aligned=True), (x, rois))
    torch.testing.assert_close(traced(x, rois), dt_ops.roi_align(x, rois, 2, aligned=True))
