"""Running pycocotools' and dt's COCOeval side by side."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

import numpy as np
from dteval_synth import load
from pycocotools.cocoeval import COCOeval as RefCOCOeval

from dt_eval.coco import COCOeval


def run(cls, coco_gt, coco_dt, iou_type: str, setup: Callable | None = None):
    E = cls(coco_gt, coco_dt, iou_type)
    if setup is not None:
        setup(E.params)
    with contextlib.redirect_stdout(io.StringIO()):
        E.evaluate()
        E.accumulate()
        E.summarize()
    return E


def run_both(gt: dict, results: list, iou_type: str, setup: Callable | None = None):
    """(pycocotools COCOeval, dt COCOeval), each on its own fresh COCO objects."""
    ref = run(RefCOCOeval, *load(gt, results, iou_type), iou_type, setup)
    ours = run(COCOeval, *load(gt, results, iou_type), iou_type, setup)
    return ref, ours


def assert_same_eval(ref, ours) -> None:
    for key in ("precision", "recall", "scores"):
        a, b = ref.eval[key], ours.eval[key]
        assert a.shape == b.shape, key
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-12, err_msg=key)
    np.testing.assert_allclose(np.asarray(ours.stats), np.asarray(ref.stats), rtol=0, atol=1e-12)
