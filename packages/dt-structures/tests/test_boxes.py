import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dt_structures import (
    Boxes,
    BoxMode,
    matched_pairwise_iou,
    pairwise_intersection,
    pairwise_ioa,
    pairwise_iou,
    pairwise_point_box_distance,
)

DATA = Path(__file__).parent / "data"


def random_boxes(n: int, seed: int = 0, size: float = 100.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 2
    return torch.cat([xy, xy + wh], dim=1)


# --- BoxMode ---------------------------------------------------------------------------------


def test_convert_xywh_xyxy_each_container():
    xywh = [10.0, 20.0, 30.0, 40.0]
    xyxy = [10.0, 20.0, 40.0, 60.0]
    assert BoxMode.convert(xywh, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) == xyxy
    out = BoxMode.convert(tuple(xywh), BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    assert isinstance(out, tuple) and list(out) == xyxy
    arr = np.array([xywh, xywh], dtype=np.float64)
    out = BoxMode.convert(arr, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_array_equal(out, [xyxy, xyxy])
    np.testing.assert_array_equal(arr[0], xywh)  # input untouched
    t = torch.tensor([xywh])
    out = BoxMode.convert(t, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    assert isinstance(out, torch.Tensor) and out.tolist() == [xyxy]
    assert t.tolist() == [xywh]
    assert BoxMode.convert(out, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS).tolist() == [xywh]


def test_convert_accepts_integer_modes_and_same_mode_returns_input():
    box = [1.0, 2.0, 3.0, 4.0]
    assert BoxMode.convert(box, 1, 0) == [1.0, 2.0, 4.0, 6.0]
    assert BoxMode.convert(box, BoxMode.XYXY_ABS, BoxMode.XYXY_ABS) is box


def test_convert_rotated_to_horizontal():
    # a 4x2 box rotated by 90 degrees has a 2x4 bounding rectangle
    out = BoxMode.convert(torch.tensor([[5.0, 3.0, 4.0, 2.0, 90.0]]), BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    torch.testing.assert_close(out, torch.tensor([[4.0, 1.0, 6.0, 5.0]]))
    # 45 degrees: side length (w + h) / sqrt(2)
    out = BoxMode.convert([0.0, 0.0, 2.0, 2.0, 45.0], BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    r = math.sqrt(2)
    assert out == pytest.approx([-r, -r, r, r], abs=1e-6)
    xywh = BoxMode.convert([0.0, 0.0, 2.0, 2.0, 0.0], BoxMode.XYWHA_ABS, BoxMode.XYWH_ABS)
    assert xywh == pytest.approx([-1.0, -1.0, 2.0, 2.0])


def test_convert_horizontal_to_rotated():
    out = BoxMode.convert(np.array([[10, 20, 30, 40]], dtype=np.float32), BoxMode.XYWH_ABS, BoxMode.XYWHA_ABS)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[25, 40, 30, 40, 0]])
    out = BoxMode.convert(torch.tensor([[10.0, 20.0, 40.0, 60.0]]), BoxMode.XYXY_ABS, BoxMode.XYWHA_ABS)
    assert out.tolist() == [[25.0, 40.0, 30.0, 40.0, 0.0]]


def test_convert_errors():
    with pytest.raises(ValueError, match="relative"):
        BoxMode.convert([0, 0, 1, 1], BoxMode.XYXY_REL, BoxMode.XYXY_ABS)
    with pytest.raises(ValueError, match="to_mode=XYWH_REL"):
        BoxMode.convert([0, 0, 1, 1], BoxMode.XYXY_ABS, BoxMode.XYWH_REL)
    with pytest.raises(ValueError, match="from_mode"):
        BoxMode.convert([0, 0, 1, 1], 7, BoxMode.XYXY_ABS)
    with pytest.raises(ValueError, match="4 or 5"):
        BoxMode.convert([0, 0, 1], BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    with pytest.raises(ValueError, match="last dimension"):
        BoxMode.convert(torch.zeros(3, 4), BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    with pytest.raises(TypeError, match="box must be"):
        BoxMode.convert("0 0 1 1", BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)


def test_convert_empty_and_batched_dims():
    out = BoxMode.convert(torch.zeros(0, 4), BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    assert out.shape == (0, 4)
    out = BoxMode.convert(torch.zeros(0, 5), BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    assert out.shape == (0, 4)
    out = BoxMode.convert(torch.ones(2, 3, 4), BoxMode.XYWH_ABS, BoxMode.XYWHA_ABS)
    assert out.shape == (2, 3, 5)


finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)
positive = st.floats(0.0, 1e3, allow_nan=False, width=32)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(finite, finite, positive, positive), min_size=1, max_size=8))
def test_convert_round_trips(rows):
    xywh = torch.tensor(rows, dtype=torch.float64)
    xyxy = BoxMode.convert(xywh, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    torch.testing.assert_close(BoxMode.convert(xyxy, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS), xywh)
    xywha = BoxMode.convert(xywh, BoxMode.XYWH_ABS, BoxMode.XYWHA_ABS)
    torch.testing.assert_close(BoxMode.convert(xywha, BoxMode.XYWHA_ABS, BoxMode.XYWH_ABS), xywh)
    torch.testing.assert_close(BoxMode.convert(xywha, BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS), xyxy)


# --- Boxes -----------------------------------------------------------------------------------


def test_boxes_construction():
    b = Boxes([[0, 0, 1, 2]])
    assert b.tensor.dtype == torch.float32 and b.tensor.shape == (1, 4)
    assert Boxes(np.zeros((3, 4))).tensor.dtype == torch.float32
    assert Boxes(torch.zeros(3, 4, dtype=torch.float64)).tensor.dtype == torch.float32
    t = torch.zeros(2, 4)
    assert Boxes(t).tensor is t  # float32 tensors are used without a copy
    assert Boxes([]).tensor.shape == (0, 4)
    assert Boxes(torch.empty(0)).tensor.shape == (0, 4)
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        Boxes(torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        Boxes(torch.zeros(4))
    with pytest.raises(TypeError, match="Boxes takes"):
        Boxes("boxes")


def test_area_centers_nonempty():
    b = Boxes(torch.tensor([[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 1.0, 5.0], [5.0, 5.0, 4.0, 6.0]]))
    assert b.area().tolist() == [6.0, 0.0, -1.0]
    assert b.get_centers().tolist() == [[1.0, 1.5], [1.0, 3.0], [4.5, 5.5]]
    assert b.nonempty().tolist() == [True, False, False]
    assert b.nonempty(threshold=2.5).tolist() == [False, False, False]


def test_clip_in_place_and_clipped_returns_new():
    t = torch.tensor([[-5.0, -5.0, 50.0, 50.0], [10.0, 10.0, 20.0, 20.0]])
    b = Boxes(t.clone())
    clipped = b.clipped((30, 40))
    assert clipped.tensor.tolist() == [[0.0, 0.0, 40.0, 30.0], [10.0, 10.0, 20.0, 20.0]]
    assert torch.equal(b.tensor, t)  # clipped() does not mutate
    assert b.clip((30, 40)) is None
    assert torch.equal(b.tensor, clipped.tensor)


def test_clip_rejects_non_finite_and_bad_size():
    with pytest.raises(ValueError, match="inf or NaN"):
        Boxes(torch.tensor([[0.0, 0.0, float("inf"), 1.0]])).clip((10, 10))
    with pytest.raises(ValueError, match="box_size"):
        Boxes(torch.zeros(1, 4)).clip((10, 10, 3))


def test_inside_box():
    b = Boxes(torch.tensor([[0.0, 0.0, 9.0, 9.0], [-1.0, 0.0, 5.0, 5.0], [0.0, 0.0, 10.0, 5.0]]))
    assert b.inside_box((10, 10)).tolist() == [True, False, False]
    assert b.inside_box((10, 10), boundary_threshold=1).tolist() == [True, True, True]


def test_scale_in_place_and_scaled_returns_new():
    b = Boxes(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    s = b.scaled(2.0, 0.5)
    assert s.tensor.tolist() == [[2.0, 1.0, 6.0, 2.0]]
    assert b.tensor.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert b.scale(2.0, 0.5) is None
    assert b.tensor.tolist() == [[2.0, 1.0, 6.0, 2.0]]


def test_indexing_returns_boxes():
    b = Boxes(random_boxes(5))
    for item in (1, -1, np.int64(2), torch.tensor(3)):
        one = b[item]
        assert isinstance(one, Boxes) and len(one) == 1
        assert torch.equal(one.tensor[0], b.tensor[int(item)])
    assert len(b[1:4]) == 3
    mask = torch.tensor([True, False, True, False, False])
    assert torch.equal(b[mask].tensor, b.tensor[[0, 2]])
    assert torch.equal(b[torch.tensor([4, 0])].tensor, b.tensor[[4, 0]])
    assert torch.equal(b[[4, 0]].tensor, b.tensor[[4, 0]])
    assert len(b[torch.zeros(5, dtype=torch.bool)]) == 0
    with pytest.raises(TypeError, match="single index"):
        b[:, 0]
    with pytest.raises(IndexError):
        b[5]


def test_len_iter_repr_clone_to_device():
    b = Boxes(random_boxes(3))
    assert len(b) == 3
    rows = list(b)
    assert len(rows) == 3 and rows[0].shape == (4,)
    assert repr(b).startswith("Boxes(tensor(")
    c = b.clone()
    c.tensor[0, 0] = -1
    assert b.tensor[0, 0] != -1
    assert b.device == torch.device("cpu")
    m = b.to("meta")
    assert isinstance(m, Boxes) and m.device.type == "meta" and m.tensor.shape == (3, 4)


def test_cat():
    a, b = Boxes(random_boxes(2)), Boxes(random_boxes(3, seed=1))
    c = Boxes.cat([a, b])
    assert torch.equal(c.tensor, torch.cat([a.tensor, b.tensor]))
    c.tensor[0, 0] = -100
    assert a.tensor[0, 0] != -100  # no shared storage
    assert Boxes.cat([]).tensor.shape == (0, 4)
    with pytest.raises(TypeError, match=r"boxes_list\[1\]"):
        Boxes.cat([a, a.tensor])
    with pytest.raises(TypeError, match="list or tuple"):
        Boxes.cat(a)


def test_non_contiguous_input():
    base = random_boxes(6)
    strided = base[::2]
    transposed = base.t().contiguous().t()
    assert not strided.is_contiguous() and not transposed.is_contiguous()
    assert torch.equal(pairwise_iou(Boxes(strided), Boxes(transposed)), pairwise_iou(strided, base))
    assert torch.equal(Boxes(transposed).area(), Boxes(base).area())


# --- pairwise functions ----------------------------------------------------------------------


def test_pairwise_iou_matches_golden():
    golden = torch.load(DATA / "golden_box_iou.pt", weights_only=True)
    iou = pairwise_iou(Boxes(golden["boxes1"]), Boxes(golden["boxes2"]))
    torch.testing.assert_close(iou, golden["iou"], atol=1e-6, rtol=0)


def test_pairwise_iou_known_values_and_empty_boxes():
    b1 = Boxes(torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]]))
    b2 = Boxes(torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]]))
    iou = pairwise_iou(b1, b2)
    torch.testing.assert_close(iou, torch.tensor([[1 / 7, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    assert pairwise_iou(Boxes([]), b2).shape == (0, 3)
    assert pairwise_iou(b1, Boxes([])).shape == (2, 0)


def test_pairwise_intersection_and_ioa():
    b1 = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b2 = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 4.0, 4.0], [9.0, 9.0, 9.0, 9.0]])
    assert pairwise_intersection(b1, b2).tolist() == [[1.0, 4.0, 0.0]]
    torch.testing.assert_close(pairwise_ioa(b1, b2), torch.tensor([[0.25, 0.25, 0.0]]))


def test_pairwise_functions_validate():
    with pytest.raises(ValueError, match="boxes2"):
        pairwise_iou(torch.zeros(1, 4), torch.zeros(1, 5))
    with pytest.raises(TypeError, match="boxes1"):
        pairwise_iou([[0, 0, 1, 1]], torch.zeros(1, 4))
    with pytest.raises(ValueError, match="same length"):
        matched_pairwise_iou(torch.zeros(1, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="points"):
        pairwise_point_box_distance(torch.zeros(3), torch.zeros(1, 4))


def test_float64_and_meta_device():
    b = random_boxes(4).double()
    iou = pairwise_iou(b, b)
    assert iou.dtype == torch.float64
    torch.testing.assert_close(iou.diagonal(), torch.ones(4, dtype=torch.float64))
    meta = Boxes(random_boxes(4).to("meta"))
    assert pairwise_iou(meta, meta).shape == (4, 4)
    assert meta.clipped((5, 5)).tensor.device.type == "meta"
    assert matched_pairwise_iou(meta, meta).shape == (4,)


def test_matched_pairwise_iou_is_the_diagonal_but_nan_for_two_empty_boxes():
    a, b = random_boxes(7), random_boxes(7, seed=3)
    b[0] = a[0]
    b[1] = torch.tensor([500.0, 500.0, 501.0, 501.0])
    a[2] = b[2] = 0  # two empty boxes: 0 / 0 is NaN, as in detectron2
    m = matched_pairwise_iou(Boxes(a), Boxes(b))
    others = torch.arange(7) != 2
    torch.testing.assert_close(m[others], pairwise_iou(a, b).diagonal()[others])
    assert m[0] == 1.0 and m[1] == 0.0 and m[2].isnan()


def test_pairwise_point_box_distance():
    points = torch.tensor([[1.0, 1.0], [5.0, 0.0]])
    boxes = Boxes(torch.tensor([[0.0, 0.0, 2.0, 4.0]]))
    d = pairwise_point_box_distance(points, boxes)
    assert d.shape == (2, 1, 4)
    assert d[:, 0].tolist() == [[1.0, 1.0, 1.0, 3.0], [5.0, 0.0, -3.0, 4.0]]


box_rows = st.tuples(
    st.floats(0, 100, width=32),
    st.floats(0, 100, width=32),
    st.floats(0, 50, width=32),
    st.floats(0, 50, width=32),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(box_rows, min_size=1, max_size=6), st.lists(box_rows, min_size=1, max_size=6))
def test_iou_symmetric_and_bounded(rows1, rows2):
    b1 = Boxes(BoxMode.convert(torch.tensor(rows1), BoxMode.XYWH_ABS, BoxMode.XYXY_ABS))
    b2 = Boxes(BoxMode.convert(torch.tensor(rows2), BoxMode.XYWH_ABS, BoxMode.XYXY_ABS))
    iou = pairwise_iou(b1, b2)
    assert torch.equal(iou, pairwise_iou(b2, b1).t())
    assert bool(((iou >= 0) & (iou <= 1 + 1e-6)).all())
    ioa = pairwise_ioa(b1, b2)
    assert bool((ioa >= iou - 1e-6).all())  # the union is at least the area of boxes2
    self_iou = pairwise_iou(b1, b1).diagonal()
    expected = (b1.area() > 0).float()
    torch.testing.assert_close(self_iou, expected)
