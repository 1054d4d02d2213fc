"""Write the detectron2 reference runs of FCOS, Semantic FPN, Panoptic FPN and the rotated Faster R-CNN
that dt is compared with (folders ``fcos_R_50_FPN``, ``semantic_R_50_FPN``, ``panoptic_fpn_R_50_FPN``,
``rotated_faster_rcnn_R_50_FPN`` next to this file; tests ``test_golden_fcos.py``,
``test_golden_semantic_fpn.py``, ``test_golden_panoptic_fpn.py``, ``test_golden_rotated_rcnn.py``).

This is an offline tool, not part of dt and not run by the tests: it is the only dt file that imports
detectron2. Run it with the detectron2 reference environment (detectron2 0.6, torch 2.14.1, CPU; see
``../shared/detectron2/install-reference.sh``):

    /tmp/d2ref/bin/python packages/dt-models/tests/data/make_detectron2_references.py [NAME ...]

Each model is detectron2's own architecture (its zoo YAML or, for FCOS, its LazyConfig), made narrow so
that a folder stays at 1.6-2.3 MB. The weights are random: detectron2's initialization, every norm's
affine parameters drawn around (1, 0), then one calibration pass on the reference image sets each
FrozenBN's statistics from its input (as ``benchmarks/_cases.py::calibrate_frozen_bn``) and rescales
the FPN outputs and the heads' layers to chosen per-channel output statistics, so that activations stay
near unit scale and the models make non-trivial, well separated predictions. A second, plain pass
gives the reference outputs. Each folder's README says what is stored and which tolerances hold.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import yaml
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig, get_cfg, instantiate
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import build_model
from detectron2.modeling.backbone.resnet import BottleneckBlock, ResNet
from detectron2.structures import ImageList
from PIL import Image
from skimage import data as sample_images
from torch import nn
from torch.nn import functional as F

HERE = Path(__file__).resolve().parent
FEATURE_CHANNELS = 8  # io.pt keeps the first channels of each feature map (the files stay small)
LOGIT_STRIDE = 8  # and the semantic logits on every 8th pixel of each axis


def sample_image(name: str, height: int, width: int) -> torch.Tensor:
    """A scikit-image sample resized to ``Tensor[3, height, width]`` uint8, BGR."""
    rgb = getattr(sample_images, name)()
    resized = np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))
    return torch.from_numpy(np.ascontiguousarray(resized[:, :, ::-1].transpose(2, 0, 1)))


def narrow_yaml_cfg(zoo_config: str):
    """detectron2's zoo YAML with a narrow ResNet-50-FPN (same depth, so the same keys)."""
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(zoo_config))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 4
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 8
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 32
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    return cfg


@torch.no_grad()
def randomize_norms(model: nn.Module, generator: torch.Generator) -> None:
    """Every FrozenBN / GroupNorm scale drawn from U(0.5, 1.5) and shift from N(0, 0.3); the norm
    closing each residual branch (``conv3.norm``) scaled from U(0.1, 0.4) instead, as trained
    ResNets damp their residual branches (a random ResNet is otherwise chaotic: float32 rounding
    differences grow from block to block)."""
    for name, module in model.named_modules():
        if isinstance(module, (FrozenBatchNorm2d, nn.GroupNorm)):
            n = module.weight.numel()
            low, width = (0.1, 0.3) if name.endswith("conv3.norm") else (0.5, 1.0)
            module.weight.copy_(low + width * torch.rand(n, generator=generator))
            module.bias.copy_(0.3 * torch.randn(n, generator=generator))


def _raw_output(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The layer's output without its norm/activation, and its channel dimension in the weight."""
    if isinstance(layer, nn.Linear):
        return F.linear(x.flatten(1), layer.weight, layer.bias), 0
    if isinstance(layer, nn.ConvTranspose2d):
        y = F.conv_transpose2d(x, layer.weight, layer.bias, layer.stride, layer.padding, layer.output_padding)
        return y, 1
    y = F.conv2d(x, layer.weight, layer.bias, layer.stride, layer.padding, layer.dilation, layer.groups)
    return y, 0


def calibrate(
    model: nn.Module, run: Callable[[], object], targets: dict[nn.Module, tuple[float, torch.Tensor | float]]
) -> None:
    """One pass of ``run`` in which, before its first call, every convolution followed by a FrozenBN
    sets the FrozenBN's statistics to its output's (mean and second moment), and every layer of
    ``targets`` has its weight and bias rescaled so that each output channel gets the target
    ``(std, mean)``."""

    def set_frozen_bn(conv, args):
        y, _ = _raw_output(conv, args[0])
        conv.norm.running_mean.copy_(y.mean(dim=(0, 2, 3)))
        # the second moment, not the variance: a channel whose mean dwarfs its spread is not
        # stretched, so rounding differences stay at float32's scale instead of being amplified
        conv.norm.running_var.copy_(y.square().mean(dim=(0, 2, 3)))

    def rescale(layer, args):
        std, mean = targets[layer]
        y, dim = _raw_output(layer, args[0])
        dims = [d for d in range(y.dim()) if d != 1]
        y_mean, y_std = y.mean(dim=dims), y.std(dim=dims).clamp(min=1e-6)
        factor = std / y_std
        shape = [-1 if d == dim else 1 for d in range(layer.weight.dim())]
        layer.weight.mul_(factor.view(shape))
        layer.bias.copy_((layer.bias - y_mean) * factor + mean)  # every target layer has a bias

    def once(hook):
        def wrapped(module, args):
            handles[module].remove()
            hook(module, args)

        return wrapped

    handles = {}
    for module in model.modules():
        if isinstance(getattr(module, "norm", None), FrozenBatchNorm2d):
            handles[module] = module.register_forward_pre_hook(once(set_frozen_bn))
    for layer in targets:
        handles[layer] = layer.register_forward_pre_hook(once(rescale))
    with torch.no_grad():
        run()
    for handle in handles.values():
        handle.remove()


def fpn_targets(backbone: nn.Module) -> dict[nn.Module, tuple[float, float]]:
    """The FPN output and top-block convolutions: unit std, zero mean per channel."""
    return {
        m: (1.0, 0.0)
        for name, m in backbone.named_modules()
        if name.startswith(("fpn_output", "top_block.")) and isinstance(m, nn.Conv2d)
    }


def threshold_shift(
    scores: Callable[[float], torch.Tensor], thresh: float, counts: range, what: str
) -> float:
    """A shift of the class logits after which k of the ``scores(shift)`` (increasing in the shift)
    pass ``thresh``, k in ``counts``: half-way between the shifts at which the k-th and the (k+1)-th
    pass it, for the k that leaves the widest gap, so that no score sits near the threshold."""

    def shift_passing(count: int) -> float:
        low, high = -20.0, 20.0
        for _ in range(60):
            mid = (low + high) / 2
            low, high = (mid, high) if (scores(mid) > thresh).sum() < count else (low, mid)
        return high

    boundaries = [shift_passing(count) for count in range(counts.start, counts.stop + 1)]
    widest = max(range(len(boundaries) - 1), key=lambda i: boundaries[i + 1] - boundaries[i])
    shift = (boundaries[widest] + boundaries[widest + 1]) / 2
    margin = (scores(shift) - thresh).abs().min().item()
    print(
        f"{what}: {widest + counts.start} scores pass {thresh}, the closest {margin:.1e} away",
        file=sys.stderr,
    )
    return shift


def score_separation(scores: torch.Tensor, thresholds: tuple[float, ...] = ()) -> float:
    """The smallest gap between two of ``scores`` or between a score and one of ``thresholds``."""
    values = torch.cat([scores.flatten(), torch.tensor(thresholds, dtype=scores.dtype)]).sort().values
    return (values[1:] - values[:-1]).min().item() if len(values) > 1 else math.inf


def per_channel(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def backbone_input(model: nn.Module, inputs: list[dict]) -> ImageList:
    """The normalized, padded batch the model's backbone sees (as each meta-architecture makes it)."""
    images = [(x["image"] - model.pixel_mean) / model.pixel_std for x in inputs]
    backbone = model.backbone
    return ImageList.from_tensors(
        images, backbone.size_divisibility, padding_constraints=backbone.padding_constraints
    )


def features_of(model: nn.Module, inputs: list[dict]) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        features = model.backbone(backbone_input(model, inputs).tensor)
    return {k: v[:, :FEATURE_CHANNELS].clone() for k, v in features.items()}


def save_folder(name: str, model: nn.Module, config_text: str, io: dict) -> None:
    folder = HERE / name
    folder.mkdir(exist_ok=True)
    (folder / "config.yaml").write_text(config_text)
    weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    with open(folder / "model_final.pkl", "wb") as f:
        pickle.dump({"model": weights, "__author__": "make_detectron2_references.py"}, f)
    torch.save(io, folder / "io.pt")
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(f"{name}: {size / 1e6:.2f} MB", file=sys.stderr)


def instances_io(instances) -> dict:
    return {
        "pred_boxes": instances.pred_boxes.tensor.clone(),
        "scores": instances.scores.clone(),
        "pred_classes": instances.pred_classes.clone(),
    }


def inputs_of(image: torch.Tensor, height: int, width: int) -> list[dict]:
    return [{"image": image.float(), "height": height, "width": width}]


def base_io(image: torch.Tensor, height: int, width: int, features: dict) -> dict:
    return {"image": image, "height": height, "width": width, "features": features}


def detectron2_fcos() -> None:
    """detectron2's LazyConfig ``COCO-Detection/fcos_R_50_FPN_1x.py``, narrow, 6 classes."""
    cfg = LazyConfig.load(model_zoo.get_config_file("COCO-Detection/fcos_R_50_FPN_1x.py"))
    m = cfg.model
    m.num_classes = 6
    m.backbone.bottom_up.stem.out_channels = 8
    m.backbone.bottom_up.stages = [
        L(ResNet.make_stage)(
            block_class=BottleneckBlock, num_blocks=n, stride_per_block=[s] + [1] * (n - 1), in_channels=i,
            out_channels=o, bottleneck_channels=o // 8, stride_in_1x1=True, norm="FrozenBN",
        )
        for n, s, i, o in zip([3, 4, 6, 3], [1, 2, 2, 2], [8, 32, 64, 128], [32, 64, 128, 256], strict=True)
    ]  # fmt: skip
    m.backbone.out_channels = 32
    m.backbone.top_block.in_channels = 32
    m.head.input_shape = [ShapeSpec(channels=32)] * 5
    m.head.conv_dims = [32] * 4
    torch.manual_seed(0)
    model = instantiate(m).eval()
    generator = torch.Generator().manual_seed(1)
    randomize_norms(model, generator)
    image = sample_image("astronaut", 270, 350)
    inputs = inputs_of(image, 324, 420)
    head = model.head
    targets = {
        **fpn_targets(model.backbone),
        head.cls_score: (1.0, 0.0),
        head.ctrness: (1.0, 0.0),
        head.bbox_pred: (0.5, 2.0),
    }
    calibrate(model, lambda: model(inputs), targets)
    with torch.no_grad():
        features = model.backbone(backbone_input(model, inputs).tensor)
        levels = [features[f] for f in model.head_in_features]
        logits, _, ctrness = head(levels)

    def scores(shift: float) -> torch.Tensor:
        pairs = zip(logits, ctrness, strict=True)
        return torch.cat(
            [torch.sqrt(torch.sigmoid(x + shift) * torch.sigmoid(c)).flatten() for x, c in pairs]
        )

    with torch.no_grad():
        head.cls_score.bias.add_(threshold_shift(scores, model.test_score_thresh, range(100, 201), "fcos"))
    with torch.no_grad():
        final = model(inputs)[0]["instances"]
    io = {**base_io(image, 324, 420, features_of(model, inputs)), **instances_io(final)}
    dt_config = {
        "model": {
            "name": "FCOS",
            "num_classes": 6,
            "backbone": {
                "name": "ResNetFPN",
                "resnet": {
                    "depth": 50, "width_per_group": 4, "stem_out_channels": 8, "res2_out_channels": 32,
                    "freeze_at": 2, "out_features": ["res3", "res4", "res5"],
                },
                "in_features": ["res3", "res4", "res5"],
                "out_channels": 32,
                "top_block": "p6p7",
                "top_block_in_feature": "p5",
            },
            "head": {"num_convs": 4, "norm": "GN", "prior_prob": 0.01},
            "test_score_thresh": 0.2,
            "test_nms_thresh": 0.6,
        }
    }  # fmt: skip
    header = (
        "# dt's experiment config (model section) of the narrow FCOS R50-FPN of this folder: detectron2's\n"
        "# LazyConfig COCO-Detection/fcos_R_50_FPN_1x.py with the widths of detectron2_config.yaml.\n"
    )
    save_folder("fcos_R_50_FPN", model, header + yaml.safe_dump(dt_config, sort_keys=False), io)
    LazyConfig.save(cfg, str(HERE / "fcos_R_50_FPN" / "detectron2_config.yaml"))


def detectron2_semantic_fpn() -> None:
    """``Misc/semantic_R_50_FPN_1x.yaml``, narrow, 8 classes."""
    cfg = narrow_yaml_cfg("Misc/semantic_R_50_FPN_1x.yaml")
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 8
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 32
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    randomize_norms(model, torch.Generator().manual_seed(2))
    image = sample_image("coffee", 250, 330)
    inputs = inputs_of(image, 310, 390)
    class_means = per_channel([0.0, 0.3, -0.2, 0.5, 0.0, -0.4, 0.2, 0.1])
    targets = {**fpn_targets(model.backbone), model.sem_seg_head.predictor: (1.5, class_means)}
    calibrate(model, lambda: model(inputs), targets)
    with torch.no_grad():
        sem_seg = model(inputs)[0]["sem_seg"]
    top2 = sem_seg.topk(2, dim=0).values
    print(f"semantic: smallest top-2 logit gap {(top2[0] - top2[1]).min().item():.2e}", file=sys.stderr)
    io = {
        **base_io(image, 310, 390, features_of(model, inputs)),
        "sem_seg_argmax": sem_seg.argmax(dim=0).to(torch.uint8),
        "sem_seg_logits_strided": sem_seg[:, ::LOGIT_STRIDE, ::LOGIT_STRIDE].clone(),
    }
    save_folder("semantic_R_50_FPN", model, cfg.dump(), io)


def rcnn_head_targets(model: nn.Module, box_dim: int) -> dict:
    """RPN objectness and deltas, box head FCs, class logits and box deltas."""
    rpn = model.proposal_generator.rpn_head
    predictor = model.roi_heads.box_predictor
    return {
        rpn.conv: (1.0, 0.0),
        rpn.objectness_logits: (1.5, 0.0),
        rpn.anchor_deltas: (0.2, 0.0),
        **{fc: (1.0, 0.0) for fc in model.roi_heads.box_head.fcs},
        predictor.cls_score: (1.5, 0.0),
        predictor.bbox_pred: (0.5 if box_dim == 4 else 0.3, 0.0),
    }


def calibrate_box_scores(model: nn.Module, inputs: list[dict]) -> None:
    """Shift the foreground class logits so that 40 to 80 (proposal, class) softmax scores pass
    ``ROI_HEADS.SCORE_THRESH_TEST``, none of them near it."""
    predictor = model.roi_heads.box_predictor
    captured = []
    handle = predictor.cls_score.register_forward_hook(lambda module, args, out: captured.append(out))
    with torch.no_grad():
        model(inputs)
    handle.remove()
    logits = captured[0]  # [R, K + 1], background last

    def scores(shift: float) -> torch.Tensor:
        shifted = torch.cat([logits[:, :-1] + shift, logits[:, -1:]], dim=1)
        return F.softmax(shifted, dim=1)[:, :-1].flatten()

    shift = threshold_shift(scores, predictor.test_score_thresh, range(40, 81), "box scores")
    with torch.no_grad():
        predictor.cls_score.bias[:-1].add_(shift)


def build_rcnn(cfg, seed: int, inputs: list[dict], extra_targets: Callable[[nn.Module], dict]) -> nn.Module:
    """detectron2's model of ``cfg`` with seeded random weights, calibrated on ``inputs``."""
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    randomize_norms(model, torch.Generator().manual_seed(seed + 1))
    box_dim = 5 if cfg.MODEL.ROI_HEADS.NAME == "RROIHeads" else 4
    targets = {**fpn_targets(model.backbone), **rcnn_head_targets(model, box_dim), **extra_targets(model)}
    calibrate(model, lambda: model(inputs), targets)
    calibrate_box_scores(model, inputs)
    return model


def first_well_separated(make: Callable[[int], tuple], what: str) -> tuple:
    """``make(seed)`` -> ``(separation, ...)`` for seeds 0, 1, ... until the final scores are 1e-4
    apart from each other and from the thresholds (so float32 rounding cannot reorder them)."""
    for seed in range(20):
        result = make(seed)
        print(f"{what}: seed {seed}, scores {result[0]:.1e} apart", file=sys.stderr)
        if result[0] >= 1e-4:
            return result
    raise SystemExit(f"{what}: no seed gives well separated scores")


def detectron2_panoptic_fpn() -> None:
    """``COCO-PanopticSegmentation/panoptic_fpn_R_50_3x.yaml``, narrow: 5 thing classes, 6 semantic
    classes (0: all things)."""
    cfg = narrow_yaml_cfg("COCO-PanopticSegmentation/panoptic_fpn_R_50_3x.yaml")
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 5
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 6
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 32
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 32
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 16
    # instances from score 0.2 (detectron2's default 0.5 lets only a few of these random ones in): many
    # overlap, so the combination skips some and clips others
    cfg.MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH = 0.2
    image = sample_image("astronaut", 262, 334)
    inputs = inputs_of(image, 300, 390)

    def heads(model):
        mask_head = model.roi_heads.mask_head
        return {
            **{m: (1.0, 0.0) for m in mask_head.conv_norm_relus},
            mask_head.deconv: (1.0, 0.0),
            mask_head.predictor: (3.0, 0.0),
            model.sem_seg_head.predictor: (1.5, per_channel([0.4, 0.0, 0.2, -0.2, 0.1, -0.1])),
        }

    def make(seed: int) -> tuple:
        model = build_rcnn(cfg, seed, inputs, heads)
        with torch.no_grad():
            out = model(inputs)[0]
        thresholds = (
            cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
            cfg.MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH,
        )
        return score_separation(out["instances"].scores, thresholds), model, out

    _, model, out = first_well_separated(make, "panoptic")
    with torch.no_grad():
        images = backbone_input(model, inputs)
        proposals, _ = model.proposal_generator(images, model.backbone(images.tensor), None)
    ids, segments = out["panoptic_seg"]
    things = sum(s["isthing"] for s in segments)
    candidates = int((out["instances"].scores >= 0.2).sum())
    print(
        f"panoptic: {len(out['instances'])} detections, {candidates} scored >= 0.2, {len(segments)} "
        f"segments ({things} things)",
        file=sys.stderr,
    )
    if int(ids.max()) > 255:
        raise SystemExit("panoptic ids do not fit uint8")
    io = {
        **base_io(image, 300, 390, features_of(model, inputs)),
        "proposal_boxes": proposals[0].proposal_boxes.tensor.clone(),
        **instances_io(out["instances"]),
        "sem_seg_argmax": out["sem_seg"].argmax(dim=0).to(torch.uint8),
        "panoptic_seg": ids.to(torch.uint8),
        "segments_info": segments,
    }
    save_folder("panoptic_fpn_R_50_FPN", model, cfg.dump(), io)


def detectron2_rotated_faster_rcnn() -> None:
    """Rotated Faster R-CNN R50-FPN (detectron2 has no zoo file: ``faster_rcnn_R_50_FPN_1x.yaml`` with
    RRPN, ``RotatedAnchorGenerator`` and ``RROIHeads``, as detectron2's own tests set them), 5 classes."""
    cfg = narrow_yaml_cfg("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml")
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "RRPN"
    cfg.MODEL.ANCHOR_GENERATOR.NAME = "RotatedAnchorGenerator"
    cfg.MODEL.ANCHOR_GENERATOR.ANGLES = [[-60, 0, 60]]
    cfg.MODEL.RPN.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0)
    cfg.MODEL.ROI_HEADS.NAME = "RROIHeads"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 5
    cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignRotated"
    cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0, 1.0)
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 32
    image = sample_image("coffee", 280, 230)
    inputs = inputs_of(image, 336, 290)

    def make(seed: int) -> tuple:
        model = build_rcnn(cfg, seed, inputs, lambda model: {})
        with torch.no_grad():
            final = model(inputs)[0]["instances"]
        return score_separation(final.scores, (cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,)), model, final

    _, model, final = first_well_separated(make, "rotated")
    with torch.no_grad():
        images = backbone_input(model, inputs)
        proposals, _ = model.proposal_generator(images, model.backbone(images.tensor), None)
    print(f"rotated: {len(final)} detections", file=sys.stderr)
    io = {
        **base_io(image, 336, 290, features_of(model, inputs)),
        "proposal_boxes": proposals[0].proposal_boxes.tensor.clone(),
        **instances_io(final),
    }
    save_folder("rotated_faster_rcnn_R_50_FPN", model, cfg.dump(), io)


MAKERS = {
    "fcos": detectron2_fcos,
    "semantic": detectron2_semantic_fpn,
    "panoptic": detectron2_panoptic_fpn,
    "rotated": detectron2_rotated_faster_rcnn,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"which references, of {list(MAKERS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in MAKERS]
    if unknown:
        parser.error(f"unknown references {unknown}; choose from {list(MAKERS)}")
    torch.set_num_threads(1)
    for name in args.names or MAKERS:
        MAKERS[name]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
