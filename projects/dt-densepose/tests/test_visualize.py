"""Drawing DensePose outputs on a hand-made output: the known pixels inside the box are coloured, none
outside the box or on its background; the IUV PNG of the results round-trips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dt_densepose import DensePoseChartOutput, chart_to_box_iuv
from dt_densepose.visualize import (
    DEFAULT_ALPHA,
    decode_iuv_png,
    draw_fine_segmentation,
    draw_u,
    draw_uv_contours,
    draw_v,
    encode_iuv_png,
)

H, W, GREY = 40, 50, 100
BOX = torch.tensor([[10.0, 8.0, 30.0, 24.0]])  # 20 x 16 pixels: columns 10..29, rows 8..23
SIDE, PARTS = 8, 2


def _output() -> DensePoseChartOutput:
    """Left half of the box foreground; part 1 in the top half (U rising left to right, V = 0.25),
    part 2 in the bottom half (U = 0.75, V = 1)."""
    coarse = torch.zeros(1, 2, SIDE, SIDE)
    coarse[0, 1, :, : SIDE // 2] = 9.0
    fine = torch.zeros(1, PARTS + 1, SIDE, SIDE)
    fine[0, 1, : SIDE // 2] = 9.0
    fine[0, 2, SIDE // 2 :] = 9.0
    u = torch.zeros(1, PARTS + 1, SIDE, SIDE)
    v = torch.zeros(1, PARTS + 1, SIDE, SIDE)
    u[0, 1] = torch.linspace(0.0, 1.0, SIDE)[None, :]
    v[0, 1], u[0, 2], v[0, 2] = 0.25, 0.75, 1.0
    return DensePoseChartOutput(coarse_segm=coarse, fine_segm=fine, u=u, v=v)


def _image() -> np.ndarray:
    return np.full((H, W, 3), GREY, np.uint8)  # BGR


def _labels_in_image() -> np.ndarray:
    """The part label of every image pixel (0 outside the box and on its background)."""
    labels, _ = chart_to_box_iuv(_output(), BOX[0])
    full = np.zeros((H, W), np.int64)
    full[8:24, 10:30] = labels.numpy()
    return full


def _blend(value: int) -> np.ndarray:
    color = cv2.applyColorMap(np.uint8([[value]]), cv2.COLORMAP_PARULA)[0, 0].astype(np.float64)
    return np.round(GREY * (1 - DEFAULT_ALPHA) + color * DEFAULT_ALPHA).astype(np.uint8)


def test_the_hand_made_output_has_both_parts_and_background_in_the_box():
    labels = _labels_in_image()
    assert labels[8:16, 10:18].min() == 1 and labels[16:24, 10:18].min() == 2  # the left half
    assert labels[8:24, 22:30].max() == 0  # the right half is background
    assert labels[:8].max() == labels[24:].max() == labels[:, :10].max() == labels[:, 30:].max() == 0


def test_fine_segmentation_colours_the_parts_and_nothing_else():
    image = _image()
    drawn = draw_fine_segmentation(image, _output(), BOX)
    labels = _labels_in_image()
    changed = (drawn != image).any(axis=2)
    np.testing.assert_array_equal(changed, labels > 0)
    np.testing.assert_array_equal(drawn[labels == 1], np.broadcast_to(_blend(128), ((labels == 1).sum(), 3)))
    np.testing.assert_array_equal(drawn[labels == 2], np.broadcast_to(_blend(255), ((labels == 2).sum(), 3)))
    assert (image == GREY).all()  # the input is not drawn on
    assert drawn.dtype == np.uint8 and drawn.shape == (H, W, 3)


def test_u_and_v_colour_maps_follow_the_coordinates():
    image = _image()
    labels = _labels_in_image()
    drawn_u, drawn_v = draw_u(image, _output(), BOX), draw_v(image, _output(), BOX)
    for drawn in (drawn_u, drawn_v):
        np.testing.assert_array_equal((drawn != image).any(axis=2), labels > 0)
    part2 = labels == 2
    assert (drawn_u[part2] == _blend(191)).all() and (drawn_v[part2] == _blend(255)).all()
    assert (drawn_v[labels == 1] == _blend(64)).all()
    top_row = drawn_u[10, 10:18].astype(int)  # U rises to the right inside part 1: colours differ
    assert len({tuple(c) for c in top_row}) >= 4


def test_contours_are_iso_lines_of_u_inside_part_1_only():
    image = _image()
    labels = _labels_in_image()
    drawn = draw_uv_contours(image, _output(), BOX, levels=4)  # U, V = 0.2 ... 0.8: not part 2's values
    changed = (drawn != image).any(axis=2)
    assert changed.any() and not changed[labels != 1].any()  # U and V are constant in part 2
    columns = np.flatnonzero(changed.any(axis=0))
    assert len(columns) == 2  # U < 0.5 in the foreground half: lines at U = 0.2 and 0.4, vertical
    for column in columns:
        assert changed[8:16, column].all()  # each line spans part 1 from top to bottom
    level_colors = {
        tuple(c) for c in cv2.applyColorMap(np.uint8([[51], [102], [153], [204]]), cv2.COLORMAP_PARULA)[:, 0]
    }
    assert {tuple(c) for c in drawn[changed]} <= level_colors


def test_a_box_partly_outside_the_image_is_clipped():
    box = torch.tensor([[-10.0, 30.0, 10.0, 46.0]])  # 20 x 16, half outside on the left and bottom
    drawn = draw_fine_segmentation(_image(), _output(), box)
    changed = (drawn != _image()).any(axis=2)
    assert changed.any() and not changed[:30].any() and not changed[:, 10:].any()


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"BGR uint8 image of shape \[H, W, 3\], got \[40, 50\]"):
        draw_u(np.zeros((H, W), np.uint8), _output(), BOX)
    with pytest.raises(ValueError, match="1 DensePose outputs for 2 boxes"):
        draw_v(_image(), _output(), BOX.repeat(2, 1))


def test_iuv_png_round_trips():
    labels, uv = chart_to_box_iuv(_output(), BOX[0])
    iuv = decode_iuv_png(encode_iuv_png(labels, uv))
    assert iuv.shape == (3, 16, 20) and iuv.dtype == np.uint8
    np.testing.assert_array_equal(iuv[0], labels.numpy())
    np.testing.assert_array_equal(iuv[1:], np.round(uv.numpy().clip(0, 1) * 255).astype(np.uint8))
