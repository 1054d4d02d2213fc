"""Loading the golden reference cases made with torchvision/detectron2 (see ``data/golden/README.md``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

__all__ = ["golden_cases"]

GOLDEN_DIR = Path(__file__).resolve().parent / "data" / "golden"


def golden_cases(name: str) -> list:
    """pytest params, one per case of ``<name>.pt``; missing golden files are an error, not a skip."""
    path = GOLDEN_DIR / f"{name}.pt"
    if not path.exists():
        raise FileNotFoundError(f"golden file {path} not found (it belongs to the repository: restore it)")
    cases = torch.load(path, weights_only=True)
    cases = cases if isinstance(cases, list) else [cases]
    return [pytest.param(case, id=f"{name}-{i}") for i, case in enumerate(cases)]
