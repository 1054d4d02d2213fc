"""dt's packaged zoo configs: current experiment configs that build detectron2's models (its state-dict
keys, from data/detectron2_state_dict_keys.json.gz, written by tools/detectron2_state_dict_keys.py with
detectron2 0.6 on torch 2.14.1); the generator's translation of detectron2's non-model keys;
``--config NAME`` through dt-engine's config sources."""

import gzip
import importlib.util
import json
import textwrap
from pathlib import Path

import pytest
import torch

import dt_zoo
from dt_config import ConfigError, structure
from dt_engine.config.experiment import ExperimentConfig, load_experiment
from dt_engine.defaults import build_workflow
from dt_models import build_model
from dt_models.checkpoint import detectron2_name
from dt_zoo.zoo_configs import CONFIG_DIR

TOOL = Path(__file__).resolve().parents[1] / "tools" / "make_configs.py"
_spec = importlib.util.spec_from_file_location("dt_zoo_make_configs", TOOL)
make_configs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_configs)

WITH_CONFIG = [e.name for e in dt_zoo.default_manifest().entries if e.config is not None]
DETECTRON2_KEYS = Path(__file__).resolve().parent / "data" / "detectron2_state_dict_keys.json.gz"


def _detectron2_keys() -> dict[str, set[str]]:
    """Zoo entry name -> the state-dict keys of detectron2's model of it."""
    with gzip.open(DETECTRON2_KEYS, "rt") as f:
        data = json.load(f)
    return {name: set(data["key_lists"][index]) for name, index in data["entries"].items()}


def test_packaged_configs_and_manifest_are_what_the_generator_writes(capsys):
    assert make_configs.main(["--check"]) == 0  # canonical files, manifest `config` fields in step
    assert f"{len(WITH_CONFIG)}/61 zoo models have a dt config" in capsys.readouterr().err


def test_manifest_names_exactly_the_packaged_config_files():
    files = sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob("*.yaml"))
    assert files == sorted(dt_zoo.info(name).config for name in WITH_CONFIG)
    assert len(WITH_CONFIG) == 61  # every trained model of detectron2's MODEL_ZOO.md
    assert set(_detectron2_keys()) == set(WITH_CONFIG)


@pytest.mark.parametrize("name", WITH_CONFIG)
def test_every_zoo_config_loads_and_builds_detectron2s_model(name):
    cfg = dt_zoo.get_config(name)
    assert isinstance(cfg, ExperimentConfig) and cfg == load_experiment(CONFIG_DIR / f"{name}.yaml")
    assert cfg.data.datasets.train == dt_zoo.info(name).dataset.train
    with torch.device("meta"):  # full-size models: no memory, no initialisation time
        model = build_model(cfg.model, device="meta")
    # named as detectron2 names them (what loading its checkpoint matches): exactly its model's keys
    names = {detectron2_name(key) for key in model.state_dict()}
    expected = _detectron2_keys()[name]
    missing, unexpected = sorted(expected - names), sorted(names - expected)
    assert not missing and not unexpected, f"missing {missing[:5]}, unexpected {unexpected[:5]}"


def test_a_famous_config_matches_detectron2s_numbers():
    cfg = dt_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x")
    assert (cfg.solver.base_lr, cfg.solver.max_iter, cfg.solver.steps, cfg.solver.ims_per_batch) == (
        0.02, 270000, (210000, 250000), 16
    )  # fmt: skip
    assert cfg.data.input.min_size_train == (640, 672, 704, 736, 768, 800)
    assert cfg.model.roi_heads.num_classes == 80 and "mask" in cfg.model.roi_heads.branches


LSJ_BASELINES = [name for name in WITH_CONFIG if name.startswith("new_baselines/")]


@pytest.mark.parametrize("name", LSJ_BASELINES)
def test_lsj_baselines_hold_detectron2s_recipe(name):
    cfg = dt_zoo.get_config(name)
    epochs = dt_zoo.info(name).epochs
    scale = epochs // 100
    solver = cfg.solver
    assert (solver.optimizer, solver.base_lr, solver.momentum, solver.weight_decay, solver.ims_per_batch) == (
        "SGD", 0.1, 0.9, 4e-5, 64
    )  # fmt: skip
    assert solver.max_iter == 184375 * scale == round(epochs * 118000 / 64)
    assert solver.steps == (163889 * scale, 177546 * scale) and solver.gamma == 0.1
    assert (solver.warmup_method, solver.warmup_factor, solver.warmup_iters) == ("linear", 0.067, 500 * scale)
    assert solver.amp.enabled and cfg.test.eval_period == 5000
    assert (cfg.workflow.name, cfg.workflow.image_size, cfg.workflow.min_scale, cfg.workflow.max_scale) == (
        "LSJTrainer", 1024, 0.1, 2.0
    )  # fmt: skip
    assert cfg.workflow.pad and cfg.workflow.flip_after_crop and cfg.workflow.test_resize == "input"
    assert (cfg.data.input.min_size_test, cfg.data.input.max_size_test) == (800, 1333)
    model = cfg.model
    assert model.weights is None  # trained from random initialization
    backbone = model.backbone.regnet if "regnet" in name else model.backbone.resnet
    assert (backbone.norm, backbone.freeze_at, model.backbone.norm) == ("SyncBN", 0, "SyncBN")
    heads = model.roi_heads
    assert model.proposal_generator.head_conv_dims == (-1, -1)
    assert (heads.box_head.num_conv, heads.box_head.num_fc, heads.box_head.norm) == (4, 1, "naiveSyncBN_N")
    assert heads.branches["mask"].head.norm == "naiveSyncBN_N"
    if "regnet" in name:  # the DDS paper's 4GF widths and depths
        x = "regnetx" in name
        expected = ([80, 240, 560, 1360], [2, 5, 14, 2]) if x else ([128, 192, 512, 1088], [2, 6, 12, 2])
        assert backbone.stage_specs()[:2] == expected
        assert backbone.se_ratio == (0.0 if x else 0.25) and model.pixel_std == (57.375, 57.12, 58.395)
    else:
        assert backbone.depth == (101 if "R_101" in name else 50)


NARROW_REGNET_LSJ = [
    *(f"model.backbone.regnet.{k}" for k in ("depth=8", "w_0=16", "w_a=16.0", "w_m=2.0", "group_width=8")),
    "model.backbone.out_channels=16",
    "model.proposal_generator.pre_nms_topk_train=128",
    "model.proposal_generator.post_nms_topk_train=64",
    "model.roi_heads.num_classes=5",
    "model.roi_heads.batch_size_per_image=32",
    "model.roi_heads.box_head.conv_dim=16",
    "model.roi_heads.box_head.fc_dim=32",
    "model.roi_heads.branches.mask.head.conv_dim=16",
    "data.datasets.train=[shapes_val]",
    "data.datasets.test=[shapes_val]",
    "data.loader.num_workers=0",
    "workflow.image_size=64",
    "solver.ims_per_batch=2",
]


def test_a_narrow_lsj_baseline_trains_on_its_workflows_data():
    """The RegNetY recipe, narrow: its synchronized norms, two-conv RPN head and 4conv1fc box head train
    on the LSJTrainer's padded 64 x 64 crops (one process: the synchronized norms are batch norms)."""
    path = CONFIG_DIR / "new_baselines/mask_rcnn_regnety_4gf_dds_FPN_100ep_LSJ.yaml"
    cfg = load_experiment(path, NARROW_REGNET_LSJ)
    assert cfg.model.backbone.regnet.norm == "SyncBN"  # merged into the recipe, not replacing it
    batch = next(iter(build_workflow(cfg).build_train_loader(seed=0)))
    assert [tuple(d["image"].shape) for d in batch] == [(3, 64, 64)] * 2
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    losses = model(batch)
    assert {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.bottom_up.stem.conv.weight.grad is not None  # freeze_at 0: the stem trains


def _d2_files(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "Base.yaml").write_text(
        textwrap.dedent(
            """\
            MODEL:
              META_ARCHITECTURE: "GeneralizedRCNN"
              BACKBONE: {NAME: "build_resnet_fpn_backbone"}
              RESNETS: {OUT_FEATURES: ["res2", "res3", "res4", "res5"]}
              FPN: {IN_FEATURES: ["res2", "res3", "res4", "res5"]}
              ANCHOR_GENERATOR: {SIZES: [[32], [64], [128], [256], [512]]}
              RPN: {IN_FEATURES: ["p2", "p3", "p4", "p5", "p6"]}
              ROI_HEADS: {NAME: "StandardROIHeads", IN_FEATURES: ["p2", "p3", "p4", "p5"]}
              ROI_BOX_HEAD: {NAME: "FastRCNNConvFCHead", NUM_FC: 2, POOLER_RESOLUTION: 7}
            DATASETS:
              TRAIN: ("my_train",)
              TEST: ("my_val",)
            SOLVER:
              IMS_PER_BATCH: 16
              BASE_LR: 0.02
              STEPS: (60000, 80000)
              MAX_ITER: 90000
            INPUT:
              MIN_SIZE_TRAIN: (640, 800)
            VERSION: 2
            """
        )
    )
    path = tmp_path / "child.yaml"
    path.write_text('_BASE_: "Base.yaml"\n' + textwrap.dedent(extra))
    return path


def test_experiment_data_translates_data_solver_and_test(tmp_path):
    path = _d2_files(
        tmp_path,
        """\
        INPUT: {MIN_SIZE_TRAIN_SAMPLING: "range", CROP: {ENABLED: True, TYPE: "absolute", SIZE: [512, 512]}}
        SOLVER: {LR_SCHEDULER_NAME: "WarmupCosineLR", WARMUP_ITERS: 100, CLIP_GRADIENTS: {ENABLED: True}}
        DATALOADER: {NUM_WORKERS: 2, SAMPLER_TRAIN: "RepeatFactorTrainingSampler", REPEAT_THRESHOLD: 0.001}
        TEST: {EVAL_PERIOD: 5000, PRECISE_BN: {ENABLED: True}, AUG: {ENABLED: True, MIN_SIZES: "(400, 500)"}}
        SEED: 7
        """,
    )
    cfg = structure(ExperimentConfig, make_configs.experiment_data(path))
    assert cfg.data.datasets.train == ("my_train",) and cfg.data.datasets.test == ("my_val",)
    assert (cfg.data.input.min_size_train, cfg.data.input.min_size_train_sampling) == ((640, 800), "range")
    assert (cfg.data.input.crop.type, cfg.data.input.crop.size) == ("absolute", (512, 512))
    assert (cfg.solver.lr_scheduler.name, cfg.solver.warmup_iters, cfg.solver.clip_gradients.enabled) == (
        "cosine", 100, True
    )  # fmt: skip
    assert (cfg.data.loader.num_workers, cfg.data.loader.sampler) == (2, "RepeatFactorTrainingSampler")
    assert (cfg.test.eval_period, cfg.test.precise_bn.enabled, cfg.seed) == (5000, True, 7)
    assert (cfg.test.aug.enabled, cfg.test.aug.min_sizes, cfg.test.aug.max_size, cfg.test.aug.flip) == (
        True, (400, 500), 4000, True
    )  # fmt: skip


def test_fast_rcnn_translates_to_precomputed_proposals_and_their_files(tmp_path):
    cfg = dt_zoo.get_config("COCO-Detection/fast_rcnn_R_50_FPN_1x")
    assert type(cfg.model.proposal_generator).name == "PrecomputedProposals"
    datasets = cfg.data.datasets
    assert [Path(f).name for f in datasets.proposal_files_train + datasets.proposal_files_test] == [
        "coco_2017_train_box_proposals_21bc3a.pkl", "coco_2017_val_box_proposals_ee0dad.pkl"
    ]  # fmt: skip
    assert (datasets.precomputed_proposal_topk_train, datasets.precomputed_proposal_topk_test) == (2000, 1000)
    path = _d2_files(
        tmp_path,
        """\
        MODEL: {LOAD_PROPOSALS: True, PROPOSAL_GENERATOR: {NAME: "PrecomputedProposals"}}
        DATASETS:
          PROPOSAL_FILES_TRAIN: ("train.pkl",)
          PROPOSAL_FILES_TEST: ("val.pkl",)
          PRECOMPUTED_PROPOSAL_TOPK_TEST: 300
        """,
    )
    cfg = structure(ExperimentConfig, make_configs.experiment_data(path))
    assert type(cfg.model.proposal_generator).name == "PrecomputedProposals"
    datasets = cfg.data.datasets
    assert (datasets.proposal_files_train, datasets.proposal_files_test) == (("train.pkl",), ("val.pkl",))
    assert (datasets.precomputed_proposal_topk_train, datasets.precomputed_proposal_topk_test) == (2000, 300)


def test_keys_dt_cannot_honour_are_all_reported_never_dropped(tmp_path):
    path = _d2_files(
        tmp_path,
        """\
        MODEL: {LOAD_PROPOSALS: True}
        TEST: {KEYPOINT_OKS_SIGMAS: [0.1]}
        SOLVER: {LR_SCHEDULER_NAME: "WarmupStepWithFixedGammaLR", REFERENCE_WORLD_SIZE: 8}
        INPUT: {SOME_NEW_KEY: 1}
        """,
    )
    with pytest.raises(ConfigError) as err:
        make_configs.experiment_data(path)
    problems = "\n".join(err.value.problems)
    for key in (
        "MODEL.LOAD_PROPOSALS",  # proposals loaded for an RPN model: dt loads them only for Fast R-CNN
        "TEST.KEYPOINT_OKS_SIGMAS",
        "SOLVER.LR_SCHEDULER_NAME",
        "SOLVER.REFERENCE_WORLD_SIZE",
        "INPUT.SOME_NEW_KEY",
    ):
        assert key in problems


def test_config_names_work_wherever_a_config_path_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no file of that name here: dt-zoo's config source answers
    cfg = load_experiment("COCO-Detection/retinanet_R_50_FPN_3x.yaml", ["solver.max_iter=300000"])
    assert cfg.model.name == "RetinaNet" and cfg.solver.max_iter == 300000
    with pytest.raises(ConfigError, match="did you mean 'COCO-Detection/retinanet_R_50_FPN_3x'"):
        load_experiment("COCO-Detection/retinanet_R_50_FPN_3X")
    with pytest.raises(ConfigError, match="has no dt config \\(an ImageNet backbone has none\\)"):
        load_experiment("ImageNetPretrained/MSRA/R-50")
    with pytest.raises(ConfigError, match="mine.yaml: config file not found"):
        load_experiment("mine.yaml")  # not a zoo name: the ordinary missing-file error
    own = tmp_path / "COCO-Detection" / "retinanet_R_50_FPN_3x.yaml"
    own.parent.mkdir()
    own.write_text("solver: {max_iter: 5, steps: [3]}\n")
    assert load_experiment("COCO-Detection/retinanet_R_50_FPN_3x.yaml").solver.max_iter == 5  # a file wins


def test_model_weights_translate_to_the_zoo_entry_holding_them():
    r50 = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
    assert make_configs.initial_weights(r50) == "zoo:ImageNetPretrained/MSRA/R-50"
    gn = "catalog://ImageNetPretrained/FAIR/R-50-GN"
    assert make_configs.initial_weights(gn) == "zoo:ImageNetPretrained/FAIR/R-50-GN"
    coco = "detectron2://COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x/137849600/model_final_f10217.pkl"
    assert make_configs.initial_weights(coco) == "zoo:COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x"
    assert make_configs.initial_weights("") is None
    with pytest.raises(ConfigError, match="no zoo entry"):
        make_configs.initial_weights("detectron2://elsewhere/model.pkl")


def test_every_zoo_configs_initial_weights_are_a_zoo_entry():
    starts = [load_experiment(path).model.weights for path in sorted(CONFIG_DIR.rglob("*.yaml"))]
    named = [w for w in starts if w is not None]
    assert len(named) >= 40
    for weights in named:
        assert weights.startswith("zoo:") and dt_zoo.info(weights.removeprefix("zoo:")).weights.urls
