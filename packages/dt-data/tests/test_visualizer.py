import cv2
import numpy as np
import pytest
import torch

from dt_data import Metadata
from dt_data.visualizer import ColorMode, Visualizer
from dt_structures import BitMasks, Boxes, Instances, Keypoints


def _meta(**kw):
    return Metadata(
        name="unit_vis", thing_classes=["circle", "square"], stuff_classes=["sky", "ground"], **kw
    )


def _black(h=80, w=100):
    return np.zeros((h, w, 3), np.uint8)


def _changed(out, region):
    y0, y1, x0, x1 = region
    return (out[y0:y1, x0:x1].sum(axis=2) > 0).mean()


def test_predictions_boxes_labels_masks():
    inst = Instances((80, 100))
    inst.pred_boxes = Boxes(torch.tensor([[10.0, 30.0, 40.0, 70.0], [60.0, 20.0, 90.0, 50.0]]))
    inst.scores = torch.tensor([0.9, 0.75])
    inst.pred_classes = torch.tensor([0, 1])
    masks = torch.zeros(2, 80, 100, dtype=torch.bool)
    masks[0, 35:65, 15:35] = True
    masks[1, 25:45, 65:85] = True
    inst.pred_masks = masks
    out = Visualizer(_black(), _meta()).draw_instance_predictions(inst).get_image()
    assert out.shape == (80, 100, 3) and out.any()
    assert _changed(out, (40, 60, 20, 30)) == 1.0  # mask interiors are filled
    assert _changed(out, (28, 43, 67, 83)) == 1.0
    assert _changed(out, (0, 10, 0, 100)) == 0.0 or _changed(out, (0, 10, 0, 100)) < 0.5
    # box outlines: left edge of box 0
    assert _changed(out, (32, 68, 9, 12)) > 0.9
    # label text drawn above box 0 (y < 30)
    assert _changed(out, (15, 30, 10, 60)) > 0.2
    with_text = (
        Visualizer(_black(), _meta()).overlay_instances(boxes=inst.pred_boxes, labels=["a", "b"]).get_image()
    )
    no_text = Visualizer(_black(), _meta()).overlay_instances(boxes=inst.pred_boxes).get_image()
    assert (with_text != no_text).any()


def test_keypoints_with_skeleton():
    meta = _meta(keypoint_names=["a", "b", "c"], keypoint_connection_rules=[("a", "b", (0, 255, 0))])
    inst = Instances((80, 100))
    inst.pred_keypoints = Keypoints(torch.tensor([[[10.0, 10.0, 1.0], [80.0, 10.0, 1.0], [50.0, 70.0, 0.0]]]))
    out = Visualizer(_black(), meta).draw_instance_predictions(inst).get_image()
    assert out[10, 45, 1] > 200 and out[10, 45, 0] == 0  # green skeleton edge between a and b
    assert out[10, 10, 0] > 200  # keypoint dot
    assert not out[65:75, 45:55].any()  # invisible keypoint not drawn


def test_semantic_and_panoptic():
    sem = np.zeros((80, 100), np.int64)
    sem[40:] = 1
    sem[:5, :5] = 255
    out = Visualizer(_black(), _meta()).draw_sem_seg(torch.from_numpy(sem)).get_image()
    assert out[20, 50].any() and out[60, 50].any() and not out[1, 1].any()
    assert (out[20, 80] != out[60, 80]).any()  # two classes, two colours
    pan = np.zeros((80, 100), np.int64)
    pan[:, 50:] = 2
    pan[20:40, 10:30] = 3
    segments = [
        {"id": 0, "category_id": 0, "isthing": False},
        {"id": 2, "category_id": 1, "isthing": False},
        {"id": 3, "category_id": 1, "isthing": True, "score": 0.5},
    ]
    out = Visualizer(_black(), _meta()).draw_panoptic_seg(pan, segments).get_image()
    assert out[30, 20].any() and out[70, 75].any() and (out[30, 20] != out[70, 20]).any()
    out2 = Visualizer(_black(), _meta()).draw_panoptic_seg(pan * 0 + 1003, None).get_image()
    assert out2.any()


def test_dataset_dict_and_save(tiny_shapes, tmp_path):
    d = tiny_shapes[0]
    img = cv2.imread(d["file_name"])[:, :, ::-1]
    meta = _meta()
    meta.set(stuff_colors=[(255, 0, 0)] * 7)
    vis = Visualizer(img, None, scale=2.0).draw_dataset_dict({k: d[k] for k in ("file_name", "annotations")})
    out = vis.get_image()
    assert out.shape == (128, 128, 3) and (out != cv2.resize(img, (128, 128))).any()
    path = tmp_path / "vis.png"
    vis.save(path)
    assert cv2.imread(str(path)).shape == (128, 128, 3)
    full = Visualizer(img).draw_dataset_dict(d).get_image()
    assert full.std() > 10


def test_color_modes_and_bad_input():
    img = np.zeros((40, 40, 3), np.uint8)
    img[..., 0] = 200  # red image
    masks = BitMasks(torch.zeros(1, 40, 40, dtype=torch.bool))
    masks.tensor[0, 10:20, 10:20] = True
    inst = Instances((40, 40))
    inst.pred_masks = masks.tensor
    inst.pred_classes = torch.tensor([1])
    bw = Visualizer(img, _meta(thing_colors=[(0, 0, 255), (0, 255, 0)]), instance_mode=ColorMode.IMAGE_BW)
    out = bw.draw_instance_predictions(inst).get_image()
    assert out[30, 30, 0] == out[30, 30, 1] == out[30, 30, 2]  # grayscale outside masks
    assert out[15, 15, 1] > out[15, 15, 2]  # category colour (green) blended inside
    seg = Visualizer(
        img, _meta(thing_colors=[(0, 0, 255), (0, 255, 0)]), instance_mode=ColorMode.SEGMENTATION
    )
    assert seg.draw_instance_predictions(inst).get_image()[15, 15, 1] > 50
    with pytest.raises(ValueError, match="img_rgb"):
        Visualizer(np.zeros((4, 4, 5)))
    with pytest.raises(ValueError, match="different numbers"):
        Visualizer(img).overlay_instances(boxes=np.zeros((2, 4)), labels=["x"])
