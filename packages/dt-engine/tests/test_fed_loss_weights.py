"""The trainer gives a federated-loss box predictor the class weights of its training data, as
detectron2 does (``image_count ** fed_loss_freq_weight_power``, LVIS' ``class_image_count``)."""

from pathlib import Path

import pytest
import torch

import dt_models
from dt_data import MetadataCatalog
from dt_engine.config.experiment import load_experiment
from dt_engine.config.model_facts import model_facts
from dt_engine.defaults import set_fed_loss_weights
from dt_engine.errors import InputError

CONFIG = Path(__file__).with_name("engine_tiny_rcnn.yaml")
FED_LOSS = [
    "model.roi_heads.box_predictor.use_sigmoid_ce=true",
    "model.roi_heads.box_predictor.use_fed_loss=true",
    "model.roi_heads.box_predictor.fed_loss_freq_weight_power=0.5",
]


def _predictor_weights(model) -> torch.Tensor:
    return model.roi_heads.box_predictor.fed_loss_cls_weights


def test_weights_are_the_image_counts_to_the_power():
    cfg = load_experiment(CONFIG, FED_LOSS)
    counts = [{"id": i + 1, "image_count": c} for i, c in enumerate((4, 9, 16, 1, 25))]
    MetadataCatalog.get("fed_counts_train").set(class_image_count=counts)
    try:
        model = dt_models.build_model(cfg.model)
        set_fed_loss_weights(model, ["fed_counts_train"], model_facts(cfg.model))
        torch.testing.assert_close(_predictor_weights(model), torch.tensor([2.0, 3.0, 4.0, 1.0, 5.0]))
    finally:
        MetadataCatalog.remove("fed_counts_train")


def test_missing_counts_are_one_line_and_plain_models_are_untouched():
    cfg = load_experiment(CONFIG, FED_LOSS)
    model = dt_models.build_model(cfg.model)
    with pytest.raises(InputError, match="class_image_count"):
        set_fed_loss_weights(model, ["fed_no_counts_train"], model_facts(cfg.model))
    plain = load_experiment(CONFIG)
    assert model_facts(plain.model).fed_loss_freq_weight_power is None
    set_fed_loss_weights(
        dt_models.build_model(plain.model), ["fed_no_counts_train"], model_facts(plain.model)
    )
