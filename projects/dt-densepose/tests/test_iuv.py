"""Outputs to IUV: labels where the coarse segmentation is foreground, U/V from the label's chart."""

from __future__ import annotations

import torch

from dt_densepose import DensePoseChartOutput, chart_to_box_iuv, chart_to_image_iuv


def _output() -> DensePoseChartOutput:
    side, charts = 4, 3
    coarse = torch.zeros(1, 2, side, side)
    coarse[0, 1, :, :2] = 5.0  # left half foreground
    fine = torch.zeros(1, charts, side, side)
    fine[0, 1, :2] = 5.0  # top rows part 1, bottom rows part 2
    fine[0, 2, 2:] = 5.0
    u = torch.zeros(1, charts, side, side)
    v = torch.zeros(1, charts, side, side)
    u[0, 1], v[0, 1] = 0.25, 0.5
    u[0, 2], v[0, 2] = 0.75, 1.0
    return DensePoseChartOutput(coarse_segm=coarse, fine_segm=fine, u=u, v=v)


def test_box_iuv_has_the_box_pixel_size_and_each_parts_chart():
    labels, uv = chart_to_box_iuv(_output(), torch.tensor([10.0, 20.0, 18.0, 28.0]))
    assert labels.shape == (8, 8) and uv.shape == (2, 8, 8)
    assert labels[:4, :4].unique().tolist() == [1] and labels[4:, :4].unique().tolist() == [2]
    assert labels[:, 5:].unique().tolist() == [0]  # background where the coarse segm says so (column 4
    # is still foreground: bilinear resizing blends the two halves there)
    assert uv[0, :4, :4].unique().tolist() == [0.25] and uv[1, 4:, :4].unique().tolist() == [1.0]
    assert uv[:, :, 5:].abs().sum() == 0


def test_image_iuv_places_the_box_and_clips_it():
    iuv = chart_to_image_iuv(_output(), torch.tensor([-2.0, 4.0, 6.0, 12.0]), (10, 12))
    assert iuv.shape == (3, 10, 12)
    assert iuv[0, 4, 0] == 1 and iuv[1, 4, 0] == 0.25  # box column 2 (x = 0) is foreground, part 1
    assert iuv[0, 8:, :2].unique().tolist() == [2.0]
    assert iuv[:, :4].abs().sum() == 0 and iuv[:, :, 3:].abs().sum() == 0  # outside / background
