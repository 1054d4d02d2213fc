"""detectron2's side of ``side_by_side.py``: run with the python of detectron2's venv
(``../shared/detectron2/install-reference.sh``). It builds the case's model with detectron2 and
writes what the dt worker needs to build the same one: ``detectron2_config.yaml`` (``cfg.dump()``)
and, for random weights, ``detectron2_weights.pth`` (``{"model": state_dict}``).

Cases: ``golden`` (the golden narrow Mask R-CNN: its config, weights and ``io.pt`` input),
``full`` (full-width Mask R-CNN R50-FPN, 80 classes, random weights with frozen-BN statistics set
from the input, ``inputs.pt`` image), ``train_step`` (that model, one SGD step on the
``inputs.pt`` batch).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _worker import serve
from inference import calibrate_frozen_bn

FULL_WIDTH = [
    "MODEL.RESNETS.WIDTH_PER_GROUP", 64, "MODEL.RESNETS.RES2_OUT_CHANNELS", 256,
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 64, "MODEL.FPN.OUT_CHANNELS", 256, "MODEL.ROI_BOX_HEAD.FC_DIM", 1024,
    "MODEL.ROI_MASK_HEAD.CONV_DIM", 256, "MODEL.ROI_HEADS.NUM_CLASSES", 80,
]  # fmt: skip


def training_batch(inputs: dict) -> list[dict]:
    from detectron2.structures import Boxes, Instances, PolygonMasks

    batch = []
    for image, boxes, polygons in zip(inputs["images"], inputs["boxes"], inputs["polygons"], strict=True):
        instances = Instances(tuple(image.shape[1:]))
        instances.gt_boxes = Boxes(boxes)
        instances.gt_classes = inputs["classes"]
        instances.gt_masks = PolygonMasks([[np.asarray(p, dtype=np.float64)] for p in polygons])
        batch.append({"image": image, "instances": instances})
    return batch


def setup(case: str, folder: str):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    golden = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "packages", "dt-models")
    golden = os.path.join(golden, "tests", "data", "mask_rcnn_R_50_FPN")
    torch.manual_seed(0)
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(golden, "config.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    if case != "golden":
        cfg.merge_from_list(FULL_WIDTH)
    with open(os.path.join(folder, "detectron2_config.yaml"), "w") as f:
        f.write(cfg.dump())
    model = build_model(cfg).eval()
    if case == "golden":
        DetectionCheckpointer(model).load(os.path.join(golden, "model_final.pkl"))
        io = torch.load(os.path.join(golden, "io.pt"), weights_only=True)
        inputs = [{"image": io["image"], "height": io["height"], "width": io["width"]}]
    else:
        shared = torch.load(os.path.join(folder, "inputs.pt"), weights_only=True)
        if case == "full":
            inputs = [{"image": shared["image"]}]
        else:
            inputs = training_batch(shared)
        from detectron2.layers import Conv2d, FrozenBatchNorm2d

        calibrate_frozen_bn(model, inputs, Conv2d, FrozenBatchNorm2d)
        torch.save({"model": model.state_dict()}, os.path.join(folder, "detectron2_weights.pth"))
    outputs: dict = {}
    if case in ("golden", "full"):

        def run():
            with torch.inference_mode():
                outputs["instances"] = model(inputs)[0]["instances"]

        return run, lambda: {"detections": len(outputs["instances"])}

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.002, momentum=0.9, weight_decay=1e-4)
    storage = EventStorage(0).__enter__()  # detectron2's heads log into the current storage

    def step():
        optimizer.zero_grad(set_to_none=True)
        losses = model(inputs)
        sum(losses.values()).backward()
        optimizer.step()
        storage.iter += 1
        outputs["losses"] = {k: round(v.item(), 4) for k, v in losses.items()}

    return step, lambda: {"losses": outputs["losses"]}


if __name__ == "__main__":
    serve(setup)
