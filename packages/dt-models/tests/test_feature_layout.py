"""The memory layout the backbone gets on CPU: channels-last, except in training on large images
without AVX-512 (where oneDNN's NHWC convolution backward is slower on large maps)."""

import pytest
import torch
from dtm_helpers import tiny_rcnn_config

from dt_models import build_model
from dt_structures import ImageList


@pytest.mark.parametrize(
    ("capability", "training", "side", "channels_last"),
    [
        ("AVX512", True, 416, True),
        ("AVX512", False, 416, True),
        ("AVX2", True, 416, False),
        ("AVX2", True, 160, True),
        ("AVX2", False, 416, True),
    ],
)
def test_backbone_layout(capability, training, side, channels_last, monkeypatch):
    model = build_model(tiny_rcnn_config()).train(training)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    seen = []
    monkeypatch.setattr(model, "backbone", _Recorder(model.backbone, seen))
    model.extract_features(ImageList(torch.randn(1, 3, side, side), [(side, side)]))
    assert seen == [channels_last]


class _Recorder(torch.nn.Module):
    """A backbone that records whether its input is channels-last."""

    def __init__(self, backbone, seen):
        super().__init__()
        self.inner, self.seen = backbone, seen
        self.channels_last_on_cpu = backbone.channels_last_on_cpu

    def forward(self, x):
        self.seen.append(not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last))
        return self.inner(x)
