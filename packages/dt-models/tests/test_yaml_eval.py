"""detectron2 YAML ``!!python/object/apply:eval`` values: a restricted evaluator; errors name file and key."""

import pytest

from dt_config import ConfigError
from dt_models import build_model, detectron2_model_config
from dt_models.compat.yaml_eval import ExpressionError, load_yaml_with_eval, restricted_eval
from dt_models.meta_arch import RetinaNet, RetinaNetConfig
from dt_models.meta_arch.retinanet import RETINANET_ANCHOR_SIZES

ANCHOR_EXPRESSION = "[[x, x * 2**(1.0/3), x * 2**(2.0/3) ] for x in [32, 64, 128, 256, 512 ]]"

# the keys of detectron2's Base-RetinaNet.yaml that matter here, written for this test
BASE_RETINANET = f"""
MODEL:
  META_ARCHITECTURE: "RetinaNet"
  BACKBONE:
    NAME: "build_retinanet_resnet_fpn_backbone"
  RESNETS:
    OUT_FEATURES: ["res3", "res4", "res5"]
  ANCHOR_GENERATOR:
    SIZES: !!python/object/apply:eval ["{ANCHOR_EXPRESSION}"]
  FPN:
    IN_FEATURES: ["res3", "res4", "res5"]
  RETINANET:
    IOU_THRESHOLDS: [0.4, 0.5]
    IOU_LABELS: [0, -1, 1]
    SMOOTH_L1_LOSS_BETA: 0.0
"""


def test_anchor_expression_gives_pythons_numbers():
    value = restricted_eval(ANCHOR_EXPRESSION)
    assert value == eval(ANCHOR_EXPRESSION)
    assert [tuple(v) for v in value] == list(RETINANET_ANCHOR_SIZES)


@pytest.mark.parametrize(
    "expression, why",
    [
        ("__import__('os').system('true')", "function calls are not allowed"),
        ("open", "unknown name 'open'"),
        ("(1).real", "attribute access are not allowed"),
        ("'a' * 3", "only numbers are allowed as constants"),
        ("[1, 2][0]", "subscripts are not allowed"),
        ("[x for x in [1, 2] if x > 1]", "comprehension conditions are not allowed"),
        ("[x for x in 3]", "must iterate over a list"),
        ("[1] * 3", "arithmetic is allowed on numbers only"),
        ("10 ** 10 ** 10", "exponent 10000000000 is larger than 1024"),
        ("1 / 0", "division by zero"),
        ("[[0] for x in [1] * 1]", "arithmetic is allowed on numbers only"),
        ("lambda: 1", "Lambda expressions are not allowed"),
        ("[1, 2", "not a Python expression"),
        ("True", "only numbers are allowed as constants"),
    ],
)
def test_everything_else_is_rejected_with_a_reason(expression, why):
    with pytest.raises(ExpressionError, match=why.replace("(", r"\(").replace(")", r"\)")):
        restricted_eval(expression)


def test_size_limits():
    with pytest.raises(ExpressionError, match="more than 100000 list elements"):
        twenty = str(list(range(20)))
        restricted_eval(f"[[[[a for a in {twenty}] for b in {twenty}] for c in {twenty}] for d in {twenty}]")
    with pytest.raises(ExpressionError, match="longer than 10000 characters"):
        restricted_eval(str(list(range(3000))))
    assert restricted_eval("[-x // 2 + x % 3 for x in [4, 5]]") == [-2 + 1, -3 + 2]


def test_yaml_error_names_file_key_and_reason(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "MODEL:\n  ANCHOR_GENERATOR:\n    SIZES: !!python/object/apply:eval [\"__import__('os')\"]\n"
    )
    with pytest.raises(ConfigError) as info:
        load_yaml_with_eval(path)
    text = str(info.value)
    assert str(path) in text
    assert "MODEL.ANCHOR_GENERATOR.SIZES (line 3): !!python/object/apply:eval" in text
    assert "function calls are not allowed" in text
    path.write_text("A: !!python/object/apply:eval [1, 2]\n")
    with pytest.raises(ConfigError, match=r"A \(line 1\): .* needs exactly one string argument"):
        load_yaml_with_eval(path)


def test_other_python_tags_stay_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text('A: !!python/object/apply:os.system ["true"]\n')
    with pytest.raises(Exception, match="could not determine a constructor"):
        load_yaml_with_eval(path)


def test_zoo_retinanet_config_with_base_translates_and_builds(tmp_path):
    (tmp_path / "Base-RetinaNet.yaml").write_text(BASE_RETINANET)
    (tmp_path / "COCO-Detection").mkdir()
    child = tmp_path / "COCO-Detection" / "retinanet_R_50_FPN_1x.yaml"
    child.write_text(
        '_BASE_: "../Base-RetinaNet.yaml"\nMODEL:\n  WEIGHTS: "x.pkl"\n  RESNETS:\n    DEPTH: 50\n'
    )
    cfg = detectron2_model_config(child)
    assert cfg == RetinaNetConfig()  # dt's defaults are Base-RetinaNet's
    model = build_model(cfg)
    assert isinstance(model, RetinaNet) and model.anchor_generator.num_cell_anchors == [9] * 5
    assert list(model.backbone.output_shape()) == ["p3", "p4", "p5", "p6", "p7"]


def test_unsupported_retinanet_keys_are_listed(tmp_path):
    (tmp_path / "Base-RetinaNet.yaml").write_text(BASE_RETINANET)
    child = tmp_path / "child.yaml"
    child.write_text('_BASE_: "Base-RetinaNet.yaml"\nMODEL:\n  RETINANET:\n    NUM_CONV: 2\n    NORM: "BN"\n')
    with pytest.raises(ConfigError) as info:
        detectron2_model_config(child)
    text = str(info.value)
    assert "MODEL.RETINANET.NUM_CONV = 2 is not supported by dt (unknown or unused key)" in text
    child.write_text('_BASE_: "Base-RetinaNet.yaml"\nMODEL:\n  RETINANET:\n    NORM: "BN"\n')
    assert detectron2_model_config(child).head.norm == "BN"  # one BN per level (CycleBatchNormList)
    child.write_text('_BASE_: "Base-RetinaNet.yaml"\nMODEL:\n  RETINANET:\n    NORM: "LayerNorm"\n')
    with pytest.raises(ConfigError, match=r"\$\.head\.norm: must be one of"):
        detectron2_model_config(child)
