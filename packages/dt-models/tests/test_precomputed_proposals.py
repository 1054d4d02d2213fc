"""Fast R-CNN on precomputed proposals: ``proposal_generator: {name: PrecomputedProposals}`` builds no
module and the model reads each input's ``proposals``; detectron2's YAML translates to it."""

import textwrap

import pytest
import torch
from dtm_helpers import square_instances, tiny_rcnn_config, with_changes

from dt_config import ConfigError, structure, unstructure
from dt_models import build_model, detectron2_model_config
from dt_models.config import ModelConfig, PrecomputedProposalsConfig
from dt_structures import Boxes, Instances


def _fast_rcnn():
    torch.manual_seed(0)
    config = with_changes(tiny_rcnn_config(mask=False), proposal_generator=PrecomputedProposalsConfig())
    return build_model(config)


def _proposals(image_size, boxes):
    proposals = Instances(image_size)
    proposals.proposal_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    proposals.objectness_logits = torch.zeros(len(boxes))
    return proposals


def test_config_round_trips_and_builds_no_proposal_module():
    data = unstructure(tiny_rcnn_config(mask=False))
    data["proposal_generator"] = {"name": "PrecomputedProposals"}
    config = structure(ModelConfig, data)
    assert isinstance(config.proposal_generator, PrecomputedProposalsConfig)
    assert unstructure(config)["proposal_generator"] == {"name": "PrecomputedProposals", "in_features": []}
    model = build_model(config)
    assert model.proposal_generator is None
    assert not any(name.startswith("proposal_generator") for name in model.state_dict())


def test_trains_on_the_inputs_proposals_without_proposal_losses():
    model = _fast_rcnn().train()
    inputs = [
        {
            "image": torch.rand(3, 64, 64) * 255,
            "instances": square_instances((64, 64), [[8, 8, 40, 40]], [1], masks=False),
            "proposals": _proposals((64, 64), [[6, 6, 42, 42], [30, 30, 60, 60]]),
        }
    ]
    losses = model(inputs)
    assert set(losses) == {"loss_cls", "loss_box_reg"}
    sum(losses.values()).backward()
    assert model.roi_heads.box_predictor.cls_score.weight.grad is not None


def test_detects_only_at_the_inputs_proposals():
    model = _fast_rcnn().eval()
    image = torch.rand(3, 64, 64) * 255
    one = [{"image": image, "proposals": _proposals((64, 64), [[10, 10, 30, 30]])}]
    with torch.no_grad():
        detections = model(one)[0]["instances"]
        other = model([{"image": image, "proposals": _proposals((64, 64), [[40, 5, 60, 50]])}])
    # score threshold 0: one proposal gives at most one detection per class, near that proposal
    assert 0 < len(detections) <= model.roi_heads.num_classes
    assert len(detections.pred_classes.unique()) == len(detections)
    assert not torch.equal(detections.pred_boxes.tensor, other[0]["instances"].pred_boxes.tensor)
    with pytest.raises(ValueError, match="input 0 has no 'proposals'.*proposal_files_train"):
        model([{"image": image}])


def test_detectron2_yaml_needs_load_proposals_with_precomputed_proposals(tmp_path):
    path = tmp_path / "fast_rcnn.yaml"
    text = """\
        MODEL:
          META_ARCHITECTURE: GeneralizedRCNN
          BACKBONE: {NAME: build_resnet_fpn_backbone}
          RESNETS: {OUT_FEATURES: [res2, res3, res4, res5]}
          FPN: {IN_FEATURES: [res2, res3, res4, res5]}
          ROI_HEADS: {NAME: StandardROIHeads, IN_FEATURES: [p2, p3, p4, p5]}
          ROI_BOX_HEAD: {NAME: FastRCNNConvFCHead, NUM_FC: 2, POOLER_RESOLUTION: 7}
          RPN: {IN_FEATURES: [p2, p3, p4, p5, p6], POST_NMS_TOPK_TEST: 1000}
          PROPOSAL_GENERATOR: {NAME: PrecomputedProposals}
          LOAD_PROPOSALS: {load}
        """
    path.write_text(textwrap.dedent(text).replace("{load}", "true"))
    config = detectron2_model_config(path)  # the RPN section is not read, as in detectron2
    assert isinstance(config.proposal_generator, PrecomputedProposalsConfig)
    path.write_text(textwrap.dedent(text).replace("{load}", "false"))
    with pytest.raises(ConfigError, match="MODEL.LOAD_PROPOSALS = False is not supported"):
        detectron2_model_config(path)
