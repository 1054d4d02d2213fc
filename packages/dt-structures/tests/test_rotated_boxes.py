import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dt_structures import Boxes, BoxMode, RotatedBoxes, pairwise_iou, pairwise_iou_rotated


def rboxes(*rows) -> RotatedBoxes:
    return RotatedBoxes(torch.tensor(rows, dtype=torch.float32))


def test_construction_and_tensor_surface():
    b = rboxes([5, 3, 4, 2, 30], [1, 1, 2, 2, -90], [0, 0, 0, 1, 0])
    assert isinstance(b, Boxes) and len(b) == 3
    assert b.tensor.shape == (3, 5)
    assert RotatedBoxes([]).tensor.shape == (0, 5)
    with pytest.raises(ValueError, match=r"\[N, 5\]"):
        RotatedBoxes(torch.zeros(2, 4))
    assert b.area().tolist() == [8.0, 4.0, 0.0]
    assert b.nonempty().tolist() == [True, True, False]
    assert b.get_centers().tolist() == [[5.0, 3.0], [1.0, 1.0], [0.0, 0.0]]
    one = b[1]
    assert isinstance(one, RotatedBoxes) and one.tensor.tolist() == [[1, 1, 2, 2, -90]]
    assert isinstance(b[torch.tensor([True, False, True])], RotatedBoxes)
    assert isinstance(b.clone(), RotatedBoxes) and isinstance(b.to("meta"), RotatedBoxes)
    cat = RotatedBoxes.cat([b, one])
    assert isinstance(cat, RotatedBoxes) and len(cat) == 4
    assert RotatedBoxes.cat([]).tensor.shape == (0, 5)
    with pytest.raises(TypeError):
        RotatedBoxes.cat([b, Boxes(torch.zeros(1, 4))])
    assert [tuple(r.shape) for r in b] == [(5,)] * 3
    assert repr(one).startswith("RotatedBoxes(tensor(")


def test_normalize_angles_in_place():
    b = rboxes([0, 0, 1, 1, 180], [0, 0, 1, 1, -180], [0, 0, 1, 1, 270], [0, 0, 1, 1, -540], [0, 0, 1, 1, 10])
    assert b.normalize_angles() is None
    assert b.tensor[:, 4].tolist() == [-180.0, -180.0, -90.0, -180.0, 10.0]


def test_clip_only_near_horizontal_boxes():
    b = rboxes([5, 5, 20, 4, 0.5], [5, 5, 20, 4, 45], [5, 5, 20, 4, 360.5], [50, 50, 10, 10, 0])
    clipped = b.clipped((10, 10))
    # box 0 (and box 2, the same angle modulo 360) clipped horizontally: x in [0, 10]
    torch.testing.assert_close(clipped.tensor[0], torch.tensor([5.0, 5.0, 10.0, 4.0, 0.5]))
    torch.testing.assert_close(clipped.tensor[2], torch.tensor([5.0, 5.0, 10.0, 4.0, 0.5]))
    assert torch.equal(clipped.tensor[1], b.tensor[1])  # 45 degrees: untouched
    torch.testing.assert_close(clipped.tensor[3], torch.tensor([10.0, 10.0, 0.0, 0.0, 0.0]))
    assert b.tensor[2, 4] == 360.5  # clipped() did not mutate
    loose = b.clipped((10, 10), clip_angle_threshold=50.0)
    torch.testing.assert_close(loose.tensor[1], torch.tensor([5.0, 5.0, 10.0, 4.0, 45.0]))
    assert b.clip((10, 10)) is None
    torch.testing.assert_close(b.tensor, clipped.tensor)


def test_inside_box_uses_bounding_rectangle():
    b = rboxes([5, 5, 4, 2, 0], [5, 5, 11, 2, 0], [5, 8, 12, 2, 90], [5, 5, 8, 8, 45])
    assert b.inside_box((10, 10)).tolist() == [True, False, False, False]
    assert b.inside_box((20, 10)).tolist() == [True, False, True, False]
    assert b.inside_box((10, 10), boundary_threshold=1).tolist() == [True, True, False, True]


def test_scale_in_place_and_scaled_returns_new():
    b = rboxes([5, 3, 4, 2, 0], [5, 3, 4, 2, 90], [5, 3, 4, 2, 30])
    s = b.scaled(2.0, 3.0)
    torch.testing.assert_close(s.tensor[0], torch.tensor([10.0, 9.0, 8.0, 6.0, 0.0]))
    torch.testing.assert_close(s.tensor[1], torch.tensor([10.0, 9.0, 12.0, 4.0, 90.0]))
    same = b.scaled(2.0, 2.0)  # uniform scaling keeps the angle
    torch.testing.assert_close(same.tensor[2], torch.tensor([10.0, 6.0, 8.0, 4.0, 30.0]))
    assert b.tensor[0, 0] == 5
    assert b.scale(2.0, 3.0) is None
    torch.testing.assert_close(b.tensor, s.tensor)


@settings(max_examples=40, deadline=None)
@given(
    st.floats(-100, 100, width=32),
    st.floats(-100, 100, width=32),
    st.floats(0.125, 50, width=32),
    st.floats(0.125, 50, width=32),
    st.floats(-720, 720, width=32),
)
def test_rotated_bounding_rectangle_contains_corners(cx, cy, w, h, a):
    box = torch.tensor([[cx, cy, w, h, a]], dtype=torch.float64)
    x0, y0, x1, y1 = BoxMode.convert(box, BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)[0].tolist()
    t = math.radians(a)
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        # counter-clockwise on screen (y down)
        px = cx + dx * math.cos(t) + dy * math.sin(t)
        py = cy - dx * math.sin(t) + dy * math.cos(t)
        assert x0 - 1e-6 <= px <= x1 + 1e-6 and y0 - 1e-6 <= py <= y1 + 1e-6
    rotated = RotatedBoxes(box)
    rotated.normalize_angles()
    assert -180 <= rotated.tensor[0, 4].item() < 180


def test_pairwise_iou_rotated_validates_before_needing_dt_ops():
    with pytest.raises(TypeError, match="boxes2"):
        pairwise_iou_rotated(rboxes([0, 0, 1, 1, 0]), torch.zeros(1, 4))


def test_pairwise_iou_rotated_with_dt_ops():
    pytest.importorskip("dt_ops")
    a = rboxes([5, 5, 4, 2, 0], [5, 5, 4, 2, 90], [50, 50, 2, 2, 30])
    b = rboxes([5, 5, 4, 2, 0], [6, 5, 4, 2, 0])
    iou = pairwise_iou_rotated(a, b)
    assert iou.shape == (3, 2)
    # axis-aligned cases equal the horizontal IoU
    horizontal = pairwise_iou(
        Boxes(BoxMode.convert(a.tensor[:2], BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)),
        Boxes(BoxMode.convert(b.tensor, BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)),
    )
    torch.testing.assert_close(iou[:2], horizontal, atol=1e-5, rtol=0)
    assert iou[2].tolist() == [0.0, 0.0]
    torch.testing.assert_close(pairwise_iou_rotated(b, a), iou.t(), atol=1e-6, rtol=0)
