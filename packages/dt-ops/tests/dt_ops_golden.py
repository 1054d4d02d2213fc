"""Loading the golden reference cases made with torchvision/detectron2 (see the golden README)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

__all__ = ["golden_cases"]

# The golden folder sits beside the repository (../shared/golden); DT_GOLDEN points elsewhere.
_BESIDE_REPO = Path(__file__).resolve().parents[4] / "shared" / "golden"
GOLDEN_DIR = Path(os.environ.get("DT_GOLDEN", _BESIDE_REPO)) / "ops"


def golden_cases(name: str) -> list:
    """pytest params, one per case of ``<name>.pt``; missing golden files are an error, not a skip."""
    path = GOLDEN_DIR / f"{name}.pt"
    if not path.exists():
        raise FileNotFoundError(f"golden file {path} not found (set DT_GOLDEN to the golden folder)")
    cases = torch.load(path, weights_only=True)
    cases = cases if isinstance(cases, list) else [cases]
    return [pytest.param(case, id=f"{name}-{i}") for i, case in enumerate(cases)]
