"""The benchmark cases as data, shared by ``inference.py``, ``train_step.py`` and both workers of
``side_by_side.py`` (dt's, and detectron2's in its own venv: so this module imports only the standard
library, numpy and torch at the top, and each side passes in its own structures and layers).

A case is a model family and a kind. Families: Mask R-CNN R50-FPN, Keypoint R-CNN R50-FPN, Cascade Mask
R-CNN R50-FPN, Faster R-CNN R50-C4, RetinaNet R50-FPN (each with all three kinds), FCOS R50-FPN and
Panoptic FPN R50 (no golden reference: ``full`` and ``train_step`` only). Kinds:

- ``golden``: the family's narrow golden reference of ``packages/dt-models/tests/data/<folder>``
  (detectron2's config dump, weights, the ``io.pt`` input); outputs are checked against detectron2's;
- ``full``: the full-width model of detectron2's zoo config (a YAML copy in
  ``packages/dt-models/tests/data/detectron2_configs``; for FCOS, which detectron2 has only as the
  LazyConfig ``COCO-Detection/fcos_R_50_FPN_1x.py``, dt builds its own ``FCOSConfig``, whose defaults
  are that LazyConfig's), random weights whose frozen-BN statistics are set from the input
  (:func:`calibrate_frozen_bn`), scikit-image's astronaut at 800x800;
- ``train_step``: that model, one SGD step at batch 2 on 512x512 images (the astronaut and its mirror)
  with 3 annotated objects each (boxes and classes, plus polygons or 17 keypoints where the family
  trains on them; Panoptic FPN also a ``sem_seg`` map, :func:`sem_seg_map`).

Case names: Mask R-CNN's are ``golden``, ``full``, ``train_step``; the others prefix the kind with the
family (``keypoint_full``, ``cascade_train_step``, ``c4_golden``, ``retinanet_full``, ``fcos_full``,
``panoptic_train_step``, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "packages" / "dt-models" / "tests" / "data"
ZOO_CONFIGS = DATA / "detectron2_configs"
KINDS = ("golden", "full", "train_step")
GOALS = {"golden": 0.7, "full": 0.7, "train_step": 0.8}  # dt's time over detectron2's, at most

# three objects per training image: (class, XYXY box at 512x512); masks are the boxes' inscribed octagons
OBJECTS = [
    (0, (60.0, 40.0, 300.0, 500.0)),
    (27, (320.0, 200.0, 470.0, 330.0)),
    (56, (30.0, 380.0, 200.0, 505.0)),
]
TRAIN_SIZE, FULL_SIZE, NUM_KEYPOINTS = 512, 800, 17
# the training sem_seg map (detectron2's COCO panoptic "separated" labels): every thing pixel is 0, stuff
# classes count from 1, unlabeled pixels are the heads' ignore value
THINGS_LABEL, STUFF_BANDS, UNLABELED, UNLABELED_FRAME = 0, 4, 255, 16


@dataclass(frozen=True)
class Family:
    """A model family: its golden folder, its zoo config, and what its training batch annotates."""

    prefix: str  # case-name prefix ("" for Mask R-CNN, whose case names predate the others)
    golden: str | None  # folder under DATA, or None: no golden reference (no ``golden`` case)
    # detectron2's zoo config: a YAML under ZOO_CONFIGS (both sides read it), or a LazyConfig ``.py`` of
    # detectron2's model zoo (only detectron2's worker reads it; dt builds ``dt_config``)
    zoo_config: str
    dt_config: dict | None = None  # dt's model config as plain data, for a LazyConfig family
    annotations: tuple[str, ...] = ()  # beyond boxes and classes: "masks", "keypoints", "sem_seg"
    single_class: bool = False  # every object is class 0 (Keypoint R-CNN's one class, person)

    @property
    def lazy(self) -> bool:
        """Whether ``zoo_config`` is a detectron2 LazyConfig."""
        return self.zoo_config.endswith(".py")

    @property
    def kinds(self) -> tuple[str, ...]:
        """The family's case kinds: all of KINDS, but ``golden`` only with a golden reference."""
        return KINDS if self.golden is not None else tuple(k for k in KINDS if k != "golden")


FAMILIES = (
    Family(
        prefix="",
        golden="mask_rcnn_R_50_FPN",
        zoo_config="COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
        annotations=("masks",),
    ),
    Family(
        prefix="keypoint_",
        golden="keypoint_rcnn_R_50_FPN",
        zoo_config="COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml",
        annotations=("keypoints",),
        single_class=True,
    ),
    Family(
        prefix="cascade_",
        golden="cascade_mask_rcnn_R_50_FPN",
        zoo_config="Misc/cascade_mask_rcnn_R_50_FPN_3x.yaml",
        annotations=("masks",),
    ),
    Family(
        prefix="c4_", golden="faster_rcnn_R_50_C4", zoo_config="COCO-Detection/faster_rcnn_R_50_C4_3x.yaml"
    ),
    Family(
        prefix="retinanet_",
        golden="retinanet_R_50_FPN",
        zoo_config="COCO-Detection/retinanet_R_50_FPN_3x.yaml",
    ),
    # FCOSConfig's defaults are detectron2's common/models/fcos.py, freeze_at=2 as the 1x config sets
    Family(
        prefix="fcos_",
        golden=None,
        zoo_config="COCO-Detection/fcos_R_50_FPN_1x.py",
        dt_config={"name": "FCOS"},
    ),
    Family(
        prefix="panoptic_",
        golden=None,
        zoo_config="COCO-PanopticSegmentation/panoptic_fpn_R_50_3x.yaml",
        annotations=("masks", "sem_seg"),
    ),
)


@dataclass(frozen=True)
class Case:
    """One benchmark case: how both sides build its model and inputs."""

    family: Family
    kind: str  # one of KINDS

    @property
    def name(self) -> str:
        return self.family.prefix + self.kind

    @property
    def training(self) -> bool:
        return self.kind == "train_step"

    @property
    def config(self) -> Path | None:
        """The detectron2 YAML both sides build the model from; None for a LazyConfig family."""
        if self.kind == "golden":
            return DATA / self.family.golden / "config.yaml"
        return None if self.family.lazy else ZOO_CONFIGS / self.family.zoo_config

    @property
    def weights(self) -> Path | None:
        """The golden weights, or None: random weights with calibrated frozen BN (dt's initialisation)."""
        return DATA / self.family.golden / "model_final.pkl" if self.kind == "golden" else None

    @property
    def golden_io(self) -> Path | None:
        return DATA / self.family.golden / "io.pt" if self.kind == "golden" else None

    @property
    def goal(self) -> float:
        return GOALS[self.kind]


CASES = {case.name: case for case in (Case(f, kind) for f in FAMILIES for kind in f.kinds)}
INFERENCE_CASES = [name for name, case in CASES.items() if not case.training]
TRAINING_CASES = [name for name, case in CASES.items() if case.training]


def get_case(name: str) -> Case:
    """The case called ``name``; an unknown name is one line listing the known ones."""
    if name not in CASES:
        raise ValueError(f"unknown benchmark case {name!r}; expected one of: {', '.join(CASES)}")
    return CASES[name]


def astronaut_bgr(size: int) -> torch.Tensor:
    """scikit-image's astronaut as a BGR ``Tensor[3, size, size]`` uint8."""
    from skimage import data

    rgb = torch.from_numpy(np.ascontiguousarray(data.astronaut())).permute(2, 0, 1).float()[None]
    rgb = torch.nn.functional.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=False)
    return rgb[0].flip(0).round().clamp(0, 255).to(torch.uint8)


def octagon(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    """The octagon inscribed in an XYXY box (corners cut at 30 %), as ``[x0, y0, x1, y1, ...]``."""
    dx, dy = (x2 - x1) * 0.3, (y2 - y1) * 0.3
    xs = (x1 + dx, x2 - dx, x2, x2, x2 - dx, x1 + dx, x1, x1)
    ys = (y1, y1, y1 + dy, y2 - dy, y2, y2, y2 - dy, y1 + dy)
    return [c for p in zip(xs, ys, strict=True) for c in p]


def ellipse_keypoints(boxes: torch.Tensor) -> torch.Tensor:
    """``Tensor[N, 17, 3]``: 17 visible keypoints evenly spaced on each box's inscribed ellipse."""
    angles = torch.arange(NUM_KEYPOINTS, dtype=torch.float32) * (2 * math.pi / NUM_KEYPOINTS)
    centre, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) / 2  # [N, 2] each
    xs = centre[:, :1] + 0.9 * half[:, :1] * angles.cos()  # [N, 17]
    ys = centre[:, 1:] + 0.9 * half[:, 1:] * angles.sin()
    return torch.stack([xs, ys, torch.full_like(xs, 2.0)], dim=2)


def convex_polygon_mask(polygon: torch.Tensor, size: int) -> torch.Tensor:
    """``Tensor[size, size]`` bool: the pixels whose centres lie in a convex polygon ``Tensor[2P]``
    ``[x0, y0, x1, y1, ...]`` whose corners run clockwise on the image (as :func:`octagon`'s)."""
    corners = polygon.view(-1, 2).float()  # [P, 2]
    edges = corners.roll(-1, dims=0) - corners  # [P, 2]
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    centres = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), dim=-1)  # [size, size, 2]: (x, y)
    offsets = centres[:, :, None, :] - corners  # [size, size, P, 2]
    cross = edges[:, 0] * offsets[..., 1] - edges[:, 1] * offsets[..., 0]  # [size, size, P]
    return (cross >= 0).all(dim=-1)


def sem_seg_map(polygons: torch.Tensor, size: int) -> torch.Tensor:
    """The training ``sem_seg`` target ``Tensor[size, size]`` int64 in detectron2's Panoptic FPN
    convention: ``STUFF_BANDS`` horizontal bands of stuff classes 1, 2, ...; an unlabeled frame
    (``UNLABELED``, the sem-seg head's ignore value); the objects' polygons ``Tensor[N, 2P]`` on top,
    all labelled ``THINGS_LABEL`` (0, the class of every thing)."""
    rows = torch.arange(size) * STUFF_BANDS // size + 1  # [size]
    labels = rows[:, None].expand(size, size).clone()
    labels[:UNLABELED_FRAME], labels[-UNLABELED_FRAME:] = UNLABELED, UNLABELED
    labels[:, :UNLABELED_FRAME], labels[:, -UNLABELED_FRAME:] = UNLABELED, UNLABELED
    for polygon in polygons:
        labels[convex_polygon_mask(polygon, size)] = THINGS_LABEL
    return labels


def raw_inputs(case: Case) -> dict:
    """The case's input as plain tensors (what ``side_by_side.py`` hands both workers in one file)."""
    if case.kind == "golden":
        io = torch.load(case.golden_io, weights_only=True)
        return {"image": io["image"], "height": io["height"], "width": io["width"]}
    if case.kind == "full":
        return {"image": astronaut_bgr(FULL_SIZE)}
    image = astronaut_bgr(TRAIN_SIZE)
    boxes = torch.tensor([b for _, b in OBJECTS])  # [3, 4]
    mirrored = torch.stack([TRAIN_SIZE - boxes[:, 2], boxes[:, 1], TRAIN_SIZE - boxes[:, 0], boxes[:, 3]], 1)
    classes = [0 if case.family.single_class else c for c, _ in OBJECTS]
    polygons = [
        torch.tensor([octagon(*b.tolist()) for b in bs], dtype=torch.float64) for bs in (boxes, mirrored)
    ]
    return {
        "images": [image, image.flip(-1)],
        "boxes": [boxes, mirrored],
        "classes": torch.tensor(classes),
        "polygons": polygons,
        "keypoints": [ellipse_keypoints(bs) for bs in (boxes, mirrored)],
        "sem_seg": [sem_seg_map(p, TRAIN_SIZE) for p in polygons],
    }


def model_inputs(case: Case, raw: dict, structures: ModuleType) -> list[dict]:
    """The model's ``batched_inputs``; training targets are built with ``structures`` (``dt_structures``
    or ``detectron2.structures``: both have ``Boxes``, ``Instances``, ``PolygonMasks``, ``Keypoints``),
    holding only the annotations the family trains on (both libraries carry every ground-truth field
    through sampling, so extra ones would cost time); ``sem_seg`` goes beside ``instances``."""
    if not case.training:
        return [{k: raw[k] for k in ("image", "height", "width") if k in raw}]
    batch = []
    for i, image in enumerate(raw["images"]):
        instances = structures.Instances(tuple(image.shape[1:]))
        instances.gt_boxes = structures.Boxes(raw["boxes"][i])
        instances.gt_classes = raw["classes"]
        if "masks" in case.family.annotations:
            instances.gt_masks = structures.PolygonMasks([[p.numpy()] for p in raw["polygons"][i]])
        if "keypoints" in case.family.annotations:
            instances.gt_keypoints = structures.Keypoints(raw["keypoints"][i])
        batch.append({"image": image, "instances": instances})
        if "sem_seg" in case.family.annotations:
            batch[-1]["sem_seg"] = raw["sem_seg"][i]
    return batch


@torch.no_grad()
def calibrate_frozen_bn(model, batched_inputs, conv_type: type, norm_type: type) -> None:
    """Set each FrozenBN's statistics to its input's per-channel mean/variance in one forward pass, so
    that random weights keep activations near unit scale, as trained ones do.

    The statistics are taken on the raw output of the convolution the FrozenBN follows (dt folds the
    two into one op). ``conv_type``/``norm_type``: the convolution-with-norm and FrozenBN classes of
    the library (dt's and detectron2's models share the ``preprocess_image``/``backbone``/``conv.norm``
    layout).
    """

    def hook(conv, args):
        y = torch.nn.functional.conv2d(
            args[0], conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups
        )
        conv.norm.running_mean.copy_(y.mean(dim=(0, 2, 3)))
        conv.norm.running_var.copy_(y.var(dim=(0, 2, 3), unbiased=False))

    convs = [m for m in model.modules() if isinstance(m, conv_type) and isinstance(m.norm, norm_type)]
    handles = [conv.register_forward_pre_hook(hook) for conv in convs]
    try:
        model.backbone(model.preprocess_image(batched_inputs).tensor)
    finally:
        for h in handles:
            h.remove()


def build_dt(case: Case, raw: dict | None = None) -> tuple[torch.nn.Module, list[dict]]:
    """dt's model of the case (eval mode; golden weights, or random ones with calibrated frozen BN)
    and its inputs (from ``raw``, default :func:`raw_inputs`)."""
    import dt_structures
    from dt_models import build_model, detectron2_model_config, load_weights
    from dt_models.layers import Conv2d, FrozenBatchNorm2d

    torch.manual_seed(0)
    config = case.family.dt_config if case.family.lazy else detectron2_model_config(case.config)
    model = build_model(config).eval()
    inputs = model_inputs(case, raw_inputs(case) if raw is None else raw, dt_structures)
    if case.weights is not None:
        report = load_weights(model, case.weights)
        if not report.ok:
            raise RuntimeError(f"{case.weights} does not fit dt's model:\n{report.table()}")
    else:
        calibrate_frozen_bn(model, inputs, Conv2d, FrozenBatchNorm2d)
    return model, inputs


def make_run(case: Case, model: torch.nn.Module, inputs: list[dict], outputs: dict):
    """One timed call of the case: inference (``outputs``: the first image's, ``instances`` and, for
    Panoptic FPN, ``sem_seg`` and ``panoptic_seg``) or one SGD step (forward, backward, update;
    ``outputs["losses"]``). Puts the model in the mode it needs. For training, denormal floats are
    flushed to zero on every thread of this process (``dt_ops.set_flush_denormal``, where dt-ops is
    installed: in both workers of ``side_by_side.py``), as dt's trainer does: from the fifth step of
    random weights on, denormal gradients made each step 2-3x slower, on both sides alike (same losses
    either way)."""
    if not case.training:
        model.eval()

        def infer() -> None:
            with torch.inference_mode():
                outputs.update(model(inputs)[0])

        return infer
    model.train()
    try:
        from dt_ops import set_flush_denormal
    except ImportError:
        set_flush_denormal = torch.set_flush_denormal  # the calling thread only
    set_flush_denormal(True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.002, momentum=0.9, weight_decay=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        losses = model(inputs)
        sum(losses.values()).backward()
        optimizer.step()
        outputs["losses"] = {k: round(v.item(), 4) for k, v in losses.items()}

    return step


def golden_matches(instances, io: dict) -> dict:
    """Whether ``instances`` (dt's or detectron2's) equal the golden outputs within the tolerances of
    the golden READMEs: count, boxes 1e-2 px, scores 1e-4, classes, masks on >= 99.9 % of pixels,
    keypoint x/y 1e-2 px and scores 1e-4 (masks and keypoints where the reference has them)."""
    checks = {"count": len(instances) == len(io["pred_boxes"])}
    if checks["count"]:
        checks["boxes"] = bool((instances.pred_boxes.tensor - io["pred_boxes"]).abs().max() <= 1e-2)
        checks["scores"] = bool((instances.scores - io["scores"]).abs().max() <= 1e-4)
        checks["classes"] = bool(torch.equal(instances.pred_classes, io["pred_classes"]))
        if "pred_masks_packed" in io:
            shape = tuple(io["pred_masks_shape"])
            bits = np.unpackbits(io["pred_masks_packed"].numpy(), axis=1)[:, : int(np.prod(shape[1:]))]
            expected = torch.from_numpy(bits.reshape(shape).astype(bool))
            checks["masks"] = bool((instances.pred_masks == expected).float().mean() >= 0.999)
        if "pred_keypoints" in io:
            diff = (instances.pred_keypoints - io["pred_keypoints"]).abs()  # [N, K, 3]
            checks["keypoints"] = bool(diff[..., :2].max() <= 1e-2 and diff[..., 2].max() <= 1e-4)
    return {"outputs_equal_detectron2": all(checks.values()), "checks": checks}


def outputs_summary(case: Case, outputs: dict, save_to: Path | None = None) -> dict:
    """JSON-ready summary of the last call: detections (with the golden check; for Panoptic FPN also
    the panoptic segment count) or losses. With ``save_to``, the outputs are also saved there so that
    ``side_by_side.py`` can compare dt's with detectron2's: ``boxes``, ``scores``, ``classes``, and for
    Panoptic FPN ``sem_seg`` (logits ``Tensor[C, H, W]``), ``panoptic_seg`` (segment ids
    ``Tensor[H, W]``) and ``segments`` (``Tensor[S, 2]``: category id and is-thing per segment id)."""
    if case.training:
        return {"losses": outputs["losses"]}
    instances = outputs["instances"]
    boxes, scores, classes = instances.pred_boxes.tensor, instances.scores, instances.pred_classes
    saved = {"boxes": boxes, "scores": scores, "classes": classes}
    summary = {"detections": len(instances)}
    if "panoptic_seg" in outputs:
        ids, segments = outputs["panoptic_seg"]
        saved.update(
            sem_seg=outputs["sem_seg"],
            panoptic_seg=ids,
            segments=torch.tensor([[s["category_id"], s["isthing"]] for s in segments]).view(-1, 2),
        )
        summary["panoptic_segments"] = len(segments)
    if save_to is not None:
        torch.save(saved, save_to)
    extra = golden_matches(instances, torch.load(case.golden_io, weights_only=True)) if case.golden_io else {}
    return {**summary, **extra}
