import pytest
import torch
from dtm_helpers import square_instances, tiny_rcnn_config

from dt_models import build_model
from dt_models.config import ProposalNetworkConfig
from dt_models.meta_arch import detector_postprocess
from dt_structures import Boxes, Instances


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(tiny_rcnn_config())


def _inputs(with_gt=True, sizes=((96, 128), (80, 64))):
    g = torch.Generator().manual_seed(1)
    batch = []
    for h, w in sizes:
        item = {"image": (torch.rand(3, h, w, generator=g) * 255).to(torch.uint8)}
        if with_gt:
            item["instances"] = square_instances((h, w), [[4, 6, 40, 50], [20, 10, 60, 30]], [0, 2])
        batch.append(item)
    return batch


def test_training_returns_finite_losses_and_gradients(model):
    model.train()
    losses = model(_inputs())
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum(losses.values()).backward()
    grads = [p.grad for p in model.roi_heads.branches.mask.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.backbone.bottom_up.stem.conv1.weight.grad is None  # frozen (freeze_at=2)
    model.zero_grad()


def test_training_with_an_image_without_ground_truth(model):
    model.train()
    batch = _inputs()
    empty = Instances(batch[1]["instances"].image_size)
    empty.gt_boxes = Boxes(torch.zeros(0, 4))
    empty.gt_classes = torch.zeros(0, dtype=torch.int64)
    empty.gt_masks = batch[1]["instances"].gt_masks[[]]
    batch[1]["instances"] = empty
    losses = model(batch)
    assert all(torch.isfinite(v) for v in losses.values())


def test_training_needs_instances(model):
    model.train()
    with pytest.raises(ValueError, match="instances"):
        model(_inputs(with_gt=False))


def test_inference_outputs_are_rescaled_to_requested_size(model):
    model.eval()
    batch = _inputs(with_gt=False)
    batch[0]["height"], batch[0]["width"] = 192, 256
    with torch.no_grad():
        out = model(batch)
    inst = out[0]["instances"]
    assert inst.image_size == (192, 256)
    assert len(inst) > 0 and len(inst) <= 100
    assert inst.pred_masks.shape == (len(inst), 192, 256) and inst.pred_masks.dtype == torch.bool
    assert (inst.pred_boxes.tensor[:, 2] <= 256).all() and (inst.pred_boxes.tensor[:, 3] <= 192).all()
    assert (inst.scores[:-1] >= inst.scores[1:]).all()
    assert out[1]["instances"].image_size == (80, 64)


def test_inference_is_batch_independent(model):
    # same-size images: no extra padding, so each image's result must not depend on the other
    model.eval()
    batch = _inputs(with_gt=False, sizes=((64, 96), (64, 96)))
    with torch.no_grad():
        both = model(batch)
        alone = model(batch[1:])
    a, b = both[1]["instances"], alone[0]["instances"]
    assert len(a) == len(b)
    torch.testing.assert_close(a.pred_boxes.tensor, b.pred_boxes.tensor, atol=1e-3, rtol=1e-4)


def test_inference_with_given_boxes_runs_only_the_mask_branch(model):
    model.eval()
    given = Instances((96, 128))
    given.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 50.0, 50.0]]))
    given.pred_classes = torch.tensor([1])
    with torch.no_grad():
        out = model.inference(_inputs(with_gt=False)[:1], detected_instances=[given])
    assert out[0]["instances"].pred_masks.shape == (1, 96, 128)


def test_input_validation(model):
    model.eval()
    with pytest.raises(ValueError, match="channels"):
        model([{"image": torch.zeros(1, 32, 32)}])
    with pytest.raises(ValueError, match="Tensor"):
        model([{"image": torch.zeros(32, 32)}])


def test_faster_rcnn_without_mask_head():
    model = build_model(tiny_rcnn_config(mask=False)).eval()
    assert len(model.roi_heads.branches) == 0
    with torch.no_grad():
        inst = model(_inputs(with_gt=False)[:1])[0]["instances"]
    assert not inst.has("pred_masks")


def test_proposal_network():
    cfg = tiny_rcnn_config()
    model = build_model(
        ProposalNetworkConfig(backbone=cfg.backbone, proposal_generator=cfg.proposal_generator)
    )
    model.train()
    assert set(model(_inputs())) == {"loss_rpn_cls", "loss_rpn_loc"}
    model.eval()
    with torch.no_grad():
        out = model(_inputs(with_gt=False))
    assert len(out[0]["proposals"]) <= 50
    assert out[0]["proposals"].has("objectness_logits")


def test_detector_postprocess_drops_empty_boxes_and_keeps_input():
    inst = Instances((10, 20))
    inst.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 5.0, 5.0], [25.0, 0.0, 30.0, 5.0]]))
    inst.scores = torch.tensor([0.9, 0.8])
    out = detector_postprocess(inst, 20, 40)
    assert len(out) == 1 and out.image_size == (20, 40)
    torch.testing.assert_close(out.pred_boxes.tensor, torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    assert len(inst) == 2 and inst.pred_boxes.tensor[1, 0] == 25.0


def test_fast_rcnn_inference_edge_cases():
    from dt_models.roi_heads import fast_rcnn_inference

    boxes = [torch.zeros(0, 8), torch.tensor([[0.0, 0.0, 5.0, 5.0, 1.0, 1.0, 20.0, 6.0], [float("nan")] * 8])]
    scores = [torch.zeros(0, 3), torch.tensor([[0.3, 0.6, 0.1], [0.5, 0.4, 0.1]])]
    results, kept = fast_rcnn_inference(boxes, scores, [(10, 10), (10, 10)], 0.05, 0.5, 100)
    assert len(results[0]) == 0 and kept[0].numel() == 0
    # the NaN row is dropped; class 1's box is clipped to the image; sorted by score
    assert results[1].pred_classes.tolist() == [1, 0] and kept[1].tolist() == [0, 0]
    torch.testing.assert_close(results[1].pred_boxes.tensor[0], torch.tensor([1.0, 1.0, 10.0, 6.0]))
    agnostic, _ = fast_rcnn_inference([boxes[1][:1, :4]], [scores[1][:1]], [(10, 10)], 0.05, 0.5, 1)
    assert len(agnostic[0]) == 1 and agnostic[0].pred_classes.tolist() == [1]
