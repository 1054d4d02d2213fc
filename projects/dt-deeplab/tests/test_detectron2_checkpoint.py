"""detectron2 DeepLab checkpoints load into dt's model: same state-dict names and shapes."""

import json
import pickle
from pathlib import Path

import pytest
import torch

from dt_models import build_model
from dt_models.checkpoint import load_weights

KEYS = json.loads(
    (Path(__file__).parent / "data" / "detectron2_keys" / "deeplab_R_103_os16.json").read_text()
)

R103 = {
    "name": "DeepLabResNet",
    "depth": 101,
    "stem_out_channels": 128,
    "stride_in_1x1": False,
    "norm": "BN",
    "res5_dilation": 2,
    "res5_multi_grid": [1, 2, 4],
}
HEADS = {
    "DeepLabV3Head": ({"out_features": ["res5"]}, {"in_features": ["res5"], "common_stride": 16}),
    "DeepLabV3PlusHead": (
        {"out_features": ["res2", "res5"]},
        {"in_features": ["res2", "res5"], "project_channels": [48], "convs_dim": 256, "common_stride": 4},
    ),
}


def _config(head: str) -> dict:
    backbone, head_fields = HEADS[head]
    return {
        "name": "DeepLabSegmentor",
        "backbone": R103 | backbone,
        "sem_seg_head": {
            "name": head,
            "num_classes": 19,
            "aspp_channels": 256,
            "norm": "BN",
            "train_size": [512, 1024],
            **head_fields,
        },
    }


@pytest.mark.parametrize("head", sorted(HEADS))
def test_state_dict_names_and_shapes_are_detectron2s(head):
    with torch.device("meta"):
        model = build_model(_config(head), device="meta")
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(KEYS[head]) - set(ours)) == []  # nothing detectron2 has is missing
    assert sorted(set(ours) - set(KEYS[head])) == []  # nothing extra
    assert ours == KEYS[head]


def test_a_detectron2_pkl_loads_with_nothing_missing_or_unexpected(tmp_path):
    head = "DeepLabV3PlusHead"
    model = build_model(_config(head))
    # num_batches_tracked as a Python int: dt-models' reader turns 0-d numpy arrays into shape (1,)
    source = {k: torch.randn(shape).numpy() if shape else 3 for k, shape in KEYS[head].items()}
    path = tmp_path / "model_final.pkl"
    path.write_bytes(pickle.dumps({"model": source, "__author__": "detectron2 test"}))
    report = load_weights(model, path)
    assert report.ok, report.table()
    key = "sem_seg_head.decoder.res5.project_conv.convs.1.weight"
    torch.testing.assert_close(model.state_dict()[key], torch.from_numpy(source[key]))
