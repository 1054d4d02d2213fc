"""Chart losses against hand computations on tiny inputs."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from dt_densepose import DensePoseChartOutput, DensePoseDataRelative
from dt_densepose.losses import (
    densepose_chart_losses,
    iid_isotropic_uv_loss,
    indep_anisotropic_uv_loss,
    point_samples,
    resample_box_labels,
)
from dt_densepose.structures import DensePoseList
from dt_structures import Boxes, Instances


def _instances(points: DensePoseDataRelative, gt_box, est_box) -> list[Instances]:
    inst = Instances((16, 16))
    inst.proposal_boxes = Boxes(torch.tensor([est_box], dtype=torch.float32))
    inst.gt_boxes = Boxes(torch.tensor([gt_box], dtype=torch.float32))
    inst.gt_densepose = DensePoseList([points])
    return [inst]


def _points(x, y, i, u, v, segm=None) -> DensePoseDataRelative:
    f = lambda t: torch.tensor(t, dtype=torch.float32)  # noqa: E731
    return DensePoseDataRelative(f(x), f(y), torch.tensor(i), f(u), f(v), segm)


def test_points_at_cell_centres_read_exact_values_and_outside_points_are_dropped():
    # A map of 4 cells over the estimated box: a point at grid position p reads cells floor(p) and
    # floor(p) + 1 with weight p - floor(p), so whole positions read one cell exactly.
    samples = point_samples(_instances(_points([64, 192, 64], [128, 64, 64], [1, 2, 1], [0, 0, 0], [0, 0, 0]),
                                       [0, 0, 4, 4], [0, 0, 2, 4]), (4, 4))  # fmt: skip
    assert samples.box.tolist() == [0, 0]  # x = 192 -> image x 3, outside the est box [0, 2)
    maps = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    # point 0: image (1, 2) -> est-box grid (2, 2); point 2: image (1, 1) -> grid (2, 1)
    torch.testing.assert_close(samples.read(maps)[:, 0], torch.tensor([2 * 4 + 2.0, 1 * 4 + 2.0]))


def test_chart_losses_match_a_hand_computation():
    torch.manual_seed(0)
    parts, side = 3, 4
    out = DensePoseChartOutput(
        coarse_segm=torch.randn(1, 2, side, side), fine_segm=torch.randn(1, parts + 1, side, side),
        u=torch.rand(1, parts + 1, side, side), v=torch.rand(1, parts + 1, side, side),
    )  # fmt: skip
    segm = torch.zeros(256, 256, dtype=torch.uint8)
    segm[:, :128] = 2  # left half foreground
    # box [0, 0, 4, 4]: rel 64 / 192 = image 1 / 3 = exact cells 1 / 3
    points = _points([64, 192], [192, 64], [1, 3], [0.2, 0.9], [0.4, 0.1], segm)
    losses = densepose_chart_losses(
        out, _instances(points, [0, 0, 4, 4], [0, 0, 4, 4]),
        part_weight=2.0, index_weight=3.0, point_regression_weight=0.5,
    )  # fmt: skip
    cells = [(3, 1, 1), (1, 3, 3)]  # (row, col, part)
    ce = sum(-F.log_softmax(out.fine_segm[0, :, r, c], 0)[p] for r, c, p in cells) / 2
    torch.testing.assert_close(losses["loss_densepose_I"], 2.0 * ce)

    def smooth_l1(d):
        return 0.5 * d * d if abs(d) < 1 else abs(d) - 0.5

    u_hand = sum(
        smooth_l1(float(out.u[0, p, r, c]) - t) for (r, c, p), t in zip(cells, [0.2, 0.9], strict=True)
    )
    v_hand = sum(
        smooth_l1(float(out.v[0, p, r, c]) - t) for (r, c, p), t in zip(cells, [0.4, 0.1], strict=True)
    )
    assert math.isclose(float(losses["loss_densepose_U"]), 0.5 * u_hand, rel_tol=1e-5)
    assert math.isclose(float(losses["loss_densepose_V"]), 0.5 * v_hand, rel_tol=1e-5)
    target = torch.zeros(side, side, dtype=torch.long)
    target[:, :2] = 1  # 2 coarse channels: foreground where segm > 0
    segm_hand = -F.log_softmax(out.coarse_segm[0], 0).gather(0, target[None])[0].mean()
    torch.testing.assert_close(losses["loss_densepose_S"], 3.0 * segm_hand)


def test_iid_isotropic_loss_is_the_gaussian_nll():
    u, v, s, tu, tv = (torch.tensor([x]) for x in (0.3, 0.6, 0.2, 0.5, 0.1))
    sigma2 = math.log1p(math.exp(0.2)) + 0.01
    hand = 0.5 * (math.log(2 * math.pi) + 2 * math.log(sigma2) + (0.2**2 + 0.5**2) / sigma2)
    assert math.isclose(float(iid_isotropic_uv_loss(u, v, s, tu, tv)), hand, rel_tol=1e-6)


def test_indep_anisotropic_loss_is_the_gaussian_nll():
    values = dict(u=0.3, v=0.6, s=-0.5, ku=0.4, kv=-0.2, tu=0.5, tv=0.1)
    t = {k: torch.tensor([x]) for k, x in values.items()}
    loss = indep_anisotropic_uv_loss(t["u"], t["v"], t["s"], t["ku"], t["kv"], t["tu"], t["tv"])
    sigma2 = math.log1p(math.exp(-0.5)) + 0.01
    # the NLL of a 2-d Gaussian with covariance sigma2 I + r r^T, r = (0.4, -0.2), by explicit inverse
    r = torch.tensor([0.4, -0.2], dtype=torch.float64)
    cov = sigma2 * torch.eye(2, dtype=torch.float64) + torch.outer(r, r)
    d = torch.tensor([0.3 - 0.5, 0.6 - 0.1], dtype=torch.float64)
    hand = 0.5 * (math.log(2 * math.pi) + torch.logdet(cov) + d @ torch.linalg.solve(cov, d))
    assert math.isclose(float(loss), float(hand), rel_tol=1e-5)


def test_confidence_losses_replace_u_and_v():
    out = DensePoseChartOutput(
        coarse_segm=torch.zeros(1, 2, 4, 4), fine_segm=torch.zeros(1, 4, 4, 4), u=torch.zeros(1, 4, 4, 4),
        v=torch.zeros(1, 4, 4, 4), sigma_2=torch.ones(1, 4, 4, 4),
    )  # fmt: skip
    points = _points([64], [64], [2], [0.5], [0.5])
    instances = _instances(points, [0, 0, 4, 4], [0, 0, 4, 4])
    losses = densepose_chart_losses(out, instances, uv_confidence="iid_iso", point_regression_weight=1.0)
    assert set(losses) == {"loss_densepose_UV", "loss_densepose_I", "loss_densepose_S"}
    sigma2 = math.log1p(math.e) + 0.01
    hand = 0.5 * (math.log(2 * math.pi) + 2 * math.log(sigma2) + 0.5 / sigma2)
    assert math.isclose(float(losses["loss_densepose_UV"]), hand, rel_tol=1e-5)
    assert float(losses["loss_densepose_S"]) == 0.0  # no segm annotation


def test_no_annotated_points_gives_zero_losses_with_gradients():
    out = DensePoseChartOutput(*(torch.randn(1, c, 4, 4, requires_grad=True) for c in (2, 4, 4, 4)))
    points = _points([], [], [], [], [])
    losses = densepose_chart_losses(out, _instances(points, [0, 0, 4, 4], [0, 0, 4, 4]))
    assert all(float(v.detach()) == 0.0 and v.requires_grad for v in losses.values())


def test_resample_box_labels_shifts_with_the_boxes():
    labels = torch.zeros(1, 4, 4, dtype=torch.uint8)
    labels[0, :, :2] = 1  # left half of [0, 0, 4, 4]
    out = resample_box_labels(labels, torch.tensor([[0.0, 0, 4, 4]]), torch.tensor([[1.0, 0, 5, 4]]), (4, 4))
    assert out[0, 0].tolist() == [1, 0, 0, 0]  # shifted one pixel right; right of the source box is 0
