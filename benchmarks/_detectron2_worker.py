"""detectron2's side of ``side_by_side.py``: run with the python of detectron2's venv
(``../shared/detectron2/install-reference.sh``). It builds the case's model (``_cases.py``) with
detectron2 from the same detectron2 YAML as dt's worker (for FCOS, detectron2's model-zoo LazyConfig,
instantiated; dt's worker builds its own config of the same model) and loads the same weights: the golden
``model_final.pkl``, or the random weights dt's worker wrote (``weights.pth``, dt's state dict under
detectron2's names, loaded strictly: every key and shape must match). Inputs come from the
coordinator's ``inputs.pt``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _cases import Case, get_case, make_run, model_inputs, outputs_summary
from _worker import serve


def build_detectron2(case: Case) -> torch.nn.Module:
    """detectron2's model of the case on the CPU, in eval mode, with detectron2's initialisation."""
    from detectron2 import model_zoo
    from detectron2.config import get_cfg, instantiate
    from detectron2.modeling import build_model

    torch.manual_seed(0)
    if case.family.lazy:
        return instantiate(model_zoo.get_config(case.family.zoo_config).model).eval()
    cfg = get_cfg()
    cfg.merge_from_file(str(case.config))
    cfg.MODEL.DEVICE = "cpu"
    return build_model(cfg).eval()


def setup(name: str, folder: str):
    import detectron2.structures
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.utils.events import EventStorage

    case, folder = get_case(name), Path(folder)
    model = build_detectron2(case)
    if case.weights is not None:
        DetectionCheckpointer(model).load(str(case.weights))
    else:
        model.load_state_dict(torch.load(folder / "weights.pth", weights_only=True)["model"], strict=True)
    raw = torch.load(folder / "inputs.pt", weights_only=True)
    outputs: dict = {}
    run = make_run(case, model, model_inputs(case, raw, detectron2.structures), outputs)
    if case.training:
        EventStorage(0).__enter__()  # detectron2's heads log into the current storage
    return run, lambda: outputs_summary(case, outputs, folder / "detectron2_outputs.pt")


if __name__ == "__main__":
    serve(setup)
