"""Scoped aliases for numpy names that unmaintained reference packages (lvis 0.5, cityscapesscripts
2.x) still use but numpy >= 1.24 / 2.x removed. Added only for the duration of their call."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

__all__ = ["legacy_numpy_names"]


def _in1d(ar1, ar2, assume_unique: bool = False, invert: bool = False) -> np.ndarray:
    return np.isin(np.asarray(ar1).ravel(), ar2, assume_unique=assume_unique, invert=invert)


_LEGACY = {"float": float, "int": int, "bool": bool, "in1d": _in1d}


@contextlib.contextmanager
def legacy_numpy_names() -> Iterator[None]:
    """Provide ``np.float``, ``np.int``, ``np.bool`` and ``np.in1d`` where numpy lacks them."""
    added = [name for name in _LEGACY if name not in np.__dict__]
    for name in added:
        setattr(np, name, _LEGACY[name])
    try:
        yield
    finally:
        for name in added:
            delattr(np, name)
