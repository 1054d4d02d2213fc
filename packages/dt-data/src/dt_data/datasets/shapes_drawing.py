"""Drawing the images of the synthetic ``shapes`` dataset and reading annotations off its regions:
shapes of five kinds on a two-region background, and per visible region its polygon, keypoints and
minimum-area rotated box (``shapes.py`` writes them as the dataset's files)."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["THING_NAMES", "generate_image", "keypoints_of", "polygon_of", "rotated_box_of"]

THING_NAMES = ("circle", "square", "triangle", "star", "hexagon")
SKY, GROUND = 5, 6  # stuff labels of the semantic map


def _regular_polygon(n: int, radius: float, angle: float) -> np.ndarray:
    t = angle + np.arange(n) * 2 * np.pi / n
    return np.stack([np.cos(t), np.sin(t)], axis=1) * radius


def _shape_polygon(kind: int, radius: float, angle: float) -> np.ndarray:
    """Vertices ``[K, 2]`` around the origin."""
    if kind == 0:
        return _regular_polygon(64, radius, angle)
    if kind == 1:
        return _regular_polygon(4, radius * 1.15, angle)
    if kind == 2:
        return _regular_polygon(3, radius * 1.25, angle)
    if kind == 3:
        star = _regular_polygon(10, radius * 1.2, angle)
        star[1::2] *= 0.45
        return star
    return _regular_polygon(6, radius * 1.05, angle)


def _fill(poly: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, amplitude: float) -> np.ndarray:
    grid = rng.normal(0.0, amplitude, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB float image ``[S, S, 3]`` and stuff label map ``[S, S]`` (5 sky, 6 ground)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    horizon = size * rng.uniform(0.3, 0.7) + size * rng.uniform(0.02, 0.08) * np.sin(
        xx * rng.uniform(1.0, 4.0) * 2 * np.pi / size + rng.uniform(0, 2 * np.pi)
    )
    sky = yy < horizon
    sky_color = rng.uniform(60, 230, 3).astype(np.float32)
    ground_color = rng.uniform(30, 200, 3).astype(np.float32)
    shade = (yy * np.float32(rng.uniform(-60, 60) / size)) + _smooth_noise(rng, size, 6, 18.0)
    img = sky_color + shade[..., None]  # [S, S, 3] float32
    theta = rng.uniform(0, np.pi)
    period = np.float32(rng.uniform(6, 20))
    if rng.random() < 0.5:
        phase = xx * np.float32(np.cos(theta) * 2 * np.pi) + yy * np.float32(np.sin(theta) * 2 * np.pi)
        pattern = np.sin(phase / period)
    else:
        pattern = ((xx // period + yy // period) % 2) * 2 - 1
    ground_shade = pattern * np.float32(rng.uniform(10, 35)) + _smooth_noise(rng, size, 8, 12.0)
    ground = ~sky
    img[ground] = ground_color + ground_shade[ground][:, None]
    labels = np.where(sky, SKY, GROUND).astype(np.uint8)
    return img, labels


def _visible_ok(region: np.ndarray, full_area: int, min_area: int) -> bool:
    """One connected region without holes, big enough and not too occluded."""
    area = int(region.sum())
    if area < max(min_area, 0.3 * full_area):
        return False
    contours, hierarchy = cv2.findContours(region.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return len(contours) == 1 and hierarchy is not None


def polygon_of(region: np.ndarray) -> list[float]:
    """Polygon (flat x, y list) of a simply connected region, traced 0.25 px inside the pixel edges so
    that rasterizing it gives back the region."""
    up = cv2.resize(region.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = cv2.approxPolyDP(max(contours, key=cv2.contourArea), 1.0, True).reshape(-1, 2)
    return ((contour.astype(np.float64) + 0.5) / 2).round(2).reshape(-1).tolist()


def keypoints_of(region: np.ndarray) -> list[float]:
    """COCO keypoints ``[x, y, v] * 5`` (pixel indices, v = 2) of a region ``bool[H, W]``, in
    ``KEYPOINT_NAMES`` order; an extreme point is the middle of the region's pixels on its extreme
    row or column, so that flipping the region flips its keypoints exactly."""
    ys, xs = np.nonzero(region)

    def middle(values: np.ndarray) -> float:
        return float(values.min() + values.max()) / 2

    top, bottom, left, right = ys.min(), ys.max(), xs.min(), xs.max()
    points = [
        (float(xs.mean()), float(ys.mean())),
        (middle(xs[ys == top]), float(top)),
        (middle(xs[ys == bottom]), float(bottom)),
        (float(left), middle(ys[xs == left])),
        (float(right), middle(ys[xs == right])),
    ]
    return [round(v, 2) for x, y in points for v in (x, y, 2)]


def rotated_box_of(region: np.ndarray) -> list[float]:
    """The minimum-area rotated rectangle around the pixels of ``region`` (bool ``[H, W]``; pixel
    ``(x, y)`` covers ``[x, x + 1] x [y, y + 1]``): ``[cx, cy, w, h, angle]``, angle in degrees
    counter-clockwise on screen in ``[-90, 90)``, ``w`` along the rotated x axis."""
    ys, xs = np.nonzero(region)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], axis=1) for dx in (0, 1) for dy in (0, 1)])
    hull = cv2.convexHull(corners.astype(np.float32))
    points = cv2.boxPoints(cv2.minAreaRect(hull)).astype(np.float64)  # [4, 2], consecutive corners
    edge_w, edge_h = points[1] - points[0], points[2] - points[1]
    angle = float(np.rad2deg(np.arctan2(-edge_w[1], edge_w[0])))
    angle = (angle + 90.0) % 180.0 - 90.0  # the same rectangle turned by 180 degrees
    cx, cy = points.mean(axis=0)
    return [float(cx), float(cy), float(np.hypot(*edge_w)), float(np.hypot(*edge_h)), angle]


def _pick_center(rng: np.random.Generator, size: int, radius: float, centers: list[np.ndarray]) -> np.ndarray:
    """Anywhere in the central 80%, or (half the time) overlapping an earlier shape."""
    if centers and rng.random() < 0.5:
        near = centers[int(rng.integers(len(centers)))]
        offset = rng.normal(0, 1, 2)
        center = near + offset / (np.linalg.norm(offset) + 1e-9) * radius * rng.uniform(1.0, 1.8)
        return np.clip(center, 0.05 * size, 0.95 * size)
    return rng.uniform(0.1 * size, 0.9 * size, 2)


def generate_image(
    rng: np.random.Generator, size: int, max_shapes: int
) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray]:
    """Returns the RGB image ``uint8[S, S, 3]``, the instance index map ``int32[S, S]`` (-1 =
    background), the category index of each instance kept and the stuff label map ``uint8[S, S]``."""
    img, stuff = _background(rng, size)
    inst = np.full((size, size), -1, np.int32)
    kept: list[tuple[int, int]] = []  # (category index, full area)
    centers: list[np.ndarray] = []
    min_area = max(12, (size // 32) ** 2)
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        kind = int(rng.integers(len(THING_NAMES)))
        radius = size * rng.uniform(0.07, 0.22)
        center = _pick_center(rng, size, radius, centers)
        for _attempt in range(20):
            full = _fill(_shape_polygon(kind, radius, rng.uniform(0, 2 * np.pi)) + center, size)
            trial = inst.copy()
            trial[full] = len(kept)
            ok = _visible_ok(full, int(full.sum()), min_area) and all(
                _visible_ok(trial == j, area, min_area) for j, (_, area) in enumerate(kept)
            )
            if ok:
                break
            center = _pick_center(rng, size, radius, centers)
        else:
            continue
        color = rng.uniform(0, 255, 3).astype(np.float32)
        shade = _smooth_noise(rng, size, 4, 15.0)[full] + 4 * rng.standard_normal(int(full.sum()), np.float32)
        img[full] = color + shade[:, None]
        inst = trial
        kept.append((kind, int(full.sum())))
        centers.append(center)
    img += 3 * rng.standard_normal(img.shape, np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, inst, [k for k, _ in kept], stuff
