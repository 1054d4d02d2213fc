"""DensePose AP by GPS and GPSm (detectron2's DensePose COCO evaluation, chart-based results).

For a detection and a ground-truth instance with DensePose points, each point is located in the
detection's IUV result (box-sized, :func:`~dt_densepose.iuv.chart_to_box_iuv`); its geodesic
distance ``d`` to the annotated surface point (:class:`~dt_densepose.geodesics.MeshGeodesics`;
infinite where the detection says background or the point is outside it) scores
``exp(-d^2 / (2 k_I^2))``. **GPS** is the mean over the instance's points; **GPSm** is
``sqrt(GPS x IoU)`` with IoU between the detection's foreground and the ``dp_masks`` union. Either
replaces IoU in COCO matching (thresholds 0.5:0.05:0.95, up to 20 detections per image, greedy by
score, 101-point interpolated precision): ``AP``, ``AP50``, ``AP75`` (percent). Ground truth without
DensePose points is ignored, as are detections matched to it. Also reported: ``densepose_segm``
``mIoU`` (percent), the mean over ground truths of the best mask IoU of a detection.

Differences from detectron2 kept on purpose: U, V are read as floats (detectron2 quantizes them to
1/255) and points are placed with ``/ 256`` (the training convention; detectron2's evaluator uses
``/ 255``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2
import numpy as np

from dt_data import DatasetCatalog, MetadataCatalog
from dt_engine.evaluation import EVALUATOR_REGISTRY
from dt_eval import DatasetEvaluator
from dt_eval.comm import gather_list
from dt_structures import BoxMode

from .geodesics import MeshGeodesics, flat_chart_geodesics, human_geodesics
from .iuv import chart_to_box_iuv
from .shapes import SHAPES_NUM_PARTS, register_densepose_shapes
from .structures import SEGM_SIZE, DensePoseDataRelative

__all__ = ["DensePoseEvaluator", "densepose_ap", "gps_scores", "match_and_average_precision"]

logger = logging.getLogger(__name__)
THRESHOLDS = np.linspace(0.5, 0.95, 10)
MAX_DETECTIONS = 20

register_densepose_shapes()


def gps_scores(
    geodesics: MeshGeodesics,
    gt_points: DensePoseDataRelative,
    gt_box: np.ndarray,
    labels: np.ndarray,
    uv: np.ndarray,
    det_box: np.ndarray,
) -> float:
    """GPS of one detection (IUV result ``labels`` ``[h, w]``, ``uv`` ``[2, h, w]`` at XYXY ``det_box``)
    for one ground truth (points relative to XYXY ``gt_box``)."""
    if len(gt_points) == 0:
        return 0.0
    gw, gh = gt_box[2] - gt_box[0], gt_box[3] - gt_box[1]
    px = np.floor(gt_box[0] + gt_points.x.numpy() * gw / SEGM_SIZE - det_box[0]).astype(np.int64)
    py = np.floor(gt_box[1] + gt_points.y.numpy() * gh / SEGM_SIZE - det_box[1]).astype(np.int64)
    h, w = labels.shape
    inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
    if not inside.any():
        return 0.0
    px, py = np.where(inside, px, 0), np.where(inside, py, 0)
    pred_i = np.where(inside, labels[py, px], 0)
    gt_iuv = (gt_points.i.numpy(), gt_points.u.numpy(), gt_points.v.numpy())
    dist = geodesics.point_distances(gt_iuv, (pred_i, uv[0, py, px], uv[1, py, px]))
    scale = geodesics.normalisation[gt_iuv[0]]
    return float(np.exp(-(dist**2) / (2 * scale**2)).mean())


def _box_mask_in_image(mask: np.ndarray, box: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """A box-sized mask pasted at XYXY ``box`` (integer corner) into a ``bool[H, W]`` image mask."""
    out = np.zeros(image_hw, bool)
    x0, y0 = int(box[0]), int(box[1])
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + mask.shape[1], image_hw[1]), min(y0 + mask.shape[0], image_hw[0])
    if xb > xa and yb > ya:
        out[ya:yb, xa:xb] = mask[ya - y0 : yb - y0, xa - x0 : xb - x0]
    return out


def _gt_mask(data: DensePoseDataRelative, box: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray | None:
    if data.segm is None:
        return None
    w, h = max(int(box[2] - box[0]), 1), max(int(box[3] - box[1]), 1)
    resized = cv2.resize((data.segm.numpy() > 0).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return _box_mask_in_image(resized > 0.5, box, image_hw)


def _mask_iou(a: np.ndarray, b: np.ndarray | None) -> float:
    if b is None:
        return 0.0
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def match_and_average_precision(
    similarities: Sequence[np.ndarray], scores: Sequence[np.ndarray], gt_ignored: Sequence[np.ndarray]
) -> np.ndarray:
    """COCO-style AP at each of ``THRESHOLDS`` from per-image similarity matrices.

    Args:
        similarities: per image ``[D, G]`` (detections sorted by descending score, at most 20).
        scores: per image ``[D]`` detection scores; gt_ignored: per image ``bool[G]``.
    Returns ``float[T]``: AP per threshold (``nan`` without non-ignored ground truth).
    """
    aps = np.zeros(len(THRESHOLDS))
    num_gt = sum(int((~g).sum()) for g in gt_ignored)
    if num_gt == 0:
        return np.full(len(THRESHOLDS), np.nan)
    for t, threshold in enumerate(THRESHOLDS):
        all_scores, all_tp, all_ignored = [], [], []
        for sim, score, ignored in zip(similarities, scores, gt_ignored, strict=True):
            order = np.argsort(ignored, kind="stable")  # non-ignored ground truth first
            taken = np.zeros(len(ignored), bool)
            for d in range(len(score)):
                best, best_sim = -1, min(threshold, 1 - 1e-10)
                for g in order:
                    if taken[g]:
                        continue
                    if best > -1 and not ignored[best] and ignored[g]:
                        break
                    if sim[d, g] < best_sim:
                        continue
                    best, best_sim = g, sim[d, g]
                if best > -1:
                    taken[best] = True
                all_scores.append(score[d])
                all_tp.append(best > -1 and not ignored[best])
                all_ignored.append(best > -1 and bool(ignored[best]))
        if not all_scores:
            continue
        order = np.argsort(-np.asarray(all_scores), kind="mergesort")
        tp = np.asarray(all_tp)[order]
        keep = ~np.asarray(all_ignored)[order]
        tp_sum = np.cumsum(tp[keep])
        fp_sum = np.cumsum(~tp[keep])
        recall = tp_sum / num_gt
        precision = tp_sum / np.maximum(tp_sum + fp_sum, np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
        recall_points = np.linspace(0, 1, 101)
        where = np.searchsorted(recall, recall_points, side="left")
        sampled = np.array([precision[k] if k < len(precision) else 0.0 for k in where])
        aps[t] = sampled.mean()
    return aps


def _summary(aps: np.ndarray) -> dict[str, float]:
    return {"AP": 100 * float(np.nanmean(aps)), "AP50": 100 * float(aps[0]), "AP75": 100 * float(aps[5])}


def densepose_ap(
    ground_truth: Sequence[dict], predictions: Sequence[dict], geodesics: MeshGeodesics
) -> dict[str, dict[str, float]]:
    """GPS / GPSm AP and segmentation mIoU.

    ``ground_truth``: per image ``{"image_id", "height", "width", "instances": [(XYXY box,
    DensePoseDataRelative or None), ...]}``; ``predictions``: per image ``{"image_id", "detections":
    [(score, XYXY box, labels [h, w], uv [2, h, w]), ...]}``.
    """
    by_id = {p["image_id"]: p["detections"] for p in predictions}
    gps_sims, gpsm_sims, all_scores, ignored, best_ious = [], [], [], [], []
    for image in ground_truth:
        dets = sorted(by_id.get(image["image_id"], []), key=lambda d: -d[0])[:MAX_DETECTIONS]
        gts = image["instances"]
        hw = (int(image["height"]), int(image["width"]))
        gps = np.zeros((len(dets), len(gts)))
        iou = np.zeros((len(dets), len(gts)))
        det_masks = [_box_mask_in_image(labels > 0, box, hw) for _, box, labels, _ in dets]
        for g, (gt_box, data) in enumerate(gts):
            if data is None:
                continue
            gt_mask = _gt_mask(data, gt_box, hw)
            for d, (_, box, labels, uv) in enumerate(dets):
                gps[d, g] = gps_scores(geodesics, data, gt_box, labels, uv, box)
                iou[d, g] = _mask_iou(det_masks[d], gt_mask)
            if data.segm is not None:
                best_ious.append(float(iou[:, g].max()) if len(dets) else 0.0)
        gps_sims.append(gps)
        gpsm_sims.append(np.sqrt(gps * iou))
        all_scores.append(np.array([d[0] for d in dets]))
        ignored.append(np.array([data is None for _, data in gts], bool))
    return {
        "densepose_gps": _summary(match_and_average_precision(gps_sims, all_scores, ignored)),
        "densepose_gpsm": _summary(match_and_average_precision(gpsm_sims, all_scores, ignored)),
        "densepose_segm": {"mIoU": 100 * float(np.mean(best_ious)) if best_ious else float("nan")},
    }


def _ground_truth(dataset_name: str, num_parts: int, num_mask_parts: int) -> list[dict]:
    images = []
    for record in DatasetCatalog.get(dataset_name):
        instances = []
        for k, anno in enumerate(record.get("annotations", [])):
            if anno.get("iscrowd", 0):
                continue
            box = BoxMode.convert(np.asarray(anno["bbox"], np.float64), anno["bbox_mode"], BoxMode.XYXY_ABS)
            data = None
            if "dp_x" in anno:
                loc = f"{dataset_name}: {record.get('file_name', '?')}: annotation id={anno.get('id', k)}"
                data = DensePoseDataRelative.from_annotation(
                    anno, num_parts=num_parts, num_mask_parts=num_mask_parts, loc=loc
                )
            instances.append((box, data))
        images.append({"image_id": record["image_id"], "height": record["height"], "width": record["width"],
                       "instances": instances})  # fmt: skip
    return images


class DensePoseEvaluator(DatasetEvaluator):
    """GPS / GPSm AP on a dataset with DensePose annotations (see the module docstring).

    Args:
        dataset_name: a registered dataset; geodesics: the mesh (``human_geodesics()``, ...);
        num_parts, num_mask_parts: what its annotations are checked against.
    """

    def __init__(
        self, dataset_name: str, geodesics: MeshGeodesics, *, num_parts: int = 24, num_mask_parts: int = 14
    ) -> None:
        self.dataset_name = dataset_name
        self.geodesics = geodesics
        self.num_parts, self.num_mask_parts = num_parts, num_mask_parts
        self._predictions: list[dict] = []

    def reset(self) -> None:
        self._predictions = []

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for inp, out in zip(inputs, outputs, strict=True):
            instances = out["instances"].to("cpu")
            detections = []
            if len(instances) and instances.has("pred_densepose"):
                boxes = instances.pred_boxes.tensor
                for k in range(len(instances)):
                    labels, uv = chart_to_box_iuv(instances.pred_densepose[k], boxes[k])
                    detections.append((float(instances.scores[k]), boxes[k].numpy().astype(np.float64),
                                       labels.numpy(), uv.numpy()))  # fmt: skip
            self._predictions.append({"image_id": inp["image_id"], "detections": detections})

    def evaluate(self) -> dict[str, dict[str, float]] | None:
        predictions = gather_list(self._predictions)
        if predictions is None:
            return None
        ground_truth = _ground_truth(self.dataset_name, self.num_parts, self.num_mask_parts)
        results = densepose_ap(ground_truth, predictions, self.geodesics)
        logger.info("DensePose results of %s: %s", self.dataset_name, results)
        return results


@EVALUATOR_REGISTRY.register("densepose")
def build_densepose_evaluators(dataset_name: str, cfg, output_dir: str) -> list[DatasetEvaluator]:
    """The ``densepose`` evaluator type, as detectron2's DensePose ``train_net``: COCO box AP (the
    ``coco`` type's evaluator: ``bbox/AP``, ...) and :class:`DensePoseEvaluator` with the SMPL
    geodesics from the cache, or the shapes set's flat charts when the dataset's metadata says
    ``densepose_geodesics: shapes``."""
    boxes = list(EVALUATOR_REGISTRY.get("coco")(dataset_name, cfg, output_dir))
    if MetadataCatalog.get(dataset_name).get("densepose_geodesics", "smpl") == "shapes":
        geodesics, parts = flat_chart_geodesics(SHAPES_NUM_PARTS), SHAPES_NUM_PARTS
        densepose = DensePoseEvaluator(dataset_name, geodesics, num_parts=parts, num_mask_parts=parts)
    else:
        densepose = DensePoseEvaluator(dataset_name, human_geodesics())
    return [*boxes, densepose]
