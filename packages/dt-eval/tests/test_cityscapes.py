"""Cityscapes evaluators on a two-image synthetic gtFine folder (official scripts underneath)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cityscapesscripts")

from cityscapesscripts.helpers.labels import name2label

from dt_eval.cityscapes_evaluation import CityscapesInstanceEvaluator, CityscapesSemSegEvaluator

H, W = 64, 128
NAMES = ["aachen_000000_000019", "aachen_000001_000019"]


def _scene(k: int):
    """Label ids, instance ids, and the car/person instances of image k."""
    labels = np.full((H, W), name2label["road"].id, dtype=np.uint8)
    labels[: H // 2] = name2label["sky"].id
    inst = labels.astype(np.uint16).copy()
    objects = []
    for j, (name, x0) in enumerate((("car", 10 + 5 * k), ("person", 70))):
        mask = np.zeros((H, W), dtype=bool)
        mask[20:50, x0 : x0 + 30] = True
        labels[mask] = name2label[name].id
        inst[mask] = name2label[name].id * 1000 + j
        objects.append((name, mask))
    return labels, inst, objects


@pytest.fixture(scope="module")
def gt_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("gtFine") / "val"
    (root / "aachen").mkdir(parents=True)
    for k, name in enumerate(NAMES):
        labels, inst, _ = _scene(k)
        Image.fromarray(labels).save(root / "aachen" / f"{name}_gtFine_labelIds.png")
        Image.fromarray(inst).save(root / "aachen" / f"{name}_gtFine_instanceIds.png")
    return str(root)


def _inputs():
    return [{"file_name": f"leftImg8bit/val/aachen/{n}_leftImg8bit.png", "image_id": n} for n in NAMES]


def test_semantic_perfect_and_imperfect(gt_dir):
    from cityscapesscripts.helpers.labels import id2label

    ev = CityscapesSemSegEvaluator(gt_dir=gt_dir)
    outputs = []
    for k in range(2):
        labels, _, _ = _scene(k)
        train = np.vectorize(lambda i: id2label[int(i)].trainId)(labels)
        outputs.append({"sem_seg": (np.arange(19)[:, None, None] == train[None]).astype(np.float32)})
    ev.process(_inputs(), outputs)
    res = ev.evaluate()["sem_seg"]
    assert res["IoU"] == pytest.approx(100) and res["IoU_sup"] == pytest.approx(100)
    ev.reset()
    outputs[0]["sem_seg"] = outputs[0]["sem_seg"][::-1].copy()  # wrong classes on image 0
    ev.process(_inputs(), outputs)
    assert ev.evaluate()["sem_seg"]["IoU"] < 90


def test_instances_perfect(gt_dir):
    ev = CityscapesInstanceEvaluator(gt_dir=gt_dir, metadata={"thing_classes": ["person", "car"]})

    class Inst:
        def __init__(self, objects):
            self.pred_classes = np.array([{"person": 0, "car": 1}[n] for n, _ in objects])
            self.scores = np.array([0.9, 0.8])
            self.pred_masks = np.stack([m for _, m in objects])

    ev.process(_inputs(), [{"instances": Inst(_scene(k)[2])} for k in range(2)])
    res = ev.evaluate()["segm"]
    assert res["AP"] == pytest.approx(100) and res["AP50"] == pytest.approx(100)
