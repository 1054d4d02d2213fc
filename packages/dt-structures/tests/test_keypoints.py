import numpy as np
import pytest
import torch
from torch.nn import functional as F

from dt_structures import Boxes, Instances, Keypoints, heatmaps_to_keypoints, keypoints_to_heatmap


def test_keypoints_surface():
    kp = Keypoints(np.arange(2 * 3 * 3, dtype=np.float64).reshape(2, 3, 3))
    assert kp.tensor.dtype == torch.float32 and len(kp) == 2
    assert kp[1].tensor.shape == (1, 3, 3) and len(kp[torch.tensor([True, True])]) == 2
    assert len(Keypoints.cat([kp, kp[0]])) == 3
    assert kp.to("meta").device.type == "meta"
    assert repr(kp) == "Keypoints(num_instances=2, num_keypoints=3)"
    assert Keypoints(torch.zeros(0, 17, 3)).tensor.shape == (0, 17, 3)
    with pytest.raises(ValueError, match=r"\[N, K, 3\]"):
        Keypoints(torch.zeros(2, 3))
    with pytest.raises(TypeError):
        Keypoints.cat([kp, kp.tensor])
    inst = Instances((5, 5), gt_keypoints=kp)
    assert isinstance(inst[0].gt_keypoints, Keypoints)


def test_to_heatmap_cells_boundaries_and_visibility():
    kp = Keypoints(
        torch.tensor(
            [
                [
                    [3.0, 7.0, 2],  # cell (x=1, y=3) of a 5x5 grid over [0, 10)
                    [10.0, 10.0, 2],  # on the right/bottom edge: last cell
                    [-1.0, 5.0, 2],  # outside
                    [5.0, 5.0, 0],  # not labeled
                    [9.99, 0.0, 1],  # labeled, hidden: still a target
                ]
            ]
        )
    )
    heatmaps, valid = kp.to_heatmap(Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]])), 5)
    assert valid.tolist() == [[1, 1, 0, 0, 1]]
    assert heatmaps.tolist() == [[3 * 5 + 1, 24, 0, 0, 4]]
    assert heatmaps.dtype == torch.int64 and valid.dtype == torch.int64


def test_to_heatmap_offset_box_and_empty():
    kp = torch.tensor([[[12.0, 21.0, 2.0]]])
    heatmaps, valid = keypoints_to_heatmap(kp, torch.tensor([[10.0, 20.0, 14.0, 22.0]]), 4)
    # x: (12 - 10) * 4 / 4 = 2; y: (21 - 20) * 4 / 2 = 2
    assert heatmaps.tolist() == [[2 * 4 + 2]] and valid.tolist() == [[1]]
    heatmaps, valid = keypoints_to_heatmap(torch.zeros(0, 17, 3), torch.zeros(0, 4), 56)
    assert heatmaps.shape == (0, 17) and valid.shape == (0, 17)
    with pytest.raises(ValueError, match="rois"):
        keypoints_to_heatmap(kp, torch.zeros(2, 4), 4)


def test_heatmaps_to_keypoints_peak_location_and_score():
    maps = torch.full((1, 2, 4, 4), -5.0)
    maps[0, 0, 1, 2] = 3.0  # keypoint 0 peaks at column 2, row 1
    maps[0, 1, 3, 0] = 1.0
    rois = torch.tensor([[10.0, 20.0, 14.0, 24.0]])  # 4x4 box: the resize is the identity
    out = heatmaps_to_keypoints(maps, rois)
    assert out.shape == (1, 2, 4)
    torch.testing.assert_close(out[0, :, :2], torch.tensor([[12.5, 21.5], [10.5, 23.5]]))
    torch.testing.assert_close(out[0, :, 2], torch.tensor([3.0, 1.0]))
    expected_score = 1 / torch.exp(maps[0] - maps[0].amax(dim=(1, 2), keepdim=True)).sum(dim=(1, 2))
    torch.testing.assert_close(out[0, :, 3], expected_score)


def test_heatmaps_to_keypoints_resizes_bicubically_per_roi():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(3, 5, 7, 7, generator=g)
    rois = torch.tensor([[0.0, 0.0, 20.5, 13.0], [5.0, 5.0, 5.2, 6.0], [1.0, 2.0, 40.0, 9.9]])
    out = heatmaps_to_keypoints(maps, Boxes(rois))
    for i in range(3):
        w = max(float(rois[i, 2] - rois[i, 0]), 1.0)
        h = max(float(rois[i, 3] - rois[i, 1]), 1.0)
        size = (int(np.ceil(h)), int(np.ceil(w)))
        resized = F.interpolate(maps[i : i + 1], size=size, mode="bicubic", align_corners=False)[0]
        for k in range(5):
            row, col = divmod(int(resized[k].argmax()), size[1])
            x = float(rois[i, 0]) + (col + 0.5) * w / size[1]
            y = float(rois[i, 1]) + (row + 0.5) * h / size[0]
            assert out[i, k, :2].tolist() == pytest.approx([x, y], abs=1e-4)
            assert out[i, k, 2].item() == pytest.approx(resized[k].max().item())
    assert bool((out[..., 3] > 0).all())


def test_heatmaps_to_keypoints_edge_cases():
    assert heatmaps_to_keypoints(torch.zeros(0, 17, 56, 56), torch.zeros(0, 4)).shape == (0, 17, 4)
    maps = torch.randn(1, 3, 6, 6, requires_grad=True)
    out = heatmaps_to_keypoints(maps, torch.tensor([[0.0, 0.0, 6.0, 6.0]]))
    assert not out.requires_grad
    with pytest.raises(ValueError, match="ROIs"):
        heatmaps_to_keypoints(torch.zeros(2, 3, 6, 6), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="maps"):
        heatmaps_to_keypoints(torch.zeros(3, 6, 6), torch.zeros(3, 4))
