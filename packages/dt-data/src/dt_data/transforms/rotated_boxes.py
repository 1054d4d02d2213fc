"""Rotated boxes ``[N, 5]`` (XYWHA_ABS: cx, cy, w, h, angle in degrees counter-clockwise on screen,
y down) under a point map: the rule every ``Transform.apply_rotated_box`` starts from."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["rotated_boxes_by_coords"]


def rotated_boxes_by_coords(
    apply_coords: Callable[[np.ndarray], np.ndarray], rotated_boxes: np.ndarray
) -> np.ndarray:
    """``ndarray[N, 5]`` boxes moved by ``apply_coords`` (``ndarray[M, 2]`` of (x, y) -> same shape).

    The centre and the midpoints of two adjacent edges are mapped: the new sides are twice the
    centre-to-midpoint distances, the angle is that of the width edge. Exact for moves and rotations
    (crop, pad, ``RotationTransform``); other affine maps turn a rectangle into a parallelogram,
    which this approximates. Flips and ``ResizeTransform`` use detectron2's own formulas instead (a
    flip gives ``-angle``, not ``180 - angle``).
    """
    boxes = np.asarray(rotated_boxes, dtype=np.float64).reshape(-1, 5)
    theta = np.deg2rad(boxes[:, 4])
    c, s = np.cos(theta), np.sin(theta)
    centers = boxes[:, :2]
    half_w = np.stack([c, -s], axis=1) * boxes[:, 2:3] / 2  # the box's x axis on screen (y down)
    half_h = np.stack([s, c], axis=1) * boxes[:, 3:4] / 2
    points = apply_coords(np.concatenate([centers, centers + half_w, centers + half_h]))
    new_c, new_w, new_h = np.split(np.asarray(points, dtype=np.float64), 3)
    dw, dh = new_w - new_c, new_h - new_c
    out = np.empty_like(boxes)
    out[:, :2] = new_c
    out[:, 2] = 2 * np.hypot(dw[:, 0], dw[:, 1])
    out[:, 3] = 2 * np.hypot(dh[:, 0], dh[:, 1])
    out[:, 4] = np.rad2deg(np.arctan2(-dw[:, 1], dw[:, 0]))
    return out
