"""Geodesics on a synthetic mesh with known distances, GPS by hand, COCO-style AP matching, and the
``densepose`` evaluator type (box AP beside GPS)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import dt_densepose
from dt_data import DatasetCatalog
from dt_densepose import DensePoseDataRelative, MissingDataFileError
from dt_densepose.evaluator import densepose_ap, gps_scores, match_and_average_precision
from dt_densepose.geodesics import MeshGeodesics, flat_chart_geodesics, human_geodesics
from dt_densepose.shapes import register_densepose_shapes
from dt_engine.config.experiment import load_experiment
from dt_engine.evaluation import build_evaluator
from dt_structures import Boxes, BoxMode, Instances


def _mesh(condensed: bool = False) -> MeshGeodesics:
    """Two parts, three vertices each, on a path: 0 - 1 - 2 (part 1) - 3 - 4 - 5 (part 2), unit edges."""
    part = np.array([1, 1, 1, 2, 2, 2])
    uv = np.array([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 1.0], [1.0, 1.0]])
    dense = np.abs(np.arange(6)[:, None] - np.arange(6)[None]).astype(np.float64)
    norm = np.array([0.0, 1.0, 2.0])
    if not condensed:
        return MeshGeodesics(part, uv, dense, norm)
    rows = np.array([5, 4, 3, 2, 1, 0])  # vertex k is row 5 - k of the condensed matrix
    order = np.argsort(rows)
    reordered = dense[np.ix_(order, order)]
    upper = reordered[np.triu_indices(6, 1)]
    return MeshGeodesics(part, uv, upper, norm, vertex_rows=rows)


@pytest.mark.parametrize("condensed", [False, True])
def test_point_distances_snap_to_the_nearest_vertex_of_the_part(condensed):
    mesh = _mesh(condensed)
    assert mesh.closest_vertices(
        np.array([1, 2, 0]), np.array([0.6, 0.9, 0.5]), np.array([0.3, 0.0, 0.0])
    ).tolist() == [1, 5, -1]
    gt = (np.array([1, 1, 2]), np.array([0.1, 0.1, 1.0]), np.array([0.0, 0.0, 0.0]))
    pred = (np.array([1, 2, 0]), np.array([1.0, 0.4, 0.0]), np.array([0.0, 0.0, 0.0]))
    np.testing.assert_array_equal(mesh.point_distances(gt, pred), [2.0, 4.0, np.inf])


def test_gps_against_a_hand_computation():
    mesh = _mesh()
    # ground truth box [0, 0, 8, 8]: points at image (1, 1), (5, 5) and (7, 1)
    gt = DensePoseDataRelative(
        x=torch.tensor([32.0, 160.0, 224.0]), y=torch.tensor([32.0, 160.0, 32.0]), i=torch.tensor([1, 2, 1]),
        u=torch.tensor([0.0, 1.0, 0.5]), v=torch.tensor([0.0, 1.0, 0.0]), segm=None,
    )  # fmt: skip
    labels = np.zeros((6, 6), np.int64)  # detection box [0, 0, 6, 6]: (7, 1) lies outside it
    uv = np.zeros((2, 6, 6))
    labels[1, 1], uv[:, 1, 1] = 1, [1.0, 0.0]  # gt vertex 0, predicted vertex 2: distance 2, scale 1
    labels[5, 5], uv[:, 5, 5] = 2, [0.5, 1.0]  # gt vertex 5, predicted vertex 4: distance 1, scale 2
    score = gps_scores(mesh, gt, np.array([0, 0, 8, 8.0]), labels, uv, np.array([0, 0, 6, 6.0]))
    hand = (math.exp(-4 / 2) + math.exp(-1 / 8) + 0.0) / 3
    assert math.isclose(score, hand, rel_tol=1e-9)


def test_ap_matching_by_similarity():
    # one image, two ground truths; det 0 (score .9) has similarity .8 with gt 0, det 1 (.8) .6 with gt 1
    sims = [np.array([[0.8, 0.1], [0.2, 0.6]])]
    aps = match_and_average_precision(sims, [np.array([0.9, 0.8])], [np.array([False, False])])
    thresholds = np.linspace(0.5, 0.95, 10)
    recall_half = 51 / 101  # precision 1 up to recall 0.5, none after
    expected = [1.0 if t <= 0.6 else recall_half if t <= 0.8 else 0.0 for t in thresholds]
    np.testing.assert_allclose(aps, expected)


def test_detections_matched_to_ignored_ground_truth_do_not_count():
    sims = [np.array([[0.9, 0.0], [0.0, 0.9]])]
    aps = match_and_average_precision(sims, [np.array([0.9, 0.8])], [np.array([True, False])])
    np.testing.assert_allclose(aps[:9], 1.0)  # det 0 is ignored, det 1 is a true positive


def test_perfect_prediction_scores_100_on_flat_charts():
    geodesics = flat_chart_geodesics(2, grid=5)
    segm = torch.ones(256, 256, dtype=torch.uint8)
    gt = DensePoseDataRelative(
        x=torch.tensor([16.0, 144.0]), y=torch.tensor([16.0, 144.0]), i=torch.tensor([1, 2]),
        u=torch.tensor([0.0, 0.5]), v=torch.tensor([0.0, 0.5]), segm=segm,
    )  # fmt: skip
    box = np.array([4.0, 4.0, 20.0, 20.0])
    labels = np.ones((16, 16), np.int64)
    labels[8:, 8:] = 2
    uv = np.zeros((2, 16, 16))
    uv[:, 9, 9] = 0.5
    ground_truth = [{"image_id": 1, "height": 24, "width": 24, "instances": [(box, gt)]}]
    predictions = [{"image_id": 1, "detections": [(0.9, box, labels, uv)]}]
    results = densepose_ap(ground_truth, predictions, geodesics)
    assert results["densepose_gps"]["AP"] == pytest.approx(100.0)
    assert results["densepose_gpsm"]["AP"] == pytest.approx(100.0)
    assert results["densepose_segm"]["mIoU"] == pytest.approx(100.0)


def test_flat_chart_scale_is_the_mean_distance_between_points_of_the_part():
    # the metric's per-part kappa; on a 2 x 2 lattice: four unit edges and two diagonals
    assert flat_chart_geodesics(3, grid=2).normalisation.tolist() == pytest.approx(
        [0.0] + [(4 + 2 * math.sqrt(2)) / 6] * 3
    )
    geodesics = flat_chart_geodesics(1)
    kappa = geodesics.normalisation[1]
    assert kappa == pytest.approx(0.555, abs=1e-3)  # the continuous unit square's is 0.521
    gt = DensePoseDataRelative(
        x=torch.tensor([128.0]), y=torch.tensor([128.0]), i=torch.tensor([1]), u=torch.tensor([0.25]),
        v=torch.tensor([0.5]), segm=None,
    )  # fmt: skip
    labels = np.ones((8, 8), np.int64)
    uv = np.stack([np.full((8, 8), 0.375), np.full((8, 8), 0.625)])  # off by 1/8 in U and V: lattice points
    box = np.array([0.0, 0.0, 8.0, 8.0])
    expected = math.exp(-(2 / 64) / (2 * kappa**2))  # about 0.95: a small error on the chart
    assert gps_scores(geodesics, gt, box, labels, uv, box) == pytest.approx(expected)


def test_the_densepose_evaluator_type_also_reports_box_ap(tmp_path):
    """As detectron2's DensePose evaluation: COCO box AP beside GPS / GPSm. Detections at the ground
    truth boxes without DensePose outputs: box AP 100, GPS AP 0."""
    register_densepose_shapes("dp_eval_boxes", num_train=1, num_val=2, root=tmp_path)
    name = "dp_eval_boxes_val"
    cfg = load_experiment(str(dt_densepose.config_path("densepose_shapes_cpu.yaml")))
    evaluator = build_evaluator(name, cfg, str(tmp_path / "eval"))
    evaluator.reset()
    for record in DatasetCatalog.get(name):
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in record["annotations"]]
        n = len(boxes)
        instances = Instances(
            (record["height"], record["width"]), pred_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32)),
            scores=torch.linspace(0.9, 0.5, n), pred_classes=torch.zeros(n, dtype=torch.int64),
        )  # fmt: skip
        evaluator.process([record], [{"instances": instances}])
    results = evaluator.evaluate()
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    assert results["densepose_gps"]["AP"] == 0.0


def test_missing_geodesic_files_name_file_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("DT_CACHE", str(tmp_path))
    with pytest.raises(
        MissingDataFileError,
        match=r"SMPL_subdiv\.mat is missing: download https://dl\.fbaipublicfiles\.com/densepose/data/SMPL_subdiv\.mat",
    ):
        human_geodesics()
