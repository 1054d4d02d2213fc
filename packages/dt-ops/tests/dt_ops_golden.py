"""Loading the golden reference cases made with torchvision/detectron2 (see the golden README)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

__all__ = ["golden_cases"]

GOLDEN_DIR = Path(os.environ.get("DT_GOLDEN_DIR", "/work/shared/golden")) / "ops"


def golden_cases(name: str) -> list:
    """pytest params, one per case of ``<name>.pt``; a single skipped param when the file is absent."""
    path = GOLDEN_DIR / f"{name}.pt"
    if not path.exists():
        return [
            pytest.param(
                None, marks=pytest.mark.skip(reason=f"golden file {path} not found; set DT_GOLDEN_DIR")
            )
        ]
    cases = torch.load(path, weights_only=True)
    cases = cases if isinstance(cases, list) else [cases]
    return [pytest.param(case, id=f"{name}-{i}") for i, case in enumerate(cases)]
