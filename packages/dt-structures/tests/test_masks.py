import numpy as np
import pytest
import torch

from dt_structures import (
    BitMasks,
    Boxes,
    Instances,
    PolygonMasks,
    polygon_area,
    polygons_to_bitmask,
    rasterize_polygons_within_box,
)

SQUARE = np.array([2.0, 2.0, 8.0, 2.0, 8.0, 8.0, 2.0, 8.0])  # the square [2, 8] x [2, 8]
TRIANGLE = np.array([10.0, 0.0, 14.0, 0.0, 10.0, 4.0])


def test_polygons_to_bitmask():
    mask = polygons_to_bitmask([SQUARE], 10, 12)
    assert mask.dtype == bool and mask.shape == (10, 12)
    assert mask[2:8, 2:8].all() and mask.sum() == 36
    union = polygons_to_bitmask([SQUARE, TRIANGLE], 10, 16)
    assert union.sum() > 36
    assert not polygons_to_bitmask([], 4, 5).any()
    with pytest.raises(ValueError, match=r"polygons\[0\]"):
        polygons_to_bitmask([np.array([0.0, 0.0, 1.0, 1.0])], 4, 4)


def test_rasterize_within_box_stretches_box_to_grid():
    polygons = [SQUARE.copy()]
    full = rasterize_polygons_within_box(polygons, np.array([2.0, 2.0, 8.0, 8.0]), 12)
    assert full.dtype == torch.bool and full.shape == (12, 12) and bool(full.all())
    assert np.array_equal(polygons[0], SQUARE)  # input not modified
    left = rasterize_polygons_within_box([SQUARE], np.array([-4.0, 2.0, 8.0, 8.0], dtype=np.float32), 12)
    assert not bool(left[:, :6].any()) and bool(left[:, 6:].all())
    # a degenerate box side counts as 0.1 instead of dividing by zero
    thin = rasterize_polygons_within_box([SQUARE], np.array([2.0, 2.0, 2.0, 8.0]), 4)
    assert thin.shape == (4, 4)


def test_rasterize_matches_scaling_the_polygon_by_hand():
    poly = np.array([3.3, 1.7, 9.1, 2.2, 7.7, 9.9, 2.5, 6.1])
    box = np.array([1.5, 0.5, 10.25, 11.0], dtype=np.float32)
    size = 28
    scaled = poly.copy()
    scaled[0::2] = (poly[0::2] - np.float64(box[0])) * (size / np.float64(box[2] - box[0]))
    scaled[1::2] = (poly[1::2] - np.float64(box[1])) * (size / np.float64(box[3] - box[1]))
    expected = polygons_to_bitmask([scaled], size, size)
    out = rasterize_polygons_within_box([poly], box, size).numpy()
    assert (out != expected).sum() <= 2  # float32 vs float64 ratio can move an edge pixel


def test_polygon_masks_basics():
    pm = PolygonMasks([[SQUARE], [SQUARE, TRIANGLE.tolist()], [torch.tensor(TRIANGLE)]])
    assert len(pm) == 3 and repr(pm) == "PolygonMasks(num_instances=3)"
    assert all(p.dtype == np.float64 for inst in pm for p in inst)
    torch.testing.assert_close(pm.area(), torch.tensor([36.0, 44.0, 8.0], dtype=torch.float64))
    assert polygon_area(SQUARE[0::2], SQUARE[1::2]) == 36.0
    boxes = pm.get_bounding_boxes()
    assert isinstance(boxes, Boxes)
    assert boxes.tensor.tolist() == [[2, 2, 8, 8], [2, 0, 14, 8], [10, 0, 14, 4]]
    assert pm.nonempty().tolist() == [True, True, True]
    assert pm.to("cuda") is pm and pm.device == torch.device("cpu")


def test_polygon_masks_indexing_and_cat():
    pm = PolygonMasks([[SQUARE], [TRIANGLE], [SQUARE, TRIANGLE]])
    assert len(pm[1]) == 1 and np.array_equal(pm[1].polygons[0][0], TRIANGLE)
    assert len(pm[torch.tensor(2)]) == 1
    assert len(pm[0:2]) == 2
    assert len(pm[[2, 0]]) == 2 and len(pm[[2, 0]].polygons[0]) == 2
    assert len(pm[torch.tensor([True, False, True])]) == 2
    assert len(pm[torch.tensor([1])]) == 1
    with pytest.raises(TypeError, match="dtype"):
        pm[torch.tensor([1.0])]
    with pytest.raises(IndexError):
        pm[torch.tensor([True, False])]
    cat = PolygonMasks.cat([pm, pm[0]])
    assert len(cat) == 4
    with pytest.raises(TypeError, match=r"polymasks_list\[1\]"):
        PolygonMasks.cat([pm, [[SQUARE]]])


def test_polygon_masks_validation():
    with pytest.raises(TypeError, match="polygons"):
        PolygonMasks(np.zeros((1, 8)))
    with pytest.raises(TypeError, match=r"polygons\[0\]"):
        PolygonMasks([SQUARE])
    with pytest.raises(ValueError, match=r"polygons\[0\]\[1\]"):
        PolygonMasks([[SQUARE, [1.0, 2.0, 3.0, 4.0]]])


def test_polygon_masks_crop_and_resize():
    pm = PolygonMasks([[SQUARE], [TRIANGLE]])
    boxes = torch.tensor([[2.0, 2.0, 8.0, 8.0], [10.0, 0.0, 14.0, 4.0]])
    out = pm.crop_and_resize(boxes, 8)
    assert out.shape == (2, 8, 8) and out.dtype == torch.bool
    assert bool(out[0].all())
    assert torch.equal(out[1], rasterize_polygons_within_box([TRIANGLE], boxes[1].numpy(), 8))
    assert torch.equal(pm.crop_and_resize(Boxes(boxes), 8), out)
    assert pm[[]].crop_and_resize(torch.zeros(0, 4), 8).shape == (0, 8, 8)
    with pytest.raises(ValueError, match="boxes"):
        pm.crop_and_resize(boxes[:1], 8)
    with pytest.raises(ValueError, match="mask_size"):
        pm.crop_and_resize(boxes, 0)


def test_bitmasks_basics():
    t = torch.zeros(3, 10, 12, dtype=torch.bool)
    t[0, 2:5, 3:9] = True
    t[2, 9, 11] = True
    bm = BitMasks(t)
    assert bm.image_size == (10, 12) and len(bm) == 3
    assert bm.nonempty().tolist() == [True, False, True]
    assert bm.get_bounding_boxes().tensor.tolist() == [[3, 2, 9, 5], [0, 0, 0, 0], [11, 9, 12, 10]]
    assert BitMasks(np.ones((2, 3, 4), dtype=np.uint8)).tensor.dtype == torch.bool
    assert BitMasks(torch.ones(1, 2, 2)).tensor.dtype == torch.bool
    assert len(bm[1]) == 1 and len(bm[1:]) == 2 and len(bm[torch.tensor([True, False, True])]) == 2
    assert len(list(bm)) == 3
    assert repr(bm) == "BitMasks(num_instances=3, image_size=(10, 12))"
    assert bm.to("meta").device.type == "meta"
    assert len(BitMasks.cat([bm, bm[0]])) == 4
    assert BitMasks(torch.zeros(0, 4, 5)).get_bounding_boxes().tensor.shape == (0, 4)
    assert BitMasks(torch.ones(2, 0, 5)).get_bounding_boxes().tensor.tolist() == [[0.0] * 4] * 2
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        BitMasks(torch.zeros(4, 4))
    with pytest.raises(TypeError, match=r"bitmasks_list\[0\]"):
        BitMasks.cat([t])


def test_bitmasks_from_polygon_masks_and_in_instances():
    pm = PolygonMasks([[SQUARE], [TRIANGLE]])
    bm = BitMasks.from_polygon_masks(pm, 10, 16)
    assert bm.tensor.shape == (2, 10, 16)
    assert np.array_equal(bm.tensor[0].numpy(), polygons_to_bitmask([SQUARE], 10, 16))
    assert torch.equal(BitMasks.from_polygon_masks(pm.polygons, 10, 16).tensor, bm.tensor)
    assert BitMasks.from_polygon_masks([], 3, 4).tensor.shape == (0, 3, 4)
    inst = Instances((10, 16), gt_masks=bm, gt_polys=pm)
    sub = inst[torch.tensor([False, True])]
    assert isinstance(sub.gt_masks, BitMasks) and isinstance(sub.gt_polys, PolygonMasks)
    assert len(Instances.cat([inst, sub])) == 3


def test_bitmasks_crop_and_resize_with_dt_ops():
    pytest.importorskip("dt_ops")
    t = torch.zeros(2, 20, 20, dtype=torch.bool)
    t[0, 4:12, 4:12] = True
    t[1] = torch.rand(20, 20, generator=torch.Generator().manual_seed(0)) > 0.5
    bm = BitMasks(t)
    boxes = torch.tensor([[4.0, 4.0, 12.0, 12.0], [0.0, 0.0, 20.0, 20.0]])
    out = bm.crop_and_resize(boxes, 8)
    assert out.shape == (2, 8, 8) and out.dtype == torch.bool
    assert bool(out[0].all())
    assert torch.equal(bm.crop_and_resize(boxes.double(), 20)[1], t[1])  # identity when box = image
    assert bm[[]].crop_and_resize(torch.zeros(0, 4), 8).shape == (0, 8, 8)


def test_bitmasks_crop_and_resize_validates_before_needing_dt_ops():
    bm = BitMasks(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="boxes"):
        bm.crop_and_resize(torch.zeros(3, 4), 2)
    with pytest.raises(ValueError, match="mask_size"):
        bm.crop_and_resize(torch.zeros(2, 4), 2.5)
