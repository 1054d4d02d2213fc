"""DensePose annotations: validation, RLE part masks, transforms (resize, crop, flip), the symmetry file."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from dt_data import transforms as T
from dt_densepose import (
    ChartSymmetry,
    DensePoseAnnotationError,
    DensePoseDataRelative,
    MissingDataFileError,
    human_chart_symmetry,
    mirror_chart_symmetry,
)
from dt_densepose.structures import DensePoseList


def _rle(mask: np.ndarray) -> dict:
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [256, 256], "counts": rle["counts"].decode("ascii")}


def _annotation(**overrides) -> dict:
    left = np.zeros((256, 256), bool)
    left[:, :128] = True
    anno = {
        "id": 7, "dp_x": [32.0, 200.0, 100.0], "dp_y": [64.0, 128.0, 250.0], "dp_I": [1, 2, 2],
        "dp_U": [0.25, 0.5, 1.0], "dp_V": [0.0, 0.75, 0.5], "dp_masks": [_rle(left), [], _rle(~left)],
    }  # fmt: skip
    anno.update(overrides)
    return anno


def _swap_symmetry(grid: int = 5) -> ChartSymmetry:
    """A small synthetic table: parts 1 and 2 are mirror images, part 3 its own; a flip maps U to
    1 - U and keeps V. Coarse labels 1 <-> 2, 3 stays."""
    steps = np.linspace(0, 1, grid, dtype=np.float32)
    u = np.broadcast_to(1 - steps[None, None, :], (3, grid, grid)).copy()
    v = np.broadcast_to(steps[None, :, None], (3, grid, grid)).copy()
    return ChartSymmetry((0, 2, 1, 3), (0, 2, 1, 3), u, v)


def test_loads_points_and_part_masks():
    data = DensePoseDataRelative.from_annotation(_annotation(), num_parts=3, num_mask_parts=3)
    assert len(data) == 3 and data.i.tolist() == [1, 2, 2]
    assert data.segm.shape == (256, 256)
    assert data.segm[10, 10] == 1 and data.segm[10, 200] == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dp_U": [0.1, 0.2]}, "differ in length"),
        ({"dp_I": [1, 2, 9]}, "dp_I must be integers in 1..3"),
        ({"dp_V": [0.0, 1.5, 0.2]}, "dp_V must lie in [0, 1]"),
        ({"dp_x": [0.0, 300.0, 1.0]}, "dp_x must lie in [0, 256]"),
        ({"dp_masks": [{"size": [10, 10], "counts": "a"}]}, "dp_masks[0] must be an RLE dict"),
        ({"dp_masks": [[]] * 4}, "at most 3 RLE masks"),
        ({"dp_y": "12"}, "dp_y must be a list of numbers"),
    ],
)
def test_bad_annotations_are_one_line_errors_naming_the_annotation(overrides, message):
    with pytest.raises(DensePoseAnnotationError) as err:
        DensePoseDataRelative.from_annotation(
            _annotation(**overrides), num_parts=3, num_mask_parts=3, loc="a.json: annotation id=7"
        )
    text = str(err.value)
    assert "\n" not in text and text.startswith("a.json: annotation id=7: ") and message in text


def test_missing_key_is_named():
    anno = _annotation()
    del anno["dp_V"]
    with pytest.raises(DensePoseAnnotationError, match="lacks dp_V"):
        DensePoseDataRelative.from_annotation(anno, num_parts=3, num_mask_parts=3)


def _absolute(data: DensePoseDataRelative, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.stack([x0 + data.x.numpy() / 256 * (x1 - x0), y0 + data.y.numpy() / 256 * (y1 - y0)], 1)


def test_resize_keeps_relative_points_and_moves_them_with_the_box():
    data = DensePoseDataRelative.from_annotation(_annotation(), num_parts=3, num_mask_parts=3)
    box = np.array([10.0, 20.0, 74.0, 84.0])
    resize = T.ResizeTransform(100, 120, 200, 240)
    new_box = resize.apply_box(box[None])[0]
    moved = data.transformed(box, new_box, T.TransformList([resize]), (100, 120), None)
    assert torch.allclose(moved.x, data.x, atol=1e-4) and torch.allclose(moved.y, data.y, atol=1e-4)
    assert torch.equal(moved.segm, data.segm)


def test_crop_drops_points_outside_the_new_box_and_crops_the_mask():
    data = DensePoseDataRelative.from_annotation(_annotation(), num_parts=3, num_mask_parts=3)
    box = np.array([0.0, 0.0, 64.0, 64.0])
    crop = T.CropTransform(20, 0, 44, 64)  # keeps image x in [20, 64)
    new_box = np.array([0.0, 0.0, 44.0, 64.0])
    moved = data.transformed(box, new_box, T.TransformList([crop]), (64, 64), None)
    kept = _absolute(data, box)[:, 0] >= 20  # the first point (x = 8 px) leaves the image
    assert len(moved) == int(kept.sum()) == 2
    expected = _absolute(data, box)[kept] - [20, 0]
    np.testing.assert_allclose(_absolute(moved, new_box), expected, atol=1e-3)
    # the left-half mask (image x < 32) now covers the crop's x < 12, i.e. 12/44 of the new box
    assert moved.segm[128, int(256 * 11 / 44)] == 1 and moved.segm[128, int(256 * 13 / 44)] == 3


def test_flip_swaps_parts_mirrors_uv_and_twice_is_identity():
    symmetry = _swap_symmetry()
    data = DensePoseDataRelative.from_annotation(_annotation(), num_parts=3, num_mask_parts=3)
    box = np.array([10.0, 5.0, 42.0, 37.0])
    flip = T.TransformList([T.HFlipTransform(50)])
    new_box = flip.apply_box(box[None])[0]
    once = data.transformed(box, new_box, flip, (40, 50), symmetry)
    assert once.i.tolist() == [2, 1, 1]
    np.testing.assert_allclose(once.u.numpy(), [0.75, 0.5, 0.0])
    np.testing.assert_allclose(once.x.numpy(), 256 - data.x.numpy(), atol=1e-3)
    assert once.segm[10, 255 - 10] == 2 and once.segm[10, 255 - 200] == 3  # mirrored, labels swapped
    twice = once.transformed(new_box, box, flip, (40, 50), symmetry)
    for name in ("x", "y", "u", "v"):
        torch.testing.assert_close(getattr(twice, name), getattr(data, name), atol=1e-3, rtol=0)
    assert torch.equal(twice.i, data.i) and torch.equal(twice.segm, data.segm)


def test_flip_without_symmetry_is_an_error():
    data = DensePoseDataRelative.from_annotation(_annotation(), num_parts=3, num_mask_parts=3)
    flip = T.TransformList([T.HFlipTransform(50)])
    with pytest.raises(ValueError, match="needs a ChartSymmetry"):
        data.transformed([0, 0, 10, 10], [40, 0, 50, 10], flip, (20, 50), None)


def test_missing_symmetry_file_names_file_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("DT_CACHE", str(tmp_path))
    with pytest.raises(MissingDataFileError) as err:
        human_chart_symmetry()
    text = str(err.value)
    assert "\n" not in text and str(tmp_path / "densepose" / "UV_symmetry_transforms.mat") in text
    assert "https://dl.fbaipublicfiles.com/densepose/data/UV_symmetry_transforms.mat" in text


def test_symmetry_file_is_read_from_the_cache(tmp_path, monkeypatch):
    from scipy.io import savemat

    monkeypatch.setenv("DT_CACHE", str(tmp_path))
    (tmp_path / "densepose").mkdir()
    grid = np.linspace(0, 1, 256, dtype=np.float32)
    u_cells = np.empty((1, 24), dtype=object)
    v_cells = np.empty((1, 24), dtype=object)
    for k in range(24):
        u_cells[0, k] = np.broadcast_to(1 - grid[None, :], (256, 256)).copy()
        v_cells[0, k] = np.broadcast_to(grid[:, None], (256, 256)).copy()
    savemat(
        tmp_path / "densepose" / "UV_symmetry_transforms.mat",
        {"U_transforms": u_cells, "V_transforms": v_cells},
    )
    symmetry = human_chart_symmetry()
    i, u, v = symmetry.flip_points(torch.tensor([3, 15]), torch.tensor([0.2, 1.0]), torch.tensor([0.4, 0.0]))
    assert i.tolist() == [4, 16]
    torch.testing.assert_close(u, torch.tensor([0.8, 0.0]), atol=2e-3, rtol=0)


def test_mirror_symmetry_keeps_labels():
    symmetry = mirror_chart_symmetry(5, 5, grid=11)
    i, u, v = symmetry.flip_points(torch.tensor([1, 5]), torch.tensor([0.3, 0.9]), torch.tensor([0.2, 0.6]))
    assert i.tolist() == [1, 5]
    torch.testing.assert_close(u, torch.tensor([0.7, 0.1]))
    torch.testing.assert_close(v, torch.tensor([0.2, 0.6]))


def test_densepose_list_indexes_like_a_tensor():
    data = DensePoseDataRelative.from_annotation(_annotation(), num_parts=3, num_mask_parts=3)
    items = DensePoseList([data, None, data])
    assert [x is None for x in items[torch.tensor([1, 0])]] == [True, False]
    assert len(items[torch.tensor([True, False, True])]) == 2
    assert len(DensePoseList.cat([items, items[1:]])) == 5
