"""Lowering of dt-ops' custom ops (``torch.ops.dt.*``) to standard ONNX operators.

Passed to ``torch.onnx.export(..., custom_translation_table=ONNX_TRANSLATIONS)`` so that the
exported model needs no custom-op library in onnxruntime:

- ``dt::roi_align`` -> ``RoiAlign`` (avg mode; ``aligned=True`` is ``half_pixel``, ``False`` is
  ``output_half_pixel``, which also keeps rois at least 1x1 as torchvision does; ``sampling_ratio <= 0``
  is ONNX's adaptive ``0``: ``ceil(roi_size / output_size)`` samples per bin).
- ``dt::nms`` -> ``NonMaxSuppression`` on one batch and one class; its selected indices come in
  decreasing score order, as dt's do.
- ``dt::batched_nms`` -> the same on boxes shifted by ``class * (max coordinate + 1)``, so boxes of
  different classes never overlap (torchvision's coordinate offset trick).

One aten op is translated here as well: ``scaled_dot_product_attention`` on 3-D inputs (dt's ViT and
MViTv2 attend over ``[B * heads, N, head_dim]``), which torch.onnx's own translation refuses (it takes
4-D inputs only): that translation on a leading axis of size 1.
"""

from __future__ import annotations

import onnx_ir
import torch
from onnxscript import FLOAT, INT64
from onnxscript import opset18 as op
from onnxscript.function_libs.torch_lib.ops.nn import aten_scaled_dot_product_attention

__all__ = ["ONNX_OPSET", "ONNX_TRANSLATIONS"]

ONNX_OPSET = 18


def _nms_indices(boxes, scores, iou_threshold: float):
    """``NonMaxSuppression`` of ``boxes`` ``[N, 4]`` and ``scores`` ``[N]`` -> kept indices ``[K]`` int64."""
    max_boxes = op.Constant(value_ints=[2**62])
    threshold = op.Constant(value_floats=[iou_threshold])
    selected = op.NonMaxSuppression(
        op.Unsqueeze(boxes, [0]), op.Unsqueeze(scores, [0, 1]), max_boxes, threshold
    )  # [K, 3]: (batch, class, box index)
    return op.Reshape(op.Gather(selected, [2], axis=1), [-1])


def dt_nms(boxes: FLOAT, scores: FLOAT, iou_threshold: float) -> INT64:
    return _nms_indices(boxes, scores, iou_threshold)


def dt_batched_nms(boxes: FLOAT, scores: FLOAT, idxs: INT64, iou_threshold: float) -> INT64:
    # the 0 keeps ReduceMax defined when there are no boxes
    zero = op.Constant(value_floats=[0.0])
    largest = op.ReduceMax(op.Concat(op.Reshape(boxes, [-1]), zero, axis=0), keepdims=1)  # [1]
    offsets = op.Mul(op.Cast(idxs, to=1), op.Add(largest, op.Constant(value_floats=[1.0])))  # [N]
    shifted = op.Add(boxes, op.Unsqueeze(offsets, [1]))
    return _nms_indices(shifted, scores, iou_threshold)


def dt_roi_align(
    input: FLOAT,
    rois: FLOAT,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int,
    aligned: bool,
) -> FLOAT:
    batch_indices = op.Cast(op.Reshape(op.Slice(rois, [0], [1], [1]), [-1]), to=7)
    boxes = op.Slice(rois, [1], [5], [1])
    return op.RoiAlign(
        input, boxes, batch_indices, mode="avg", output_height=pooled_height, output_width=pooled_width,
        sampling_ratio=max(sampling_ratio, 0), spatial_scale=spatial_scale,
        coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
    )  # fmt: skip


def _with_leading_axis(tensor):
    """``tensor`` ``[...]`` as ``[1, ...]``, its shape known to the translation functions that read it."""
    out = op.Unsqueeze(tensor, [0])
    out.shape = onnx_ir.Shape([1, *tensor.shape])
    return out


def scaled_dot_product_attention(
    query: FLOAT, key: FLOAT, value: FLOAT, attn_mask: FLOAT | None = None, dropout_p: float = 0.0,
    is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False,
) -> FLOAT:  # fmt: skip
    if len(query.shape) != 3:
        return aten_scaled_dot_product_attention(
            query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa
        )
    query, key, value = (_with_leading_axis(t) for t in (query, key, value))  # [1, B, N, D]
    if attn_mask is not None:
        attn_mask = _with_leading_axis(attn_mask)
    out = aten_scaled_dot_product_attention(
        query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa
    )
    return op.Squeeze(out, [0])


ONNX_TRANSLATIONS = {
    torch.ops.aten.scaled_dot_product_attention.default: scaled_dot_product_attention,
    torch.ops.dt.nms.default: dt_nms,
    torch.ops.dt.batched_nms.default: dt_batched_nms,
    torch.ops.dt.roi_align.default: dt_roi_align,
}
