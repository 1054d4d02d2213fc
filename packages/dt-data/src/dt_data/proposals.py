"""Precomputed proposals (detectron2's proposal-file format), loaded without executing code."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import numpy as np

from dt_structures import BoxMode

__all__ = ["load_proposals_into_dataset"]

logger = logging.getLogger(__name__)

_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("collections", "OrderedDict"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Only numpy arrays/dtypes and plain containers: a proposal file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (module == "numpy" and name.endswith("DType")):
            return super().find_class(module, name)
        if module == "numpy.dtypes":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"proposal file refers to {module}.{name}, which is not allowed")


def load_proposals_into_dataset(dataset_dicts: list[dict], proposal_file: str) -> list[dict]:
    """Return copies of ``dataset_dicts`` with ``proposal_boxes`` (``ndarray[K, 4]``, sorted by
    decreasing score), ``proposal_objectness_logits`` (``ndarray[K]``) and ``proposal_bbox_mode`` from
    a pickled dict with ``ids`` (or ``indexes``), ``boxes``, ``objectness_logits`` (or ``scores``) and
    optional ``bbox_mode`` (default XYXY_ABS). Every image must have proposals."""
    try:
        with open(proposal_file, "rb") as f:
            proposals = _SafeUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise FileNotFoundError(f"proposal file not found: {proposal_file}") from None
    except (pickle.UnpicklingError, EOFError) as e:
        raise ValueError(f"{proposal_file}: not a valid proposal file ({e})") from None
    if not isinstance(proposals, dict):
        raise ValueError(f"{proposal_file}: expected a dict, got {type(proposals).__name__}")
    for old, new in (("indexes", "ids"), ("scores", "objectness_logits")):
        if old in proposals:
            proposals[new] = proposals.pop(old)
    missing = {"ids", "boxes", "objectness_logits"} - set(proposals)
    if missing:
        raise ValueError(f"{proposal_file}: missing keys {sorted(missing)}")
    index = {str(image_id): i for i, image_id in enumerate(proposals["ids"])}
    bbox_mode = BoxMode(proposals.get("bbox_mode", BoxMode.XYXY_ABS))
    out = []
    for record in dataset_dicts:
        key = str(record["image_id"])
        if key not in index:
            raise ValueError(f"{proposal_file}: no proposals for image_id={record['image_id']}")
        i = index[key]
        boxes = np.asarray(proposals["boxes"][i])
        logits = np.asarray(proposals["objectness_logits"][i])
        order = logits.argsort()[::-1]
        out.append(
            dict(
                record,
                proposal_boxes=boxes[order],
                proposal_objectness_logits=logits[order],
                proposal_bbox_mode=bbox_mode,
            )
        )
    logger.info("Loaded proposals for %d images from %s", len(out), proposal_file)
    return out
