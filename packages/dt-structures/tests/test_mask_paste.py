import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dt_structures import BitMasks, Boxes, ROIMasks, mask_paste, paste_masks_in_image
from dt_structures.mask_paste import _do_paste_mask, _paste

DATA = Path(__file__).parent / "data"


def reference_paste(mask: np.ndarray, box, img_h: int, img_w: int) -> np.ndarray:
    """Bilinear sampling of ``mask`` (zero outside) at every pixel center, the box spanning the mask."""
    m_h, m_w = mask.shape
    x0, y0, x1, y1 = (float(v) for v in box)
    out = np.zeros((img_h, img_w))
    for py in range(img_h):
        v = (py + 0.5 - y0) / (y1 - y0) * m_h - 0.5
        for px in range(img_w):
            u = (px + 0.5 - x0) / (x1 - x0) * m_w - 0.5
            u0, v0 = int(np.floor(u)), int(np.floor(v))
            total = 0.0
            for dv, wv in ((0, 1 - (v - v0)), (1, v - v0)):
                for du, wu in ((0, 1 - (u - u0)), (1, u - u0)):
                    r, c = v0 + dv, u0 + du
                    if 0 <= r < m_h and 0 <= c < m_w:
                        total += wv * wu * mask[r, c]
            out[py, px] = total
    return out


def random_case(n=4, m=6, img=(17, 23), seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = torch.rand(n, m, m, generator=g)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([img[1], img[0]]) - 3
    wh = torch.rand(n, 2, generator=g) * 12 + 1
    return masks, torch.cat([xy, xy + wh], dim=1)


def test_matches_detectron2_golden_mask_rcnn_output():
    golden = np.load(DATA / "golden_mask_rcnn_paste.npz")
    h, w = (int(v) for v in golden["image_shape"])
    expected = np.unpackbits(golden["masks_packed"], axis=-1)[..., :w].astype(bool)
    out = paste_masks_in_image(torch.from_numpy(golden["mask_probs"]), Boxes(golden["boxes"]), (h, w))
    assert out.dtype == torch.bool and out.shape == expected.shape
    assert np.array_equal(out.numpy(), expected)


def test_full_image_sampling_matches_reference():
    masks, boxes = random_case()
    soft, region = _do_paste_mask(masks[:, None], boxes, 17, 23, skip_empty=False)
    assert region == ()
    for i in range(len(masks)):
        expected = reference_paste(masks[i].double().numpy(), boxes[i], 17, 23)
        np.testing.assert_allclose(soft[i].numpy(), expected, atol=1e-5)


def test_cpu_path_pastes_around_each_box_only():
    masks, boxes = random_case(seed=1)
    out = paste_masks_in_image(masks, boxes, (17, 23))
    for i in range(len(masks)):
        expected = reference_paste(masks[i].double().numpy(), boxes[i], 17, 23) >= 0.5
        x0 = max(math.floor(boxes[i, 0].item()) - 1, 0)
        y0 = max(math.floor(boxes[i, 1].item()) - 1, 0)
        x1 = min(math.ceil(boxes[i, 2].item()) + 1, 23)
        y1 = min(math.ceil(boxes[i, 3].item()) + 1, 17)
        region = np.zeros((17, 23), dtype=bool)
        region[y0:y1, x0:x1] = True
        assert np.array_equal(out[i].numpy(), expected & region)


def test_chunked_full_image_path_is_independent_of_chunking():
    masks, boxes = random_case(n=7, seed=2)
    one = _paste(masks, boxes, 17, 23, 0.5, skip_empty=False, num_chunks=1)
    three = _paste(masks, boxes, 17, 23, 0.5, skip_empty=False, num_chunks=3)
    assert torch.equal(one, three)
    soft, _ = _do_paste_mask(masks[:, None], boxes, 17, 23, skip_empty=False)
    assert torch.equal(one, soft >= 0.5)


def test_negative_threshold_returns_uint8_soft_masks():
    masks, boxes = random_case(seed=3)
    out = paste_masks_in_image(masks, boxes, (17, 23), threshold=-1)
    assert out.dtype == torch.uint8
    full = _paste(masks, boxes, 17, 23, -1, skip_empty=False, num_chunks=1)
    soft, _ = _do_paste_mask(masks[:, None], boxes, 17, 23, skip_empty=False)
    assert torch.equal(full, (soft * 255).to(torch.uint8))
    assert int(out.max()) > 0


def test_threshold_semantics_are_greater_or_equal():
    masks = torch.full((1, 4, 4), 0.5)
    out = paste_masks_in_image(masks, torch.tensor([[0.0, 0.0, 4.0, 4.0]]), (4, 4), threshold=0.5)
    assert bool(out.all())
    out = paste_masks_in_image(masks, torch.tensor([[0.0, 0.0, 4.0, 4.0]]), (4, 4), threshold=0.51)
    assert not bool(out.any())


def test_empty_and_degenerate_inputs():
    out = paste_masks_in_image(torch.zeros(0, 28, 28), torch.zeros(0, 4), (5, 6))
    assert out.shape == (0, 5, 6) and out.dtype == torch.bool
    assert paste_masks_in_image(torch.zeros(0, 28, 28), torch.zeros(0, 4), (5, 6), -1).dtype == torch.uint8
    masks = torch.ones(3, 8, 8)
    boxes = torch.tensor([[50.0, 50.0, 60.0, 60.0], [-20.0, -20.0, -10.0, -10.0], [2.0, 2.0, 2.0, 5.0]])
    out = paste_masks_in_image(masks, boxes, (10, 10))
    assert out.shape == (3, 10, 10)
    assert not bool(out[:2].any())  # boxes outside the image paste nothing


def test_non_contiguous_and_float64_inputs():
    masks, boxes = random_case(seed=4)
    expected = paste_masks_in_image(masks, boxes, (17, 23))
    strided = torch.stack([masks, masks], dim=-1)[..., 0]
    assert not strided.is_contiguous()
    assert torch.equal(paste_masks_in_image(strided, boxes, (17, 23)), expected)
    out64 = paste_masks_in_image(masks.double(), boxes.double(), (17, 23))
    assert (out64 != expected).float().mean() < 0.01


def test_validation():
    with pytest.raises(ValueError, match="masks"):
        paste_masks_in_image(torch.zeros(2, 1, 28, 28), torch.zeros(2, 4), (5, 5))
    with pytest.raises(ValueError, match="same length"):
        paste_masks_in_image(torch.zeros(2, 28, 28), torch.zeros(3, 4), (5, 5))
    with pytest.raises(ValueError, match="boxes"):
        paste_masks_in_image(torch.zeros(2, 28, 28), torch.zeros(2, 5), (5, 5))
    with pytest.raises(ValueError, match="image_shape"):
        paste_masks_in_image(torch.zeros(2, 28, 28), torch.zeros(2, 4), 5)
    with pytest.raises(ValueError, match="same device"):
        paste_masks_in_image(torch.zeros(2, 28, 28), torch.zeros(2, 4, device="meta"), (5, 5))


def test_non_cpu_devices_paste_in_memory_bounded_chunks(monkeypatch):
    masks, boxes = random_case(n=5)
    out = paste_masks_in_image(masks.to("meta"), boxes.to("meta"), (17, 23))
    assert out.shape == (5, 17, 23) and out.device.type == "meta"
    monkeypatch.setattr(mask_paste, "GPU_MEM_LIMIT", 10)
    with pytest.raises(RuntimeError, match="GPU_MEM_LIMIT"):
        paste_masks_in_image(masks.to("meta"), boxes.to("meta"), (17, 23))


def test_roi_masks_to_bitmasks():
    masks, boxes = random_case(seed=5)
    roi = ROIMasks(masks)
    assert len(roi) == 4 and len(roi[1]) == 1 and len(roi[1:3]) == 2
    bits = roi.to_bitmasks(Boxes(boxes), 17, 23)
    assert isinstance(bits, BitMasks)
    assert torch.equal(bits.tensor, paste_masks_in_image(masks, boxes, (17, 23)))
    assert torch.equal(BitMasks.from_roi_masks(roi, boxes, 17, 23).tensor, bits.tensor)
    assert roi.to("meta").device.type == "meta"
    assert repr(roi) == "ROIMasks(num_instances=4)"
    with pytest.raises(ValueError, match="ROIMasks"):
        ROIMasks(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="boxes"):
        roi.to_bitmasks(boxes[:2], 17, 23)
    with pytest.raises(TypeError, match="roi_masks"):
        BitMasks.from_roi_masks(masks, boxes, 17, 23)


class _PasteModule(torch.nn.Module):
    def forward(self, masks: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return paste_masks_in_image(masks, boxes, (17, 23))


def test_torch_export_pastes_over_the_whole_image():
    masks, boxes = random_case(seed=6)
    ep = torch.export.export(_PasteModule(), (masks, boxes))
    other_masks, other_boxes = random_case(seed=7)
    expected = _paste(other_masks, other_boxes, 17, 23, 0.5, skip_empty=False, num_chunks=1)
    assert torch.equal(ep.module()(other_masks, other_boxes), expected)


def test_bool_masks_are_pasted_as_float():
    masks, boxes = random_case(seed=8)
    binary = masks > 0.5
    expected = paste_masks_in_image(binary.float(), boxes, (17, 23))
    assert torch.equal(paste_masks_in_image(binary, boxes, (17, 23)), expected)
