"""Tiny DeepLab configs shared by the tests (narrow widths, so a forward pass takes milliseconds)."""

from __future__ import annotations

from typing import Any

TINY_BACKBONE = {
    "name": "DeepLabResNet",
    "depth": 50,
    "stem_out_channels": 8,
    "res2_out_channels": 16,
    "width_per_group": 4,
    "out_features": ["res2", "res5"],
}


def tiny_model_config(head: dict[str, Any] | None = None, **backbone: Any) -> dict[str, Any]:
    """Plain data of a narrow ``DeepLabSegmentor`` (DeepLabV3+ head by default, 5 classes)."""
    head = head or {
        "name": "DeepLabV3PlusHead",
        "num_classes": 5,
        "project_channels": [8],
        "convs_dim": 16,
        "aspp_channels": 16,
    }
    return {"name": "DeepLabSegmentor", "backbone": TINY_BACKBONE | backbone, "sem_seg_head": head}
