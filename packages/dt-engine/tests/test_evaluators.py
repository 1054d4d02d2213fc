"""``dt eval`` picks the evaluators from each test dataset's ``evaluator_type`` (tiny datasets of every
built-in type, tiny models with random weights: the checks are which evaluators ran and their metrics)."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from engine_eval_datasets import register_eval_datasets
from engine_tiny_segmentor import TinySegmentorConfig  # noqa: F401 (registers EngineTinySegmentor)

from dt_data import DatasetCatalog, MetadataCatalog
from dt_engine.cli import main
from dt_engine.config.experiment import load_experiment
from dt_engine.evaluation import EVALUATOR_REGISTRY
from dt_models import build_model

HERE = Path(__file__).parent
RCNN = str(HERE / "engine_tiny_rcnn.yaml")
SEGMENTOR = str(HERE / "engine_tiny_segmentor.yaml")
CITYSCAPES_19 = ["model.num_classes=19", "model.num_things=0", "model.panoptic=false"]

CASES = {
    "coco": (RCNN, [], ["COCOEvaluator"], ["bbox/AP", "segm/AP"], "coco_instances_results.json"),
    "lvis": (RCNN, [], ["LVISEvaluator"], ["bbox/AP", "bbox/APr", "segm/AP"], "lvis_instances_results.json"),
    "pascal_voc": (RCNN, [], ["PascalVOCDetectionEvaluator"], ["bbox/AP", "bbox/AP50", "bbox/AP75"], None),
    "cityscapes_instance": (RCNN, [], ["CityscapesInstanceEvaluator"], ["segm/AP", "segm/AP50"], None),
    "sem_seg": (
        SEGMENTOR,
        [],
        ["SemSegEvaluator"],
        ["sem_seg/mIoU", "sem_seg/fwIoU"],
        "sem_seg_predictions.json",
    ),
    "coco_panoptic_seg": (
        SEGMENTOR,
        [],
        ["SemSegEvaluator", "COCOEvaluator", "COCOPanopticEvaluator"],
        ["sem_seg/mIoU", "bbox/AP", "segm/AP", "panoptic_seg/PQ", "panoptic_seg/PQ_st"],
        "predictions.json",
    ),
    "cityscapes_sem_seg": (
        SEGMENTOR,
        CITYSCAPES_19,
        ["CityscapesSemSegEvaluator"],
        ["sem_seg/IoU", "sem_seg/iIoU"],
        None,
    ),
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The datasets and one random-weights checkpoint per model config."""
    root = tmp_path_factory.mktemp("evalsets")
    names = register_eval_datasets(root)
    weights = {}
    for key, (config, overrides) in {
        "rcnn": (RCNN, []),
        "seg": (SEGMENTOR, []),
        "seg19": (SEGMENTOR, CITYSCAPES_19),
    }.items():
        torch.manual_seed(0)
        model = build_model(load_experiment(config, overrides).model)
        weights[key] = root / f"{key}.pth"
        torch.save({"model": model.state_dict()}, weights[key])
    return root, names, weights


def _weights_key(config, overrides):
    return "rcnn" if config == RCNN else "seg19" if overrides else "seg"


def _flat(results, prefix=""):
    out = set()
    for key, value in results.items():
        name = f"{prefix}{key}"
        out |= _flat(value, name + "/") if isinstance(value, dict) else {name}
    return out


def test_every_builtin_evaluator_type_is_registered():
    assert set(CASES) <= set(EVALUATOR_REGISTRY.names())


@pytest.mark.parametrize("evaluator_type", list(CASES))
def test_dt_eval_uses_the_datasets_evaluator_type(setup, evaluator_type, tmp_path, capsys, caplog):
    _, names, weights = setup
    config, overrides, evaluators, metrics, written = CASES[evaluator_type]
    dataset = names[evaluator_type]
    assert MetadataCatalog.get(dataset).evaluator_type == evaluator_type
    argv = [
        "eval",
        "--config",
        config,
        "--weights",
        str(weights[_weights_key(config, overrides)]),
        *overrides,
    ]
    capsys.readouterr()
    with caplog.at_level(logging.INFO, logger="dt_engine.evaluation"):
        assert main([*argv, f"data.datasets.test=[{dataset}]", f"output_dir={tmp_path}"]) == 0
    assert f"evaluators of {dataset}: {', '.join(evaluators)}" in caplog.text
    results = json.loads(capsys.readouterr().out)
    assert set(metrics) <= _flat(results)
    if written is not None:  # the evaluator's files go to <output_dir>/inference/<dataset>
        assert (tmp_path / "inference" / dataset / written).is_file()


def test_two_test_datasets_are_reported_by_name(setup, tmp_path, capsys):
    _, names, weights = setup
    tests = f"data.datasets.test=[{names['sem_seg']}, {names['coco_panoptic_seg']}]"
    argv = ["eval", "--config", SEGMENTOR, "--weights", str(weights["seg"]), tests, f"output_dir={tmp_path}"]
    capsys.readouterr()
    assert main(argv) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results) == {names["sem_seg"], names["coco_panoptic_seg"]}
    assert (
        "panoptic_seg" in results[names["coco_panoptic_seg"]]
        and "panoptic_seg" not in results[names["sem_seg"]]
    )


def test_dt_eval_in_a_subprocess_with_datasets_from_a_python_config(setup, tmp_path):
    root, names, weights = setup
    config = tmp_path / "eval_config.py"
    config.write_text(
        "from pathlib import Path\n"
        "import engine_tiny_segmentor  # registers the EngineTinySegmentor meta-architecture\n"
        "from engine_eval_datasets import register_eval_datasets\n"
        "from dt_engine.config.experiment import load_experiment\n"
        f"register_eval_datasets({str(root)!r})\n"
        f"config = load_experiment({SEGMENTOR!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    cmd = [
        sys.executable,
        "-m",
        "dt_engine.cli",
        "eval",
        "--config",
        str(config),
        "--weights",
        str(weights["seg"]),
    ]
    cmd += [f"data.datasets.test=[{names['sem_seg']}]", f"output_dir={tmp_path / 'out'}"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"evaluators of {names['sem_seg']}: SemSegEvaluator" in run.stderr
    assert "mIoU" in json.loads(run.stdout)["sem_seg"]


@pytest.fixture
def one_image_dataset(request):
    """``engine_typed_<request.param>``: one shapes image, ``request.param`` as evaluator_type (or none)."""
    name = f"engine_typed_{request.param}"
    DatasetCatalog.register(name, lambda: DatasetCatalog.get("shapes_val")[:1])
    if request.param is not None:
        MetadataCatalog.get(name).set(evaluator_type=request.param)
    yield name
    DatasetCatalog.remove(name)
    if name in MetadataCatalog:
        MetadataCatalog.remove(name)


@pytest.mark.parametrize(
    ("one_image_dataset", "message"),
    [
        (None, "dataset 'engine_typed_None' has no evaluator_type in its metadata"),
        ("cocoo", "dataset 'engine_typed_cocoo' has evaluator_type 'cocoo' (did you mean 'coco'?)"),
    ],
    indirect=["one_image_dataset"],
)
def test_missing_or_unknown_evaluator_type_is_one_line_before_any_output(
    one_image_dataset, setup, message, tmp_path, capsys
):
    _, _, weights = setup
    out = tmp_path / "out"
    assert (
        main(["train", "--config", RCNN, f"data.datasets.test=[{one_image_dataset}]", f"output_dir={out}"])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    known = err[0].split("known types: ", 1)[1].split(", ")  # installed projects may add types
    assert set(CASES) <= set(known) and known == sorted(known)
    assert not out.exists()
    argv = [
        "eval",
        "--config",
        RCNN,
        "--weights",
        str(weights["rcnn"]),
        f"data.datasets.test=[{one_image_dataset}]",
    ]
    assert main([*argv, f"output_dir={out}"]) == 2
    assert message in capsys.readouterr().err


def test_a_project_registers_an_evaluator_type(setup, tmp_path, capsys):
    from dt_eval import DatasetEvaluator

    class CountImages(DatasetEvaluator):
        def reset(self):
            self.count = 0

        def process(self, inputs, outputs):
            self.count += len(inputs)

        def evaluate(self):
            return {"images": {"count": self.count}}

    if "engine_counting" not in EVALUATOR_REGISTRY:
        EVALUATOR_REGISTRY.register("engine_counting")(lambda name, cfg, output_dir: [CountImages()])
    with pytest.raises(ValueError, match="already registered"):
        EVALUATOR_REGISTRY.register("engine_counting")(lambda name, cfg, output_dir: [])
    DatasetCatalog.register("engine_counted", lambda: DatasetCatalog.get("shapes_val")[:3])
    MetadataCatalog.get("engine_counted").set(evaluator_type="engine_counting")
    try:
        _, _, weights = setup
        argv = [
            "eval",
            "--config",
            RCNN,
            "--weights",
            str(weights["rcnn"]),
            "data.datasets.test=[engine_counted]",
        ]
        capsys.readouterr()
        assert main([*argv, f"output_dir={tmp_path}"]) == 0
        assert json.loads(capsys.readouterr().out) == {"images": {"count": 3}}
    finally:
        DatasetCatalog.remove("engine_counted")
        MetadataCatalog.remove("engine_counted")
