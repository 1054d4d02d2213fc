import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from dt_data import transforms as T


def _img(h=30, w=40, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def test_resize_uint8_matches_pil_and_float_matches_interpolate():
    img = _img()
    t = T.ResizeTransform(30, 40, 17, 23)
    expected = np.asarray(Image.fromarray(img).resize((23, 17), Image.BILINEAR))
    np.testing.assert_array_equal(t.apply_image(img), expected)
    single = t.apply_image(img[:, :, :1])
    assert single.shape == (17, 23, 1)
    f = img.astype(np.float32)
    ref = F.interpolate(
        torch.from_numpy(f).permute(2, 0, 1)[None], (17, 23), mode="bilinear", align_corners=False
    )
    np.testing.assert_allclose(t.apply_image(f), ref[0].permute(1, 2, 0).numpy(), rtol=1e-6)
    seg = np.arange(30 * 40, dtype=np.uint8).reshape(30, 40)
    assert set(np.unique(t.apply_segmentation(seg))) <= set(np.unique(seg))
    np.testing.assert_allclose(t.apply_coords(np.array([[40.0, 30.0]])), [[23.0, 17.0]])
    with pytest.raises(ValueError, match="does not match"):
        t.apply_image(_img(10, 10))


def test_hflip_vflip_image_coords_boxes_and_no_mutation():
    img = _img()
    coords = np.array([[1.0, 2.0], [40.0, 30.0]])
    h = T.HFlipTransform(40)
    np.testing.assert_array_equal(h.apply_image(img), img[:, ::-1])
    np.testing.assert_allclose(h.apply_coords(coords), [[39.0, 2.0], [0.0, 30.0]])
    np.testing.assert_allclose(coords, [[1.0, 2.0], [40.0, 30.0]])
    np.testing.assert_allclose(h.apply_box(np.array([[1.0, 2.0, 11.0, 12.0]])), [[29.0, 2.0, 39.0, 12.0]])
    v = T.VFlipTransform(30)
    np.testing.assert_allclose(v.apply_coords(coords), [[1.0, 28.0], [40.0, 0.0]])
    np.testing.assert_allclose(h.apply_rotated_box(np.array([[10.0, 5, 4, 2, 30]])), [[30.0, 5, 4, 2, -30]])


def test_crop_clips_polygons_and_inverts_to_pad():
    crop = T.CropTransform(10, 5, 20, 10, orig_w=40, orig_h=30)
    square = np.array([[5.0, 0.0], [15.0, 0.0], [15.0, 10.0], [5.0, 10.0]])  # half inside on x, y in [5, 10]
    (poly,) = crop.apply_polygons([square])
    xs, ys = poly[:, 0], poly[:, 1]
    assert xs.min() == 0 and xs.max() == 5 and ys.min() == 0 and ys.max() == 5
    assert crop.apply_polygons([square + 100]) == []
    img = _img()
    cropped = crop.apply_image(img)
    assert cropped.shape == (10, 20, 3)
    restored = crop.inverse().apply_image(cropped)
    assert restored.shape == img.shape
    np.testing.assert_array_equal(restored[5:15, 10:30], img[5:15, 10:30])
    assert restored[0, 0].sum() == 0


def test_pad_uses_separate_segmentation_value():
    pad = T.PadTransform(1, 2, 3, 4, orig_w=5, orig_h=5, pad_value=7, seg_pad_value=255)
    out = pad.apply_image(np.zeros((5, 5, 3), np.uint8))
    seg = pad.apply_segmentation(np.zeros((5, 5), np.uint8))
    assert out.shape == (11, 9, 3) and out[0, 0, 0] == 7 and seg.shape == (11, 9) and seg[0, 0] == 255
    np.testing.assert_allclose(pad.apply_coords(np.array([[0.0, 0.0]])), [[1.0, 2.0]])


def test_rotation_expand_90_degrees():
    t = T.RotationTransform(30, 40, 90)
    img = _img()
    out = t.apply_image(img)
    assert out.shape == (40, 30, 3)
    np.testing.assert_array_equal(out, np.rot90(img))  # CCW rotation of the pixel grid
    np.testing.assert_allclose(t.apply_coords(np.array([[40.0, 0.0]])), [[0.0, 0.0]], atol=1e-9)
    inv = t.inverse()
    np.testing.assert_allclose(
        inv.apply_coords(t.apply_coords(np.array([[3.0, 4.0]]))), [[3.0, 4.0]], atol=1e-6
    )
    assert T.RotationTransform(30, 40, 360).apply_image(img) is img


def test_extent_identity_rect_keeps_coords():
    t = T.ExtentTransform((0, 0, 40, 30), (30, 40))
    np.testing.assert_allclose(t.apply_coords(np.array([[3.0, 4.0]])), [[3.0, 4.0]])
    assert t.apply_image(_img()).shape == (30, 40, 3)


def test_blend_clips_uint8():
    t = T.BlendTransform(src_image=0, src_weight=-1.0, dst_weight=2.0)
    out = t.apply_image(np.array([[[200, 10, 0]]], np.uint8))
    np.testing.assert_array_equal(out, [[[255, 20, 0]]])
    assert isinstance(t.inverse(), T.NoOpTransform)


def test_transform_list_flattens_inverts_and_dispatches():
    tl = T.TransformList(
        [T.HFlipTransform(40), T.TransformList([T.NoOpTransform(), T.ResizeTransform(30, 40, 60, 80)])]
    )
    assert len(tl) == 2
    assert len(tl + T.VFlipTransform(60)) == 3 and isinstance(
        (T.VFlipTransform(60) + tl)[0], T.VFlipTransform
    )
    pts = np.array([[1.0, 2.0]])
    np.testing.assert_allclose(tl.inverse().apply_coords(tl.apply_coords(pts)), pts)
    np.testing.assert_allclose(tl.apply_rotated_box(np.array([[10.0, 5, 4, 2, 0]])), [[60.0, 10, 8, 4, 0]])
    with pytest.raises(TypeError, match="Transform"):
        T.TransformList([1])


@settings(max_examples=40, deadline=None)
@given(
    x0=st.integers(0, 10),
    y0=st.integers(0, 10),
    new_h=st.integers(5, 90),
    new_w=st.integers(5, 90),
    flip=st.booleans(),
    pts=st.lists(st.tuples(st.floats(0, 40), st.floats(0, 30)), min_size=1, max_size=5),
)
def test_invertible_chains_round_trip_coords(x0, y0, new_h, new_w, flip, pts):
    tfms = [T.CropTransform(x0, y0, 25, 15, orig_w=40, orig_h=30), T.ResizeTransform(15, 25, new_h, new_w)]
    if flip:
        tfms.append(T.HFlipTransform(new_w))
    tl = T.TransformList(tfms)
    coords = np.asarray(pts, dtype=np.float64)
    np.testing.assert_allclose(tl.inverse().apply_coords(tl.apply_coords(coords)), coords, atol=1e-9)


def test_color_transforms_touch_only_images():
    from PIL import ImageEnhance

    img = _img()
    t = T.ColorTransform(lambda x: 255 - x)
    np.testing.assert_array_equal(t.apply_image(img), 255 - img)
    np.testing.assert_array_equal(t.apply_coords(np.array([[1.0, 2.0]])), [[1.0, 2.0]])
    seg = np.ones((30, 40), np.uint8)
    assert t.apply_segmentation(seg) is seg
    p = T.PILColorTransform(lambda im: ImageEnhance.Brightness(im).enhance(0.0))
    assert not p.apply_image(img).any() and p.apply_image(img[:, :, :1]).shape == (30, 40, 1)
    with pytest.raises(TypeError, match="uint8"):
        p.apply_image(img.astype(np.float32))


@settings(max_examples=40, deadline=None)
@given(
    pts=st.lists(st.tuples(st.floats(-20, 60), st.floats(-20, 50)), min_size=3, max_size=8, unique=True),
    x0=st.integers(0, 20),
    y0=st.integers(0, 15),
)
def test_crop_of_convex_polygon_stays_in_window_and_matches_raster_area(pts, x0, y0):
    import cv2

    hull = cv2.convexHull(np.asarray(pts, np.float32)).reshape(-1, 2).astype(np.float64)
    assume(len(hull) >= 3 and cv2.contourArea(hull.astype(np.float32)) > 4)
    crop = T.CropTransform(x0, y0, 20, 15)
    out = crop.apply_polygons([hull])
    # exact area of hull ∩ window by fine rasterization of both
    scale = 8
    full = np.zeros((80 * scale, 100 * scale), np.uint8)
    cv2.fillPoly(full, [np.round((hull + 20) * scale).astype(np.int32)], 1)
    window = full[(y0 + 20) * scale : (y0 + 35) * scale, (x0 + 20) * scale : (x0 + 40) * scale]
    expected = window.sum() / scale**2
    got = sum(cv2.contourArea(p.astype(np.float32)) for p in out)
    band = (cv2.arcLength(hull.astype(np.float32), True) + 70) / scale  # rasterization boundary error
    assert abs(got - expected) <= band
    for p in out:
        assert (p >= -1e-9).all() and (p[:, 0] <= 20 + 1e-9).all() and (p[:, 1] <= 15 + 1e-9).all()


def _signed_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def test_crop_splits_concave_polygon_into_separate_polygons():
    # a "U" opening downwards (y grows down): legs at x in [0, 10] and [20, 30], bridge at y in [0, 5]
    u = np.array([[0, 0], [30, 0], [30, 20], [20, 20], [20, 5], [10, 5], [10, 20], [0, 20]], np.float64)
    out = T.CropTransform(0, 10, 30, 10).apply_polygons([u])  # keeps only the legs
    assert len(out) == 2
    boxes = sorted((p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()) for p in out)
    assert boxes == [(0, 0, 10, 10), (20, 0, 30, 10)]
    for p in out:
        assert p.shape == (4, 2) and p.dtype == np.float64
        assert not np.array_equal(p[0], p[-1])  # closing vertex removed
        assert _signed_area(p) == pytest.approx(-100.0)  # GEOS's ring orientation, kept as fvcore does
    # a window containing the whole polygon returns one ring of the same area, oriented the same way
    (whole,) = T.CropTransform(0, 0, 30, 30).apply_polygons([u[::-1]])
    assert len(whole) == 8 and _signed_area(whole) == pytest.approx(-450.0)
    np.testing.assert_array_equal(u, u.copy())


def test_crop_drops_lines_points_and_repairs_self_intersections():
    window = T.CropTransform(0, 0, 10, 10)
    # inside the window: the square [2, 8] x [0, 2]; the arm at x >= 10 only touches the window along
    # x == 10 (a GeometryCollection of a polygon and a line): only the polygon is kept
    poly = np.array([[2, 2], [8, 2], [8, -5], [10, -5], [10, 5], [15, 5], [15, -10], [2, -10]], np.float64)
    (piece,) = window.apply_polygons([poly])
    assert sorted(map(tuple, piece)) == [(2, 0), (2, 2), (8, 0), (8, 2)]
    edge_only = np.array([[10, 0], [20, 0], [20, 10], [10, 10]], np.float64)  # shares an edge: a line
    corner_only = np.array([[10, 10], [20, 10], [20, 20]], np.float64)  # shares a corner: a point
    collinear = np.array([[1, 1], [2, 2], [3, 3]], np.float64)  # no area
    assert window.apply_polygons([edge_only, corner_only, collinear]) == []
    bowtie = np.array([[0, 0], [6, 6], [6, 0], [0, 6]], np.float64)  # buffer(0) keeps one lobe
    (lobe,) = window.apply_polygons([bowtie])
    assert abs(_signed_area(lobe)) == pytest.approx(9.0)
    with pytest.raises(ValueError, match=r"polygons\[0\] must have at least 3 points"):
        window.apply_polygons([np.array([[0.0, 0.0], [1.0, 1.0]])])
