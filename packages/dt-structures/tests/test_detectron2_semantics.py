"""Pins detectron2's meaning of detectron2's names, so code ported by changing imports behaves the same:
in-place methods mutate the same object and return None, parameters have detectron2's names,
order and defaults, and results have detectron2's types, dtypes and devices."""

import inspect

import numpy as np
import pytest
import torch

import dt_structures
from dt_structures import (
    BitMasks,
    Boxes,
    Instances,
    Keypoints,
    PolygonMasks,
    RotatedBoxes,
    matched_pairwise_iou,
)

_EMPTY = inspect.Parameter.empty

# detectron2's parameters (after self/cls) of each name: a name, or (name, default)
DETECTRON2_SIGNATURES = {
    "BoxMode.convert": ["box", "from_mode", "to_mode"],
    "Boxes.__init__": ["tensor"],
    "Boxes.clone": [],
    "Boxes.to": ["device"],
    "Boxes.area": [],
    "Boxes.clip": ["box_size"],
    "Boxes.nonempty": [("threshold", 0.0)],
    "Boxes.inside_box": ["box_size", ("boundary_threshold", 0)],
    "Boxes.get_centers": [],
    "Boxes.scale": ["scale_x", "scale_y"],
    "Boxes.cat": ["boxes_list"],
    "RotatedBoxes.__init__": ["tensor"],
    "RotatedBoxes.area": [],
    "RotatedBoxes.normalize_angles": [],
    "RotatedBoxes.clip": ["box_size", ("clip_angle_threshold", 1.0)],
    "RotatedBoxes.nonempty": [("threshold", 0.0)],
    "RotatedBoxes.inside_box": ["box_size", ("boundary_threshold", 0)],
    "RotatedBoxes.get_centers": [],
    "RotatedBoxes.scale": ["scale_x", "scale_y"],
    "RotatedBoxes.cat": ["boxes_list"],
    "pairwise_intersection": ["boxes1", "boxes2"],
    "pairwise_iou": ["boxes1", "boxes2"],
    "pairwise_ioa": ["boxes1", "boxes2"],
    "matched_pairwise_iou": ["boxes1", "boxes2"],
    "pairwise_point_box_distance": ["points", "boxes"],
    "pairwise_iou_rotated": ["boxes1", "boxes2"],
    "Instances.__init__": ["image_size"],
    "Instances.set": ["name", "value"],
    "Instances.has": ["name"],
    "Instances.remove": ["name"],
    "Instances.get": ["name"],
    "Instances.get_fields": [],
    "Instances.cat": ["instance_lists"],
    "ImageList.__init__": ["tensor", "image_sizes"],
    "ImageList.from_tensors": [
        "tensors",
        ("size_divisibility", 0),
        ("pad_value", 0.0),
        ("padding_constraints", None),
    ],
    "BitMasks.__init__": ["tensor"],
    "BitMasks.nonempty": [],
    "BitMasks.from_polygon_masks": ["polygon_masks", "height", "width"],
    "BitMasks.crop_and_resize": ["boxes", "mask_size"],
    "BitMasks.get_bounding_boxes": [],
    "BitMasks.cat": ["bitmasks_list"],
    "PolygonMasks.__init__": ["polygons"],
    "PolygonMasks.get_bounding_boxes": [],
    "PolygonMasks.nonempty": [],
    "PolygonMasks.crop_and_resize": ["boxes", "mask_size"],
    "PolygonMasks.area": [],
    "PolygonMasks.cat": ["polymasks_list"],
    "ROIMasks.__init__": ["tensor"],
    "ROIMasks.to": ["device"],
    "ROIMasks.to_bitmasks": ["boxes", "height", "width", ("threshold", 0.5)],
    "Keypoints.__init__": ["keypoints"],
    "Keypoints.to_heatmap": ["boxes", "heatmap_size"],
    "Keypoints.cat": ["keypoints_list"],
    "heatmaps_to_keypoints": ["maps", "rois"],
    "paste_masks_in_image": ["masks", "boxes", "image_shape", ("threshold", 0.5)],
    "polygons_to_bitmask": ["polygons", "height", "width"],
    "rasterize_polygons_within_box": ["polygons", "box", "mask_size"],
    "polygon_area": ["x", "y"],
}

# detectron2 forwards these to Tensor.to / the fields' to
FORWARDING_TO = ["Instances.to", "ImageList.to", "BitMasks.to", "PolygonMasks.to", "Keypoints.to"]


def _resolve(qualname: str):
    obj = dt_structures
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("qualname", sorted(DETECTRON2_SIGNATURES))
def test_parameters_have_detectron2_names_order_and_defaults(qualname):
    expected = [(p, _EMPTY) if isinstance(p, str) else p for p in DETECTRON2_SIGNATURES[qualname]]
    params = [
        p for p in inspect.signature(_resolve(qualname)).parameters.values() if p.name not in ("self", "cls")
    ]
    positional = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert [(p.name, p.default) for p in positional[: len(expected)]] == expected
    # anything dt adds is optional, so every detectron2 call still binds the same way
    for extra in params[len(expected) :]:
        assert extra.default is not _EMPTY or extra.kind in (extra.VAR_POSITIONAL, extra.VAR_KEYWORD)


@pytest.mark.parametrize("qualname", FORWARDING_TO)
def test_to_forwards_any_arguments(qualname):
    kinds = [p.kind for p in inspect.signature(_resolve(qualname)).parameters.values()]
    assert inspect.Parameter.VAR_POSITIONAL in kinds and inspect.Parameter.VAR_KEYWORD in kinds


def test_boxes_clip_and_scale_mutate_the_object_and_its_aliases():
    t = torch.tensor([[-5.0, -5.0, 50.0, 50.0], [10.0, 10.0, 20.0, 20.0]])
    inst = Instances((30, 40))
    boxes = inst.gt_boxes = Boxes(t)  # detectron2's annotations_to_instances pattern
    assert boxes.clip((30, 40)) is None
    expected = [[0.0, 0.0, 40.0, 30.0], [10.0, 10.0, 20.0, 20.0]]
    assert inst.gt_boxes.tensor.tolist() == expected
    assert t.tolist() == expected  # a float32 tensor is wrapped without a copy, as in detectron2
    assert inst.gt_boxes.scale(0.5, 2.0) is None
    assert boxes.tensor.tolist() == [[0.0, 0.0, 20.0, 60.0], [5.0, 20.0, 10.0, 40.0]]


def test_boxes_clip_and_scale_of_no_boxes_return_none():
    empty = Boxes(torch.zeros(0, 4))
    assert empty.clip((3, 3)) is None and empty.scale(2.0, 2.0) is None
    assert empty.tensor.shape == (0, 4)


def test_rotated_in_place_methods_return_none_and_mutate():
    t = torch.tensor([[5.0, 5.0, 20.0, 4.0, 360.5], [5.0, 3.0, 4.0, 2.0, 45.0]])
    boxes = RotatedBoxes(t)
    assert boxes.normalize_angles() is None
    torch.testing.assert_close(t[:, 4], torch.tensor([0.5, 45.0]))
    assert boxes.clip((10, 10)) is None
    torch.testing.assert_close(t[0], torch.tensor([5.0, 5.0, 10.0, 4.0, 0.5]))
    assert boxes.scale(2.0, 2.0) is None
    torch.testing.assert_close(t[1], torch.tensor([10.0, 6.0, 8.0, 4.0, 45.0]))


def test_new_object_variants_keep_the_type_and_leave_the_original():
    for boxes in (
        Boxes(torch.tensor([[-1.0, 0.0, 9.0, 9.0]])),
        RotatedBoxes(torch.tensor([[4.0, 4.0, 10.0, 2.0, 0.0]])),
    ):
        before = boxes.tensor.clone()
        for new in (boxes.clipped((5, 5)), boxes.scaled(2.0, 3.0)):
            assert type(new) is type(boxes)
            assert new.tensor.data_ptr() != boxes.tensor.data_ptr()
            assert not torch.equal(new.tensor, before)
        assert torch.equal(boxes.tensor, before)


def test_rotated_get_centers_is_a_view():
    boxes = RotatedBoxes(torch.tensor([[5.0, 3.0, 4.0, 2.0, 30.0]]))
    centers = boxes.get_centers()
    centers += 1
    assert boxes.tensor[0, :2].tolist() == [6.0, 4.0]


def test_instances_get_fields_is_live_and_cat_of_one_is_itself():
    inst = Instances((4, 4), scores=torch.ones(2))
    inst.get_fields()["classes"] = torch.zeros(2)
    assert inst.has("classes")
    assert Instances.cat([inst]) is inst


def test_matched_pairwise_iou_gives_nan_for_two_empty_boxes():
    iou = matched_pairwise_iou(Boxes(torch.zeros(2, 4)), Boxes(torch.tensor([[0.0, 0, 0, 0], [1, 1, 2, 2]])))
    assert iou[0].isnan() and iou[1] == 0.0


def test_to_with_a_dtype_keeps_the_structure_dtype():
    masks = BitMasks(torch.ones(1, 2, 2, dtype=torch.bool))
    assert masks.to(torch.float32).tensor.dtype == torch.bool
    assert masks.to("cpu", non_blocking=True).tensor.dtype == torch.bool
    kpts = Keypoints(torch.zeros(1, 3, 3))
    assert kpts.to(torch.float64).tensor.dtype == torch.float32
    assert kpts.to(device="meta").device.type == "meta"


def test_polygon_area_is_float64():
    square = [np.array([0.0, 0.0, 2.0, 0.0, 2.0, 2.0, 0.0, 2.0])]
    area = PolygonMasks([square, square + square]).area()
    assert area.dtype == torch.float64 and area.tolist() == [4.0, 8.0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the device only differs for CUDA masks")
def test_bitmasks_bounding_boxes_are_on_the_cpu():
    masks = BitMasks(torch.ones(2, 3, 3, dtype=torch.bool, device="cuda"))
    boxes = masks.get_bounding_boxes()
    assert boxes.device.type == "cpu" and boxes.tensor.tolist() == [[0.0, 0.0, 3.0, 3.0]] * 2
