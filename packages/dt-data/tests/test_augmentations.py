import numpy as np
import pytest

from dt_data import transforms as T


def _img(h=30, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize(
    "h, w, short, max_size, expected",
    [
        (480, 640, 800, 1333, (800, 1067)),
        (1000, 3000, 800, 1333, (444, 1333)),
        (640, 480, 800, 1333, (1067, 800)),
    ],
)
def test_resize_shortest_edge_rounding(h, w, short, max_size, expected):
    assert T.ResizeShortestEdge.get_output_shape(h, w, short, max_size) == expected


def test_resize_shortest_edge_sampling_and_determinism():
    aug = T.ResizeShortestEdge((20, 24), 1000, "range")
    sizes = {min(aug.get_transform(_img(), rng=_rng(s)).new_h, 1000) for s in range(30)}
    assert sizes <= set(range(20, 25)) and len(sizes) > 1
    a = aug.get_transform(_img(), rng=_rng(5))
    b = aug.get_transform(_img(), rng=_rng(5))
    assert (a.new_h, a.new_w) == (b.new_h, b.new_w)
    choice = T.ResizeShortestEdge((0,), 1000, "choice")
    assert isinstance(choice.get_transform(_img(), rng=_rng()), T.NoOpTransform)
    with pytest.raises(ValueError, match="sample_style"):
        T.ResizeShortestEdge((1, 2, 3), 10, "range")


def test_resize_scale_fits_target():
    aug = T.ResizeScale(0.5, 0.5, 64, 64)
    t = aug.get_transform(_img(30, 40), rng=_rng())
    assert (t.new_h, t.new_w) == (24, 32)


def test_random_flip_probability_extremes():
    assert isinstance(T.RandomFlip(1.0).get_transform(_img(), rng=_rng()), T.HFlipTransform)
    assert isinstance(T.RandomFlip(0.0).get_transform(_img(), rng=_rng()), T.NoOpTransform)
    assert isinstance(
        T.RandomFlip(1.0, horizontal=False, vertical=True).get_transform(_img(), rng=_rng()), T.VFlipTransform
    )
    with pytest.raises(ValueError):
        T.RandomFlip(horizontal=True, vertical=True)


@pytest.mark.parametrize(
    "crop_type, size, check",
    [
        ("relative", (0.5, 0.5), lambda h, w: (h, w) == (15, 20)),
        ("relative_range", (0.5, 0.5), lambda h, w: 15 <= h <= 30 and 20 <= w <= 40),
        ("absolute", (100, 10), lambda h, w: (h, w) == (30, 10)),
        ("absolute_range", (10, 35), lambda h, w: 10 <= h <= 30 and 10 <= w <= 35),
    ],
)
def test_random_crop_modes(crop_type, size, check):
    aug = T.RandomCrop(crop_type, size)
    for s in range(10):
        t = aug.get_transform(_img(), rng=_rng(s))
        assert check(t.h, t.w)
        assert 0 <= t.x0 <= 40 - t.w and 0 <= t.y0 <= 30 - t.h


def test_category_area_constraint_prefers_mixed_crops():
    sem = np.zeros((30, 40), np.uint8)
    sem[:, 20:] = 1
    aug = T.RandomCrop_CategoryAreaConstraint("absolute", (10, 10), single_category_max_area=0.9)
    inp = T.AugInput(_img(), sem_seg=sem)
    tfm = aug(inp, _rng(1))
    window = sem[tfm.y0 : tfm.y0 + 10, tfm.x0 : tfm.x0 + 10]
    assert len(np.unique(window)) == 2
    assert inp.image.shape == (10, 10, 3) and inp.sem_seg.shape == (10, 10)


def test_fixed_size_crop_pads_to_size():
    aug = T.FixedSizeCrop((50, 20))
    inp = T.AugInput(_img(), sem_seg=np.zeros((30, 40), np.uint8))
    aug(inp, _rng())
    assert inp.image.shape == (50, 20, 3) and inp.sem_seg.shape == (50, 20)
    assert inp.image[-1, -1, 0] == 128 and inp.sem_seg[-1, -1] == 255


def test_rotation_and_extent():
    assert isinstance(
        T.RandomRotation([0, 360], sample_style="choice").get_transform(_img(), rng=_rng(0)), T.NoOpTransform
    )
    t = T.RandomRotation([-10, 10]).get_transform(_img(), rng=_rng(0))
    assert -10 <= t.angle <= 10
    t = T.RandomRotation([30, 30], center=[[0, 0], [0, 0]]).get_transform(_img(), rng=_rng(0))
    np.testing.assert_allclose(t.center, [0.0, 0.0])
    e = T.RandomExtent((1.0, 1.0), (0.0, 0.0)).get_transform(_img(), rng=_rng(0))
    assert e.output_size == (30, 40)


def test_photometric_augmentations_match_formulas():
    img = _img()
    w = _rng(3).uniform(0.5, 1.5)
    out = T.RandomBrightness(0.5, 1.5).get_transform(img, rng=_rng(3)).apply_image(img)
    np.testing.assert_array_equal(out, np.clip(img.astype(np.float32) * w, 0, 255).astype(np.uint8))
    out = T.RandomContrast(0.5, 1.5).get_transform(img, rng=_rng(3)).apply_image(img)
    ref = (1 - w) * img.mean() + w * img.astype(np.float32)
    np.testing.assert_array_equal(out, np.clip(ref, 0, 255).astype(np.uint8))
    gray = img.dot([0.299, 0.587, 0.114])[:, :, None]
    out = T.RandomSaturation(0.5, 1.5).get_transform(img, rng=_rng(3)).apply_image(img)
    np.testing.assert_array_equal(
        out, np.clip((1 - w) * gray + w * img.astype(np.float32), 0, 255).astype(np.uint8)
    )
    light = T.RandomLighting(0.1).get_transform(img, rng=_rng(3))
    weights = _rng(3).normal(scale=0.1, size=3)
    np.testing.assert_allclose(
        light.src_image, T.RandomLighting.eigen_vecs.dot(weights * T.RandomLighting.eigen_vals)
    )
    with pytest.raises(ValueError, match="RGB"):
        T.RandomSaturation(0.5, 1.5).get_transform(img[:, :, :1], rng=_rng())


def test_augmentation_list_applies_in_order_and_is_reproducible():
    augs = [T.RandomCrop("relative_range", (0.5, 0.5)), T.ResizeShortestEdge((16, 32), 64), T.RandomFlip()]
    outs = []
    for _ in range(2):
        inp = T.AugInput(_img(), boxes=np.array([[0.0, 0.0, 10.0, 10.0]]))
        tfms = T.AugmentationList(augs)(inp, _rng(7))
        outs.append((inp.image, inp.boxes, repr(tfms)))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    image, tfms = T.apply_augmentations([T.Resize((10, 12))], _img())
    assert image.shape == (10, 12, 3) and isinstance(tfms, T.TransformList)


def test_legacy_augmentation_without_rng_and_bad_inputs():
    class Legacy(T.Augmentation):
        def get_transform(self, image):
            return T.HFlipTransform(image.shape[1])

    inp = T.AugInput(_img())
    assert isinstance(Legacy()(inp), T.HFlipTransform)

    class NeedsBoxes(T.Augmentation):
        input_args = ("image", "missing")

    with pytest.raises(AttributeError, match="missing"):
        NeedsBoxes()(inp)
    with pytest.raises(ValueError, match="AugInput"):
        T.AugInput(np.zeros(5))
    with pytest.raises(TypeError, match="Generator"):
        T.RandomFlip()(inp, rng=3)
