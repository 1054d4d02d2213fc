"""Every bad value is one problem line at the field's own ``$.path``, in every section of the experiment
config, and fields of different sections that must agree are checked when the config loads."""

from pathlib import Path

import pytest

from dt_config import ConfigError
from dt_engine.config.experiment import ExperimentConfig, load_experiment

CONFIG = str(Path(__file__).parent / "engine_tiny_rcnn.yaml")

BAD = [
    # data
    ("data.loader.num_workers=-1", "$.data.loader.num_workers: must be >= 0"),
    ("data.input.max_size_train=0", "$.data.input.max_size_train: must be > 0"),
    ("data.input.min_size_test=-5", "$.data.input.min_size_test: must be >= 0"),
    ("data.input.format=HSV", "$.data.input.format: must be one of ['BGR', 'RGB', 'L', 'YUV-BT.601']"),
    ("data.input.random_flip=diagonal", "$.data.input.random_flip: must be one of"),
    ("data.loader.sampler=RepeatFactorTrainingSampler", "$.data.loader.repeat_threshold: "),
    ("data.datasets.train=['']", "$.data.datasets.train: expected dataset names"),
    # model
    ("model.roi_heads.num_classes=0", "$.model.roi_heads.num_classes: must be >= 1"),
    (
        "model.roi_heads.num_clases=3",
        "$.model.roi_heads.num_clases: unknown key (did you mean 'num_classes'?)",
    ),
    ("model.roi_heads.batch_size_per_image=0", "$.model.roi_heads.batch_size_per_image: must be >= 1"),
    (
        "model.proposal_generator.nms_thresh=2.0",
        "$.model.proposal_generator.nms_thresh: must be in [0.0, 1.0]",
    ),
    ("model.input_format=YUV", "$.model.input_format: must be one of"),
    (
        "model.name=GeneralizedRCN",
        "$.model.name: unknown meta_arch 'GeneralizedRCN' (did you mean 'GeneralizedRCNN'?)",
    ),
    # solver
    ("solver.base_lr=0", "$.solver.base_lr: must be > 0.0"),
    ("solver.base_lr=fast", "$.solver.base_lr: expected float, got str 'fast'"),
    ("solver.momentum=1.0", "$.solver.momentum: must be < 1.0"),
    ("solver.max_iter=0", "$.solver.max_iter: must be > 0"),
    ("solver.steps=[2, 1]", "$.solver.steps: must increase strictly"),
    ("solver.accumulate_steps=4", "$.solver.ims_per_batch: 2 must be divisible by accumulate_steps (4)"),
    ("solver.warmup_factor=2.0", "$.solver.warmup_factor: must be in [0.0, 1.0]"),
    ("solver.ema.decay=1.5", "$.solver.ema.decay: must be < 1.0"),
    (
        "solver.clip_gradients.clip_type=L2",
        "$.solver.clip_gradients.clip_type: expected one of 'value', 'norm'",
    ),
    ("solver.optimizer=Adam", "$.solver.optimizer: expected one of 'SGD', 'AdamW', got str 'Adam'"),
    ("solver.amp.precision=fp16", "$.solver.amp.precision: expected one of 'auto', 'float16', 'bfloat16'"),
    # test
    ("test.eval_period=-1", "$.test.eval_period: must be >= 0"),
    ("test.detections_per_image=0", "$.test.detections_per_image: must be > 0"),
    ("test.precise_bn.num_iter=0", "$.test.precise_bn.num_iter: must be > 0"),
    ("test.best_metric=AP", "$.test.best_metric: expected an evaluation result '<task>/<metric>'"),
    ("test.best_metric=bbox/", "$.test.best_metric: expected an evaluation result '<task>/<metric>'"),
    ("test.best_mode=maximum", "$.test.best_mode: expected one of 'max', 'min', got str 'maximum'"),
    # top level
    (
        "workflow=DefaultTrainr",
        "$.workflow.name: unknown workflow 'DefaultTrainr' (did you mean 'DefaultTrainer'?)",
    ),
    ("sed=3", "$.sed: unknown key (did you mean 'seed'?)"),
    # fields of two sections that must agree
    (
        "data.input.format=RGB",
        "$.data.input.format: must equal model.input_format ('BGR': the model's pixel_mean",
    ),
    (
        "test.detections_per_image=300",
        "$.test.detections_per_image: must equal model.roi_heads.detections_per_image (100)",
    ),
]

AGREE = [
    (
        ["data.datasets.test=[]", "test.eval_period=2"],
        "$.test.eval_period: needs at least one dataset in data.datasets.test",
    ),
    (
        ["data.datasets.test=[]", "test.eval_period=0", "test.val_loss_period=2"],
        "$.test.val_loss_period: needs at least one",
    ),
]


@pytest.mark.parametrize(("override", "line"), BAD, ids=[o for o, _ in BAD])
def test_a_bad_value_is_one_line_at_its_own_path(override, line):
    with pytest.raises(ConfigError) as err:
        load_experiment(CONFIG, [override])
    assert len(err.value.problems) == 1, err.value.problems
    assert err.value.problems[0].startswith(line), err.value.problems[0]


@pytest.mark.parametrize(("overrides", "line"), AGREE)
def test_sections_that_must_agree(overrides, line):
    with pytest.raises(ConfigError) as err:
        load_experiment(CONFIG, overrides)
    assert [p for p in err.value.problems if p.startswith(line)] == err.value.problems


def test_agreeing_sections_load_and_the_defaults_agree():
    assert ExperimentConfig().data.input.format == "BGR"
    cfg = load_experiment(
        CONFIG, ["data.input.format=RGB", "model.input_format=RGB", "model.pixel_mean=[1, 2, 3]"]
    )
    assert cfg.data.input.format == cfg.model.input_format == "RGB"
    cfg = load_experiment(
        CONFIG, ["test.detections_per_image=300", "model.roi_heads.detections_per_image=300"]
    )
    assert cfg.test.detections_per_image == 300
