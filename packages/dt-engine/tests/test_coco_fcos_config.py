"""The packaged COCO FCOS config (dt's own: detectron2 has it only as the Python config
``COCO-Detection/fcos_R_50_FPN_1x.py``) loads by name and builds detectron2's FCOS R50-FPN."""

import torch

from dt_engine.config.experiment import load_experiment, resolve_config_path
from dt_models import build_model
from dt_models.meta_arch import FCOS

# detectron2's FCOS R50-FPN instantiated from that config holds 319 state-dict tensors (detectron2 0.6)
DETECTRON2_FCOS_TENSORS = 319


def test_fcos_coco_config_is_detectron2s_recipe():
    cfg = load_experiment(resolve_config_path("fcos_R_50_FPN_1x"))
    with torch.device("meta"):
        model = build_model(cfg.model, device="meta")
    assert isinstance(model, FCOS) and model.num_classes == 80
    assert len(model.state_dict()) == DETECTRON2_FCOS_TENSORS
    assert cfg.model.backbone.resnet.freeze_at == 2
    assert cfg.model.weights == "zoo:ImageNetPretrained/MSRA/R-50"
    solver = cfg.solver
    assert (solver.optimizer, solver.base_lr) == ("SGD", 0.01)
    assert (solver.ims_per_batch, solver.max_iter) == (16, 90000)
    assert (solver.steps, solver.warmup_iters, solver.warmup_factor) == ((60000, 80000), 1000, 0.001)
    assert cfg.data.input.min_size_train == (640, 672, 704, 736, 768, 800)
