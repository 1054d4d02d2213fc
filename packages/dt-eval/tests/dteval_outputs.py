"""Model-style inputs/outputs (dt_structures.Instances) made from COCO results."""

from __future__ import annotations

import numpy as np
import torch
from pycocotools import mask as mask_utils

from dt_structures import Boxes, Instances


def metadata_of(gt: dict) -> dict:
    """Metadata with contiguous ids for the categories of a COCO dict."""
    ids = sorted(c["id"] for c in gt["categories"])
    return {
        "thing_classes": [f"c{i}" for i in range(len(ids))],
        "thing_dataset_id_to_contiguous_id": {d: i for i, d in enumerate(ids)},
    }


def model_outputs(gt: dict, results: list, with_masks: bool = True) -> tuple[list, list]:
    """Model-style outputs (contiguous class ids, XYXY boxes, bool masks) per image."""
    meta = metadata_of(gt)
    images = {im["id"]: im for im in gt["images"]}
    per_image = {i: [] for i in images}
    for r in results:
        per_image[r["image_id"]].append(r)
    inputs, outputs = [], []
    for img_id, rs in per_image.items():
        im = images[img_id]
        inst = Instances((im["height"], im["width"]))
        boxes = torch.tensor([r["bbox"] for r in rs], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        inst.pred_boxes = Boxes(boxes)
        inst.scores = torch.tensor([r["score"] for r in rs], dtype=torch.float32)
        inst.pred_classes = torch.tensor(
            [meta["thing_dataset_id_to_contiguous_id"][r["category_id"]] for r in rs], dtype=torch.int64
        )
        if with_masks:
            masks = [mask_utils.decode(r["segmentation"]).astype(bool) for r in rs]
            inst.pred_masks = (
                torch.from_numpy(np.stack(masks))
                if masks
                else torch.zeros(0, im["height"], im["width"], dtype=torch.bool)
            )
        inputs.append({"image_id": img_id, "height": im["height"], "width": im["width"]})
        outputs.append({"instances": inst})
    return inputs, outputs
