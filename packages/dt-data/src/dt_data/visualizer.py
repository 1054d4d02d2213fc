"""Draw dataset dicts and model predictions on an image (boxes, labels with scores, masks with
outlines, keypoints with skeleton, semantic and panoptic segmentation) with OpenCV; save as PNG.

Same entry points as detectron2's ``Visualizer`` (``draw_dataset_dict``, ``draw_instance_predictions``,
``draw_sem_seg``, ``draw_panoptic_seg``, ``overlay_instances``), drawn with cv2 instead of matplotlib.
Images are RGB ``uint8[H, W, 3]``.
"""

from __future__ import annotations

import colorsys
import os
from enum import IntEnum
from typing import Any

import cv2
import numpy as np
import pycocotools.mask as mask_util
import torch

from dt_structures import BitMasks, Boxes, BoxMode, Instances, Keypoints, PolygonMasks, RotatedBoxes

from .catalog import Metadata

__all__ = ["ColorMode", "VisImage", "Visualizer", "color_palette"]

_KEYPOINT_THRESHOLD = 0.05


class ColorMode(IntEnum):
    """``IMAGE``: a distinct colour per instance; ``SEGMENTATION``: one colour per category (from
    ``thing_colors`` when the metadata has them); ``IMAGE_BW``: like SEGMENTATION but the image is
    shown in grayscale outside the instance masks."""

    IMAGE = 0
    SEGMENTATION = 1
    IMAGE_BW = 2


def color_palette(n: int) -> np.ndarray:
    """``n`` well-separated RGB colours ``uint8[n, 3]`` (golden-ratio hue steps)."""
    colors = []
    for i in range(n):
        h = (i * 0.618033988749895) % 1.0
        s, v = (0.75, 0.95) if i % 2 == 0 else (0.6, 0.8)
        colors.append([round(c * 255) for c in colorsys.hsv_to_rgb(h, s, v)])
    return np.asarray(colors, dtype=np.uint8).reshape(n, 3)


class VisImage:
    """The canvas: RGB ``uint8[H * scale, W * scale, 3]``."""

    def __init__(self, img: np.ndarray, scale: float = 1.0) -> None:
        h, w = img.shape[:2]
        self.scale = scale
        self.width, self.height = max(1, round(w * scale)), max(1, round(h * scale))
        self.img = (
            cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
            if scale != 1
            else img.copy()
        )

    def get_image(self) -> np.ndarray:
        return self.img

    def save(self, filepath: str | os.PathLike) -> None:
        """Write the canvas as PNG (or any format cv2 infers from the extension)."""
        if not cv2.imwrite(str(filepath), self.img[:, :, ::-1]):
            raise OSError(f"could not write image {filepath}")


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class Visualizer:
    """Draws on a copy of ``img_rgb`` (``uint8[H, W, 3]``, RGB); ``metadata`` supplies class names and
    colours (``thing_classes``, ``thing_colors``, ``stuff_classes``, ``stuff_colors``,
    ``keypoint_names``, ``keypoint_connection_rules``)."""

    def __init__(
        self,
        img_rgb: np.ndarray | torch.Tensor,
        metadata: Metadata | None = None,
        scale: float = 1.0,
        instance_mode: ColorMode = ColorMode.IMAGE,
    ) -> None:
        img = np.clip(_to_numpy(img_rgb), 0, 255).astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] not in (1, 3):
            raise ValueError(f"Visualizer: img_rgb must be [H, W, 3] (or [H, W]), got shape {img.shape}")
        if img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        if scale <= 0:
            raise ValueError(f"Visualizer: scale must be positive, got {scale}")
        self.img = np.ascontiguousarray(img)
        self.metadata = metadata if metadata is not None else Metadata(name="__unused")
        self.output = VisImage(self.img, scale)
        self._instance_mode = ColorMode(instance_mode)
        self._line = max(1, round(np.sqrt(self.output.height * self.output.width) / 300))
        self._font = max(0.35, np.sqrt(self.output.height * self.output.width) / 1400)

    # ---------------------------------------------------------------- high-level entry points
    def draw_instance_predictions(self, predictions: Instances) -> VisImage:
        """Draw ``pred_boxes``, ``pred_classes`` with ``scores``, ``pred_masks`` and ``pred_keypoints``."""
        boxes = predictions.pred_boxes if predictions.has("pred_boxes") else None
        scores = predictions.scores if predictions.has("scores") else None
        classes = predictions.pred_classes.tolist() if predictions.has("pred_classes") else None
        labels = self._labels(classes, scores, None)
        keypoints = predictions.pred_keypoints if predictions.has("pred_keypoints") else None
        masks = predictions.pred_masks if predictions.has("pred_masks") else None
        colors = self._instance_colors(classes, len(predictions))
        if self._instance_mode == ColorMode.IMAGE_BW:
            self._grayscale_outside(self._masks_to_bool(masks) if masks is not None else None)
        return self.overlay_instances(
            boxes=boxes, labels=labels, masks=masks, keypoints=keypoints, assigned_colors=colors, alpha=0.5
        )

    def draw_dataset_dict(self, dic: dict) -> VisImage:
        """Draw a dataset dict's annotations (boxes, masks, keypoints, class names; ``|crowd`` marks
        crowd), its semantic map (``sem_seg`` or ``sem_seg_file_name``) and its panoptic map
        (``pan_seg_file_name`` + ``segments_info``)."""
        annos = dic.get("annotations")
        if annos:
            boxes = np.asarray(
                [BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos],
                np.float64,
            )
            masks = [a["segmentation"] for a in annos] if "segmentation" in annos[0] else None
            keypoints = (
                np.asarray([a["keypoints"] for a in annos], np.float64).reshape(len(annos), -1, 3)
                if "keypoints" in annos[0]
                else None
            )
            classes = [a["category_id"] for a in annos]
            labels = self._labels(classes, None, [a.get("iscrowd", 0) for a in annos])
            colors = self._instance_colors(classes, len(annos))
            self.overlay_instances(
                boxes=boxes, labels=labels, masks=masks, keypoints=keypoints, assigned_colors=colors
            )
        sem_seg = dic.get("sem_seg")
        if sem_seg is None and "sem_seg_file_name" in dic:
            sem_seg = cv2.imread(dic["sem_seg_file_name"], cv2.IMREAD_UNCHANGED)
            if sem_seg is None:
                raise FileNotFoundError(f"cannot read semantic label map {dic['sem_seg_file_name']}")
        if sem_seg is not None:
            self.draw_sem_seg(sem_seg, alpha=0.5)
        if "pan_seg_file_name" in dic and "segments_info" in dic:
            rgb = cv2.imread(dic["pan_seg_file_name"], cv2.IMREAD_COLOR)
            if rgb is None:
                raise FileNotFoundError(f"cannot read panoptic map {dic['pan_seg_file_name']}")
            rgb = rgb[:, :, ::-1].astype(np.int64)
            pan = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
            self.draw_panoptic_seg(pan, dic["segments_info"], alpha=0.5)
        return self.output

    def draw_sem_seg(
        self, sem_seg: np.ndarray | torch.Tensor, area_threshold: int | None = None, alpha: float = 0.8
    ) -> VisImage:
        """``sem_seg``: ``[H, W]`` integer labels (ids into ``stuff_classes``; the metadata's
        ``ignore_label``, default 255, is skipped) or ``[C, H, W]`` scores (argmax is taken)."""
        seg = _to_numpy(sem_seg)
        if seg.ndim == 3:
            seg = seg.argmax(axis=0)
        if seg.ndim != 2:
            raise ValueError(f"draw_sem_seg: expected [H, W] labels or [C, H, W] scores, got {seg.shape}")
        ignore = self.metadata.get("ignore_label", 255)
        labels, areas = np.unique(seg, return_counts=True)
        for label in labels[np.argsort(-areas)]:
            if label == ignore:
                continue
            mask = seg == label
            if area_threshold is not None and mask.sum() < area_threshold:
                continue
            color = self._stuff_color(int(label))
            self.draw_binary_mask(mask, color, text=self._stuff_name(int(label)), alpha=alpha)
        return self.output

    def draw_panoptic_seg(
        self,
        panoptic_seg: np.ndarray | torch.Tensor,
        segments_info: list[dict] | None,
        area_threshold: int | None = None,
        alpha: float = 0.7,
    ) -> VisImage:
        """``panoptic_seg``: ``[H, W]`` segment ids; ``segments_info``: dicts with ``id``,
        ``category_id`` (contiguous), ``isthing`` and optional ``score``. With None, ids are
        ``category * label_divisor + instance`` (metadata ``label_divisor``, default 1000)."""
        pan = _to_numpy(panoptic_seg).astype(np.int64)
        if pan.ndim != 2:
            raise ValueError(f"draw_panoptic_seg: expected [H, W] segment ids, got {pan.shape}")
        if segments_info is None:
            divisor = self.metadata.get("label_divisor", 1000)
            thing_ids = set(range(len(self.metadata.get("thing_classes", []))))
            segments_info = [
                {"id": int(i), "category_id": int(i) // divisor, "isthing": int(i) // divisor in thing_ids}
                for i in np.unique(pan)
                if i >= 0
            ]
        if self._instance_mode == ColorMode.IMAGE_BW:
            thing_ids = [s["id"] for s in segments_info if s.get("isthing")]
            self._grayscale_outside(np.isin(pan, thing_ids)[None] if thing_ids else None)
        for i, seg in enumerate(segments_info):
            mask = pan == seg["id"]
            if not mask.any() or (area_threshold is not None and mask.sum() < area_threshold):
                continue
            cat = int(seg["category_id"])
            if seg.get("isthing", False):
                name = self._thing_name(cat)
                color = self._instance_colors([cat], 1, start=i)[0]
                if "score" in seg:
                    name = f"{name} {seg['score'] * 100:.0f}%"
            else:
                name, color = self._stuff_name(cat), self._stuff_color(cat)
            self.draw_binary_mask(mask, color, text=name, alpha=alpha)
        return self.output

    def overlay_instances(
        self,
        *,
        boxes: Any = None,
        labels: list[str] | None = None,
        masks: Any = None,
        keypoints: Any = None,
        assigned_colors: list[tuple[int, int, int]] | None = None,
        alpha: float = 0.5,
    ) -> VisImage:
        """Draw N instances: ``boxes`` (Boxes/RotatedBoxes, ``[N, 4]`` XYXY_ABS or ``[N, 5]`` rotated),
        ``masks`` (BitMasks, PolygonMasks, ``[N, H, W]`` bool, or per-instance polygons/RLE),
        ``keypoints`` (Keypoints or ``[N, K, 3]``), ``labels`` (N strings). Larger instances first."""
        box_arr = self._boxes(boxes)
        mask_list = self._masks_to_bool(masks) if masks is not None else None
        kpts = (
            _to_numpy(keypoints.tensor if isinstance(keypoints, Keypoints) else keypoints)
            if keypoints is not None
            else None
        )
        counts = [len(x) for x in (box_arr, mask_list, kpts, labels) if x is not None]
        if not counts:
            return self.output
        n = counts[0]
        if any(c != n for c in counts):
            raise ValueError(f"overlay_instances: inputs have different numbers of instances: {counts}")
        colors = (
            assigned_colors
            if assigned_colors is not None
            else [tuple(c) for c in color_palette(max(n, 1))[:n]]
        )
        if box_arr is not None and box_arr.shape[1] == 4:
            areas = (box_arr[:, 2] - box_arr[:, 0]) * (box_arr[:, 3] - box_arr[:, 1])
        elif mask_list is not None:
            areas = np.asarray([m.sum() for m in mask_list], dtype=np.float64)
        else:
            areas = np.zeros(n)
        for i in np.argsort(-areas, kind="stable"):
            color = tuple(int(c) for c in colors[i])
            if mask_list is not None:
                self.draw_binary_mask(mask_list[i], color, alpha=alpha)
            anchor = None
            if box_arr is not None:
                anchor = self.draw_box(box_arr[i], color)
            elif mask_list is not None and mask_list[i].any():
                ys, xs = np.nonzero(mask_list[i])
                anchor = (float(xs.min()), float(ys.min()))
            if labels is not None and anchor is not None:
                self.draw_text(labels[i], anchor, color)
            if kpts is not None:
                self.draw_and_connect_keypoints(kpts[i])
        return self.output

    def get_output(self) -> VisImage:
        return self.output

    # ------------------------------------------------------------------------ primitives
    def _pt(self, x: float, y: float) -> tuple[int, int]:
        s = self.output.scale
        return round(x * s), round(y * s)

    def draw_box(self, box: np.ndarray, color: tuple[int, int, int]) -> tuple[float, float]:
        """Axis-aligned (x0, y0, x1, y1) or rotated (cx, cy, w, h, angle degrees CCW) box; returns the
        label anchor (top-left corner) in image coordinates."""
        if len(box) == 5:
            cx, cy, w, h, a = (float(v) for v in box)
            corners = cv2.boxPoints(((cx, cy), (w, h), -a))
            pts = np.asarray([self._pt(x, y) for x, y in corners], np.int32)
            cv2.polylines(self.output.img, [pts], True, color, self._line, cv2.LINE_AA)
            return float(corners[:, 0].min()), float(corners[:, 1].min())
        x0, y0, x1, y1 = (float(v) for v in box)
        cv2.rectangle(self.output.img, self._pt(x0, y0), self._pt(x1, y1), color, self._line, cv2.LINE_AA)
        return x0, y0

    def draw_text(self, text: str, position: tuple[float, float], color: tuple[int, int, int]) -> None:
        """``text`` on a filled box of ``color`` just above (or inside, at the top edge) ``position``."""
        font = cv2.FONT_HERSHEY_SIMPLEX
        thickness = max(1, round(self._font * 1.5))
        (tw, th), baseline = cv2.getTextSize(text, font, self._font, thickness)
        x, y = self._pt(*position)
        x = int(np.clip(x, 0, max(0, self.output.width - tw - 2)))
        top = y - th - baseline - 2
        if top < 0:
            top = min(y, self.output.height - th - baseline - 2)
        top = max(0, top)
        cv2.rectangle(self.output.img, (x, top), (x + tw + 2, top + th + baseline + 2), color, -1)
        text_color = (0, 0, 0) if np.mean(color) > 127 else (255, 255, 255)
        cv2.putText(
            self.output.img, text, (x + 1, top + th + 1), font, self._font, text_color, thickness, cv2.LINE_AA
        )

    def draw_binary_mask(
        self, mask: np.ndarray, color: tuple[int, int, int], *, text: str | None = None, alpha: float = 0.5
    ) -> None:
        """Blend ``color`` over ``mask`` (``bool[H, W]`` at image size), outline it, optionally write
        ``text`` at the centre of its largest part."""
        mask = np.asarray(mask).astype(bool)
        if mask.shape != self.img.shape[:2]:
            raise ValueError(f"draw_binary_mask: mask shape {mask.shape} != image shape {self.img.shape[:2]}")
        if not mask.any():
            return
        if self.output.scale != 1:
            mask = (
                cv2.resize(mask.astype(np.uint8), (self.output.width, self.output.height), cv2.INTER_NEAREST)
                > 0
            )
        canvas = self.output.img
        col = np.asarray(color, np.float32)
        canvas[mask] = (canvas[mask].astype(np.float32) * (1 - alpha) + col * alpha).astype(np.uint8)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
        edge = tuple(int(c) for c in np.clip(col * 0.6, 0, 255))
        cv2.drawContours(canvas, contours, -1, edge, self._line, cv2.LINE_AA)
        if text:
            n, comp, stats, centroids = cv2.connectedComponentsWithStats(
                mask.astype(np.uint8), connectivity=8
            )
            largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            cx, cy = centroids[largest]
            s = self.output.scale
            self.draw_text(text, (cx / s, cy / s), tuple(int(c) for c in color))

    def draw_and_connect_keypoints(self, keypoints: np.ndarray) -> None:
        """``keypoints``: ``[K, 3]`` (x, y, score or visibility); points with score <= 0.05 are skipped;
        edges from the metadata's ``keypoint_connection_rules`` (name1, name2, rgb colour)."""
        kp = np.asarray(keypoints, np.float64).reshape(-1, 3)
        names = self.metadata.get("keypoint_names")
        visible: dict[int, tuple[int, int]] = {}
        for idx, (x, y, prob) in enumerate(kp):
            if prob > _KEYPOINT_THRESHOLD:
                visible[idx] = self._pt(x, y)
        if names:
            for a, b, color in self.metadata.get("keypoint_connection_rules", []):
                if a in names and b in names:
                    ia, ib = names.index(a), names.index(b)
                    if ia in visible and ib in visible:
                        c = tuple(int(v) for v in color)
                        cv2.line(self.output.img, visible[ia], visible[ib], c, self._line + 1, cv2.LINE_AA)
        radius = max(2, self._line + 1)
        for pt in visible.values():
            cv2.circle(self.output.img, pt, radius, (255, 64, 64), -1, cv2.LINE_AA)

    # -------------------------------------------------------------------------- helpers
    def _grayscale_outside(self, masks: list[np.ndarray] | np.ndarray | None) -> None:
        gray = cv2.cvtColor(cv2.cvtColor(self.output.img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        if masks is not None and len(masks):
            keep = np.any(np.stack([np.asarray(m, bool) for m in masks]), axis=0)
            if self.output.scale != 1:
                size = (self.output.width, self.output.height)
                keep = cv2.resize(keep.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
            gray[keep] = self.output.img[keep]
        self.output.img = gray

    def _boxes(self, boxes: Any) -> np.ndarray | None:
        if boxes is None:
            return None
        if isinstance(boxes, (Boxes, RotatedBoxes)):
            boxes = boxes.tensor
        arr = _to_numpy(boxes).astype(np.float64)
        if arr.ndim != 2 or arr.shape[1] not in (4, 5):
            raise ValueError(f"boxes must be [N, 4] XYXY_ABS or [N, 5] rotated, got {arr.shape}")
        return arr

    def _masks_to_bool(self, masks: Any) -> list[np.ndarray]:
        h, w = self.img.shape[:2]
        if isinstance(masks, BitMasks):
            masks = masks.tensor
        if isinstance(masks, PolygonMasks):
            masks = masks.polygons
        if isinstance(masks, (torch.Tensor, np.ndarray)):
            arr = _to_numpy(masks)
            if arr.ndim != 3 or arr.shape[1:] != (h, w):
                raise ValueError(f"masks must be [N, {h}, {w}], got {arr.shape}")
            return [m > 0.5 if m.dtype.kind == "f" else m.astype(bool) for m in arr]
        out = []
        for m in masks:
            if isinstance(m, dict):
                rle = mask_util.frPyObjects(m, *m["size"]) if isinstance(m["counts"], list) else m
                out.append(mask_util.decode(rle).astype(bool))
            elif isinstance(m, (list, tuple)):
                canvas = np.zeros((h, w), np.uint8)
                polys = [np.round(np.asarray(p, np.float64).reshape(-1, 2) * 16).astype(np.int32) for p in m]
                cv2.fillPoly(canvas, polys, 1, lineType=cv2.LINE_8, shift=4)
                out.append(canvas.astype(bool))
            else:
                arr = _to_numpy(m)
                if arr.shape != (h, w):
                    raise ValueError(f"mask of shape {arr.shape} does not match the image {(h, w)}")
                out.append(arr.astype(bool))
        return out

    def _thing_name(self, cat: int) -> str:
        names = self.metadata.get("thing_classes")
        return names[cat] if names is not None and 0 <= cat < len(names) else str(cat)

    def _stuff_name(self, cat: int) -> str:
        names = self.metadata.get("stuff_classes")
        return names[cat] if names is not None and 0 <= cat < len(names) else str(cat)

    def _stuff_color(self, cat: int) -> tuple[int, int, int]:
        colors = self.metadata.get("stuff_colors")
        if colors is not None and 0 <= cat < len(colors):
            return tuple(int(c) for c in colors[cat])
        return tuple(int(c) for c in color_palette(cat + 1)[cat])

    def _labels(self, classes: list[int] | None, scores: Any, crowd: list[int] | None) -> list[str] | None:
        if classes is None and scores is None:
            return None
        n = len(classes) if classes is not None else len(scores)
        labels = [self._thing_name(int(c)) for c in classes] if classes is not None else [""] * n
        if scores is not None:
            labels = [
                f"{lab} {float(s) * 100:.0f}%".strip()
                for lab, s in zip(labels, _to_numpy(scores), strict=True)
            ]
        if crowd is not None:
            labels = [lab + ("|crowd" if c else "") for lab, c in zip(labels, crowd, strict=True)]
        return labels

    def _instance_colors(
        self, classes: list[int] | None, n: int, start: int = 0
    ) -> list[tuple[int, int, int]]:
        thing_colors = self.metadata.get("thing_colors")
        if self._instance_mode in (ColorMode.SEGMENTATION, ColorMode.IMAGE_BW) and classes is not None:
            if thing_colors is not None:
                return [tuple(int(v) for v in thing_colors[c]) for c in classes]
            palette = color_palette(max(classes, default=0) + 1)
            return [tuple(int(v) for v in palette[c]) for c in classes]
        palette = color_palette(start + n + 1)
        return [tuple(int(v) for v in palette[start + i + 1]) for i in range(n)]
