import pytest
import torch

from dt_models.poolers import ROIPooler, assign_boxes_to_levels, convert_boxes_to_pooler_format
from dt_structures import Boxes


def test_level_assignment_follows_box_scale():
    boxes = [
        Boxes(torch.tensor([[0.0, 0.0, 224.0, 224.0], [0.0, 0.0, 112.0, 112.0], [0.0, 0.0, 10.0, 10.0]]))
    ]
    boxes.append(Boxes(torch.tensor([[0.0, 0.0, 1000.0, 1000.0]])))
    levels = assign_boxes_to_levels(
        boxes, min_level=2, max_level=5, canonical_box_size=224, canonical_level=4
    )
    assert levels.tolist() == [2, 1, 0, 3]


def test_pooler_format_prepends_image_index():
    out = convert_boxes_to_pooler_format([torch.ones(2, 4), torch.zeros(0, 4), torch.full((1, 4), 2.0)])
    assert out[:, 0].tolist() == [0.0, 0.0, 2.0] and out.shape == (3, 5)


@pytest.mark.parametrize("kind", ["ROIAlign", "ROIAlignV2", "ROIPool"])
def test_multi_level_pooling_picks_each_boxes_level(kind):
    pooler = ROIPooler(2, scales=(1 / 4, 1 / 8), sampling_ratio=0, pooler_type=kind, canonical_box_size=32,
                       canonical_level=3)  # fmt: skip
    # level 2 is all ones, level 3 all twos: the pooled value tells which level a box used
    x = [torch.ones(1, 3, 16, 16), torch.full((1, 3, 8, 8), 2.0)]
    boxes = [Boxes(torch.tensor([[4.0, 4.0, 12.0, 12.0], [0.0, 0.0, 60.0, 60.0]]))]
    out = pooler(x, boxes)
    assert out.shape == (2, 3, 2, 2)
    torch.testing.assert_close(out[0], torch.ones(3, 2, 2))
    torch.testing.assert_close(out[1], torch.full((3, 2, 2), 2.0))


def test_pooler_empty_and_validation():
    pooler = ROIPooler(7, scales=(1 / 4, 1 / 8), sampling_ratio=0, pooler_type="ROIAlignV2")
    x = [torch.randn(2, 4, 16, 16), torch.randn(2, 4, 8, 8)]
    assert pooler(x, [Boxes(torch.zeros(0, 4)), Boxes(torch.zeros(0, 4))]).shape == (0, 4, 7, 7)
    with pytest.raises(ValueError, match="power of two"):
        ROIPooler(7, scales=(1 / 3,), sampling_ratio=0, pooler_type="ROIAlign")
    with pytest.raises(ValueError, match="pooler_type"):
        ROIPooler(7, scales=(1 / 4,), sampling_ratio=0, pooler_type="ROIAlignV3")
    with pytest.raises(ValueError, match="images"):
        pooler(x, [Boxes(torch.zeros(0, 4))])


def test_rotated_pooler_with_zero_angle_matches_aligned_pooler():
    x = [torch.randn(1, 2, 16, 16), torch.randn(1, 2, 8, 8)]
    xyxy = torch.tensor([[2.0, 3.0, 30.0, 20.0], [10.0, 6.0, 50.0, 60.0]])
    rotated = torch.cat(
        [(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2], torch.zeros(2, 1)], dim=1
    )
    kwargs = dict(output_size=3, scales=(1 / 4, 1 / 8), sampling_ratio=2)
    expected = ROIPooler(pooler_type="ROIAlignV2", **kwargs)(x, [xyxy])
    torch.testing.assert_close(ROIPooler(pooler_type="ROIAlignRotated", **kwargs)(x, [rotated]), expected)
