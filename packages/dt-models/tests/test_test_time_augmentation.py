"""Test-time augmentation of R-CNN models: box mapping, merging, mask averaging, flip bookkeeping, and
detectron2's ``GeneralizedRCNNWithTTA`` on the golden Mask R-CNN (data/mask_rcnn_R_50_FPN/README.md)."""

import pytest
import torch
from dtm_helpers import tiny_rcnn_config, with_changes
from golden_helpers import DATA, load_golden, order_up_to_ties
from torch.nn import functional as F

import dt_models.test_time_augmentation as tta_module
from dt_models import build_model
from dt_models.config import KeypointBranchConfig, PrecomputedProposalsConfig
from dt_models.meta_arch import RetinaNetConfig
from dt_models.test_time_augmentation import (
    GeneralizedRCNNWithTTA,
    boxes_to_augmented,
    boxes_to_original,
    merge_detections,
)
from dt_structures import Boxes, Instances


def resize(image: torch.Tensor, min_size: int, max_size: int) -> torch.Tensor:
    """Shortest-edge resize of a float image with torch's bilinear interpolation (what detectron2 does
    to non-uint8 images; dt-engine passes dt-data's resize, which is checked in dt-engine's tests)."""
    h, w = image.shape[-2:]
    scale = min_size / min(h, w)
    new_h, new_w = (min_size, scale * w) if h < w else (scale * h, min_size)
    if max(new_h, new_w) > max_size:
        cap = max_size / max(new_h, new_w)
        new_h, new_w = new_h * cap, new_w * cap
    size = (int(new_h + 0.5), int(new_w + 0.5))
    return F.interpolate(image[None].float(), size, mode="bilinear", align_corners=False)[0]


@pytest.fixture(scope="module")
def golden():
    torch.manual_seed(0)
    return load_golden("mask_rcnn_R_50_FPN")


def _tta(model, **kwargs) -> GeneralizedRCNNWithTTA:
    return GeneralizedRCNNWithTTA(model, resize=resize, **{"max_size": 4000, **kwargs}).eval()


def test_boxes_map_back_through_resize_and_flip():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 100.0, 50.0]])
    # a flipped view of (50, 100) of a (100, 200) image: unflip in the view, then scale by 2
    original = boxes_to_original(boxes, (50, 100), (100, 200), flipped=True)
    assert original.dtype == torch.float64
    assert torch.equal(
        original, torch.tensor([[140.0, 40.0, 180.0, 80.0], [0.0, 0.0, 200.0, 100.0]]).double()
    )
    assert torch.equal(boxes_to_original(boxes, (50, 100), (50, 100), flipped=False), boxes.double())
    for flipped in (False, True):
        back = boxes_to_augmented(
            boxes_to_original(boxes, (37, 91), (480, 640), flipped), (480, 640), (37, 91), flipped
        )
        assert torch.allclose(back, boxes.double(), atol=1e-9)


def test_merge_is_per_class_nms_over_all_views():
    boxes = torch.tensor(
        [[0, 0, 10, 10], [1, 0, 11, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=torch.float64
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    classes = torch.tensor([0, 0, 1, 0])
    merged = merge_detections(
        boxes, scores, classes, num_classes=2, image_size=(55, 100), nms_thresh=0.5, detections_per_image=2
    )
    # the second box overlaps the first of its class and goes; the third is another class; top 2 kept
    assert merged.image_size == (55, 100)
    assert merged.scores.tolist() == pytest.approx([0.9, 0.7])
    assert merged.pred_classes.tolist() == [0, 1]
    assert merged.pred_boxes.tensor[1].tolist() == [1, 0, 11, 10]


def test_one_view_at_the_input_size_is_the_plain_model(golden):
    model, io, inputs = golden
    with torch.no_grad():
        plain = model(inputs)[0]["instances"]
        tta = _tta(model, min_sizes=(io["image"].shape[-1],), flip=False)(inputs)[0]["instances"]
    assert len(tta) == len(plain) == 100
    assert (tta.pred_boxes.tensor - plain.pred_boxes.tensor).abs().max() <= 1e-3
    assert (tta.scores - plain.scores).abs().max() <= 1e-6
    assert torch.equal(tta.pred_classes, plain.pred_classes)
    assert tta.pred_masks.shape == plain.pred_masks.shape == (100, 512, 512)
    assert (tta.pred_masks != plain.pred_masks).float().mean() <= 1e-5


def test_flipping_the_image_mirrors_the_result(golden):
    """The views of a flipped image are the views of the image, flipped: the result is the mirror
    image of the unflipped one, whatever the weights (a wrong un-flip of boxes or masks breaks it).
    Scores agree within the golden tolerance, 1e-4: Winograd convolutions tile a mirrored map from
    its other edge, so their rounding (~1e-5) differs."""
    model, io, inputs = golden
    flipped_inputs = [dict(inputs[0], image=inputs[0]["image"].flip(dims=[-1]))]
    tta = _tta(model, min_sizes=(320, 448), flip=True)
    with torch.no_grad():
        out = tta(inputs)[0]["instances"]
        mirrored = tta(flipped_inputs)[0]["instances"]
    width = io["width"]
    expected = boxes_to_original(out.pred_boxes.tensor, (io["height"], width), (io["height"], width), True)
    order, mirrored_order = out.scores.argsort(descending=True), mirrored.scores.argsort(descending=True)
    assert len(out) == len(mirrored) > 0
    assert (mirrored.scores[mirrored_order] - out.scores[order]).abs().max() <= 1e-4
    assert (mirrored.pred_boxes.tensor[mirrored_order] - expected[order].float()).abs().max() <= 1e-2
    assert torch.equal(mirrored.pred_classes[mirrored_order], out.pred_classes[order])
    same = mirrored.pred_masks[mirrored_order] == out.pred_masks[order].flip(dims=[-1])
    assert same.float().mean() >= 0.999


def test_masks_are_averaged_over_views_with_flips_undone(golden, monkeypatch):
    model, io, inputs = golden
    captured = _capture_mask_probs(monkeypatch)
    with torch.no_grad():
        both = _tta(model, min_sizes=(384,), flip=True)(inputs)[0]["instances"]
        flipped_only = model.inference(
            [{"image": inputs[0]["image"].flip(dims=[-1])}],
            [_boxes_in_view(both, io, flipped=True)],
            do_postprocess=False,
        )[0].pred_masks.flip(dims=[3])
        plain_only = model.inference(
            [{"image": inputs[0]["image"]}], [_boxes_in_view(both, io, flipped=False)], do_postprocess=False
        )[0].pred_masks
    probs = captured["probs"]
    assert probs.shape == (len(both), 1, 28, 28)
    assert (probs - (plain_only + flipped_only) / 2).abs().max() <= 1e-5
    assert both.pred_masks.shape == (len(both), io["height"], io["width"])
    assert both.pred_masks.dtype == torch.bool


def _capture_mask_probs(monkeypatch) -> dict:
    """Records the averaged mask probabilities ``Tensor[R, 1, M, M]`` before they are pasted."""
    captured = {}
    postprocess = tta_module.detector_postprocess

    def capture(instances, height, width):
        captured["probs"] = instances.pred_masks
        return postprocess(instances, height, width)

    monkeypatch.setattr(tta_module, "detector_postprocess", capture)
    return captured


def _boxes_in_view(instances, io, flipped):
    view = tuple(io["image"].shape[-2:])
    boxes = boxes_to_augmented(instances.pred_boxes.tensor, (io["height"], io["width"]), view, flipped)
    return Instances(view, pred_boxes=Boxes(boxes.float()), pred_classes=instances.pred_classes)


def test_matches_detectron2_generalized_rcnn_with_tta(golden, monkeypatch):
    """detectron2's GeneralizedRCNNWithTTA on the golden model and image, views of short edge 320,
    384 and 448 capped at 420, each flipped too (data/mask_rcnn_R_50_FPN/tta_reference.pt)."""
    model, io, inputs = golden
    ref = torch.load(DATA / "mask_rcnn_R_50_FPN" / "tta_reference.pt", weights_only=True)
    tta = _tta(model, min_sizes=tuple(ref["min_sizes"].tolist()), flip=True)
    tta.max_size = ref["max_size"]
    captured = _capture_mask_probs(monkeypatch)
    with torch.no_grad():
        out = tta(inputs)[0]["instances"]
    assert len(out) == len(ref["pred_boxes"]) == 100
    order = order_up_to_ties(out.pred_boxes.tensor, out.scores, ref["pred_boxes"], "detection")
    out, probs = out[order], captured["probs"][order]
    assert (out.pred_boxes.tensor - ref["pred_boxes"]).abs().max() <= 1e-2
    assert (out.scores - ref["scores"]).abs().max() <= 1e-4
    assert torch.equal(out.pred_classes, ref["pred_classes"])
    kept = len(ref["mask_probs"])
    assert (probs[:kept] - ref["mask_probs"]).abs().max() <= 1e-3
    assert (out.pred_masks[:kept].sum(dim=(1, 2)) - ref["mask_area"]).abs().max() <= 2


def test_box_only_model_returns_merged_boxes_at_the_output_size():
    torch.manual_seed(0)
    model = build_model(tiny_rcnn_config(mask=False)).eval()
    image = torch.rand(3, 64, 96) * 255
    with torch.no_grad():
        out = _tta(model, min_sizes=(48, 64), flip=True)([{"image": image, "height": 128, "width": 192}])
    instances = out[0]["instances"]
    assert instances.image_size == (128, 192)
    assert not instances.has("pred_masks")
    assert len(instances) <= model.roi_heads.box_predictor.test_topk_per_image
    boxes = instances.pred_boxes.tensor
    assert (boxes >= 0).all() and (boxes[:, 0::2] <= 192).all() and (boxes[:, 1::2] <= 128).all()


def test_refuses_what_it_cannot_merge():
    base = tiny_rcnn_config(mask=False)
    with pytest.raises(TypeError, match="needs a GeneralizedRCNN"):
        GeneralizedRCNNWithTTA(
            build_model(RetinaNetConfig(num_classes=2)), resize=resize, min_sizes=(8,), max_size=9
        )
    keypoints = with_changes(
        base, roi_heads=with_changes(base.roi_heads, branches={"keypoint": KeypointBranchConfig()})
    )
    with pytest.raises(ValueError, match="KeypointBranch"):
        GeneralizedRCNNWithTTA(build_model(keypoints), resize=resize, min_sizes=(8,), max_size=9)
    precomputed = with_changes(base, proposal_generator=PrecomputedProposalsConfig())
    with pytest.raises(ValueError, match="precomputed proposals"):
        GeneralizedRCNNWithTTA(build_model(precomputed), resize=resize, min_sizes=(8,), max_size=9)
    with pytest.raises(ValueError, match="positive"):
        GeneralizedRCNNWithTTA(build_model(base), resize=resize, min_sizes=(), max_size=9)
