"""dt-ops' custom ops lowered to standard ONNX ops give dt-ops' results in onnxruntime."""

from __future__ import annotations

import onnx
import onnxruntime
import pytest
import torch
from torch import nn

import dt_ops
from dt_export.onnx_ops import ONNX_OPSET, ONNX_TRANSLATIONS


class _Ops(nn.Module):
    """ROIAlign of ``rois`` on ``features`` (half-pixel adaptive, legacy with 2 and adaptive samples),
    NMS and per-class NMS of the same boxes."""

    def forward(self, features, rois, scores, classes):
        pooled = [
            dt_ops.roi_align(features, rois, (5, 4), 0.5, sampling_ratio, aligned=aligned)
            for aligned, sampling_ratio in ((True, 0), (False, 2), (False, -1))
        ]
        boxes = rois[:, 1:]
        return *pooled, dt_ops.nms(boxes, scores, 0.5), dt_ops.batched_nms(boxes, scores, classes, 0.5)


def _inputs(count: int, generator: torch.Generator):
    xy = torch.rand(count, 2, generator=generator) * 25
    wh = torch.rand(count, 2, generator=generator) * 20 + 0.3  # some boxes under a pixel at scale 0.5
    rois = torch.cat([torch.randint(0, 2, (count, 1), generator=generator).float(), xy, xy + wh], dim=1)
    features = torch.randn(2, 3, 24, 30, generator=generator)
    scores = torch.rand(count, generator=generator)
    return features, rois, scores, torch.randint(0, 3, (count,), generator=generator)


@pytest.mark.slow
def test_lowered_ops_match_dt_ops_in_onnxruntime(tmp_path):
    generator = torch.Generator().manual_seed(0)
    module = _Ops()
    count = torch.export.Dim("count", min=2, max=1000)
    program = torch.export.export(
        module, _inputs(40, generator),
        dynamic_shapes={"features": None, "rois": {0: count}, "scores": {0: count}, "classes": {0: count}},
    )  # fmt: skip
    path = tmp_path / "ops.onnx"
    torch.onnx.export(
        program, dynamo=True, custom_translation_table=ONNX_TRANSLATIONS, opset_version=ONNX_OPSET
    ).save(str(path))
    assert {node.domain for node in onnx.load(str(path)).graph.node} <= {""}
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in (40, 75):  # another number of boxes than the export's
        inputs = _inputs(size, generator)
        feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs, strict=True)}
        *pooled, keep, keep_batched = session.run(None, feeds)
        *expected_pooled, expected_keep, expected_keep_batched = module(*inputs)
        for got, expected in zip(pooled, expected_pooled, strict=True):
            assert (torch.from_numpy(got) - expected).abs().max() <= 1e-5
        assert torch.equal(torch.from_numpy(keep), expected_keep)
        assert torch.equal(torch.from_numpy(keep_batched), expected_keep_batched)
        assert len(keep) < len(keep_batched) < size  # both suppress, per class less
