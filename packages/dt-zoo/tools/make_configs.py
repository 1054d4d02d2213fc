"""Write dt's own config of every zoo model, translated once from detectron2's, then owned by dt.

    python packages/dt-zoo/tools/make_configs.py [--detectron2 DETECTRON2_DIR] [--retranslate] [--check]

For each manifest entry with a detectron2 config, ``src/dt_zoo/configs/<name>.yaml`` is a complete
``ExperimentConfig`` (model, data, solver, test). The model comes from dt's translator
(``dt_models.compat.detectron2_config``); ``DATASETS``, ``INPUT``, ``DATALOADER``, ``SOLVER``,
``TEST``, ``OUTPUT_DIR`` and ``SEED`` are translated here (``experiment_data``), and any of their keys
dt cannot honour makes the entry wait, never dropped silently.

* With ``--detectron2``: entries without a dt config are translated (all of them with
  ``--retranslate``); an entry whose family dt does not have yet is reported with the reason and
  gets no file, so rerunning after the family lands adds it.
* Always: every existing file is loaded and rewritten in its canonical form (a header, then
  ``dump_config``), and each manifest entry's ``config`` is set to its file, or ``null`` without one;
  a file that no longer loads (dt's config classes changed) is reported and the exit code is 1.
* An entry whose detectron2 config is a LazyConfig (``.py``, the ``new_baselines/``) has a config
  written by hand for dt (reusing the translated ones as ``_base_``): it is only checked to load,
  never rewritten; without a file the entry waits.
* ``--check``: nothing is written; exit 1 if any file or the manifest would change.

Needs dt-engine and dt-models installed; this script is not part of the installed package.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any

import attrs

from dt_config import ConfigError, structure, unstructure
from dt_engine.config.experiment import ExperimentConfig, dump_config, load_experiment
from dt_models.compat.detectron2_config import detectron2_model_config, load_detectron2_yaml
from dt_zoo import default_manifest, dump_manifest
from dt_zoo.zoo_configs import CONFIG_DIR

MANIFEST = Path(__file__).resolve().parents[1] / "src" / "dt_zoo" / "manifest.json"
HEADER = (
    "# dt's config of the zoo model {name}.\n"
    "# Translated from detectron2's configs/{source} by packages/dt-zoo/tools/make_configs.py;\n"
    "# dt owns it now: edit it here.\n"
)

# detectron2's defaults of the non-model keys that its zoo configs rely on (detectron2/config/defaults.py)
D2_DEFAULTS: dict[str, Any] = {
    "DATASETS.TRAIN": (),
    "DATASETS.TEST": (),
    "DATASETS.PROPOSAL_FILES_TRAIN": (),
    "DATASETS.PROPOSAL_FILES_TEST": (),
    "DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TRAIN": 2000,
    "DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TEST": 1000,
    "INPUT.MIN_SIZE_TRAIN": (800,),
    "INPUT.MIN_SIZE_TRAIN_SAMPLING": "choice",
    "INPUT.MAX_SIZE_TRAIN": 1333,
    "INPUT.MIN_SIZE_TEST": 800,
    "INPUT.MAX_SIZE_TEST": 1333,
    "INPUT.RANDOM_FLIP": "horizontal",
    "INPUT.MASK_FORMAT": "polygon",
    "INPUT.CROP.ENABLED": False,
    "INPUT.CROP.TYPE": "relative_range",
    "INPUT.CROP.SIZE": [0.9, 0.9],
    "DATALOADER.NUM_WORKERS": 4,
    "DATALOADER.ASPECT_RATIO_GROUPING": True,
    "DATALOADER.SAMPLER_TRAIN": "TrainingSampler",
    "DATALOADER.REPEAT_THRESHOLD": 0.0,
    "DATALOADER.REPEAT_SQRT": True,
    "DATALOADER.RANDOM_SUBSET_RATIO": 1.0,
    "DATALOADER.FILTER_EMPTY_ANNOTATIONS": True,
    "SOLVER.LR_SCHEDULER_NAME": "WarmupMultiStepLR",
    "SOLVER.MAX_ITER": 40000,
    "SOLVER.BASE_LR": 0.001,
    "SOLVER.BASE_LR_END": 0.0,
    "SOLVER.MOMENTUM": 0.9,
    "SOLVER.NESTEROV": False,
    "SOLVER.WEIGHT_DECAY": 0.0001,
    "SOLVER.WEIGHT_DECAY_NORM": 0.0,
    "SOLVER.GAMMA": 0.1,
    "SOLVER.STEPS": (30000,),
    "SOLVER.WARMUP_FACTOR": 0.001,
    "SOLVER.WARMUP_ITERS": 1000,
    "SOLVER.WARMUP_METHOD": "linear",
    "SOLVER.RESCALE_INTERVAL": False,
    "SOLVER.CHECKPOINT_PERIOD": 5000,
    "SOLVER.IMS_PER_BATCH": 16,
    "SOLVER.REFERENCE_WORLD_SIZE": 0,
    "SOLVER.BIAS_LR_FACTOR": 1.0,
    "SOLVER.WEIGHT_DECAY_BIAS": None,
    "SOLVER.CLIP_GRADIENTS.ENABLED": False,
    "SOLVER.CLIP_GRADIENTS.CLIP_TYPE": "value",
    "SOLVER.CLIP_GRADIENTS.CLIP_VALUE": 1.0,
    "SOLVER.CLIP_GRADIENTS.NORM_TYPE": 2.0,
    "SOLVER.AMP.ENABLED": False,
    "TEST.EVAL_PERIOD": 0,
    "TEST.DETECTIONS_PER_IMAGE": 100,
    "TEST.AUG.ENABLED": False,
    "TEST.AUG.MIN_SIZES": (400, 500, 600, 700, 800, 900, 1000, 1100, 1200),
    "TEST.AUG.MAX_SIZE": 4000,
    "TEST.AUG.FLIP": True,
    "TEST.PRECISE_BN.ENABLED": False,
    "TEST.PRECISE_BN.NUM_ITER": 200,
    "TEST.KEYPOINT_OKS_SIGMAS": [],
    "OUTPUT_DIR": "./output",
    "SEED": -1,
}
# keys with no counterpart to translate: the config version, the CI's expected numbers, the
# NUM_DECAYS of a scheduler dt does not offer, run settings detectron2 keeps in the config
_IGNORED = {
    "VERSION",
    "TEST.EXPECTED_RESULTS",
    "SOLVER.NUM_DECAYS",
    "CUDNN_BENCHMARK",
    "VIS_PERIOD",
    "GLOBAL.HACK",
}
# (key, the only value dt supports)
_FIXED = {
    "SOLVER.REFERENCE_WORLD_SIZE": 0,
    "TEST.KEYPOINT_OKS_SIGMAS": [],
}
_SCHEDULERS = {"WarmupMultiStepLR": "multistep", "WarmupCosineLR": "cosine"}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _value(raw: Any) -> Any:
    """detectron2 YAML writes tuples as strings (``"(800,)"``) that its loader literal-evaluates."""
    if isinstance(raw, str) and raw.strip().startswith(("(", "[")):
        return ast.literal_eval(raw)
    return raw


_DETECTRON2_URL = "https://dl.fbaipublicfiles.com/detectron2/"


def initial_weights(raw: str) -> str | None:
    """``model.weights`` for detectron2's ``MODEL.WEIGHTS``: ``zoo:NAME`` of the zoo entry that holds
    the file (``detectron2://PATH`` is ``<its CDN>/PATH``; ``catalog://NAME`` names an entry), ``None``
    for ``""``.

    Raises:
        ConfigError: the weights are not a zoo entry (the config waits rather than lose its start).
    """
    if not raw:
        return None
    entries = default_manifest().entries
    if raw.startswith("catalog://"):
        names = [e.name for e in entries if e.name == raw.removeprefix("catalog://")]
    else:
        url = _DETECTRON2_URL + raw.removeprefix("detectron2://")
        names = [e.name for e in entries if e.weights is not None and url in e.weights.urls]
    if not names:
        raise ConfigError([f"MODEL.WEIGHTS = {raw!r} is no zoo entry's weights"])
    return f"zoo:{names[0]}"


def experiment_data(path: Path) -> dict[str, Any]:
    """Plain ``ExperimentConfig`` data equivalent to the detectron2 config file at ``path``.

    Raises:
        ConfigError: listing every key dt cannot honour (from the model translator and from here).
    """
    user = {k: v for k, v in _flatten(load_detectron2_yaml(path)).items() if not k.startswith("MODEL.")}
    problems = []
    try:
        model = unstructure(detectron2_model_config(path))
        model["weights"] = initial_weights(_flatten(load_detectron2_yaml(path)).get("MODEL.WEIGHTS", ""))
    except ConfigError as err:
        problems += err.problems
        model = None
    for key in user:
        if key not in D2_DEFAULTS and key not in _IGNORED and key != "INPUT.FORMAT":
            problems.append(f"{key} = {user[key]!r} is not supported by dt (unknown key)")
    value = {key: _value(user.get(key, default)) for key, default in D2_DEFAULTS.items()}
    for key, expected in _FIXED.items():
        if _plain(value[key]) != _plain(expected):
            problems.append(f"{key} = {value[key]!r} is not supported (dt supports only {expected!r})")
    scheduler = _SCHEDULERS.get(value["SOLVER.LR_SCHEDULER_NAME"])
    if scheduler is None:
        problems.append(
            f"SOLVER.LR_SCHEDULER_NAME = {value['SOLVER.LR_SCHEDULER_NAME']!r} is not supported "
            f"(dt supports {list(_SCHEDULERS)})"
        )
    if problems or model is None:
        raise ConfigError(problems, what=f"detectron2 config {path}")
    crop = (
        {"type": value["INPUT.CROP.TYPE"], "size": list(value["INPUT.CROP.SIZE"])}
        if value["INPUT.CROP.ENABLED"]
        else None
    )
    clip = {
        "enabled": value["SOLVER.CLIP_GRADIENTS.ENABLED"],
        "clip_type": value["SOLVER.CLIP_GRADIENTS.CLIP_TYPE"],
        "clip_value": value["SOLVER.CLIP_GRADIENTS.CLIP_VALUE"],
        "norm_type": value["SOLVER.CLIP_GRADIENTS.NORM_TYPE"],
    }
    return {
        "version": 1,
        "model": model,
        "data": {
            "datasets": {
                "train": list(value["DATASETS.TRAIN"]),
                "test": list(value["DATASETS.TEST"]),
                # detectron2:// names are kept: dt reads local files, the check names the one to fetch
                "proposal_files_train": list(value["DATASETS.PROPOSAL_FILES_TRAIN"]),
                "proposal_files_test": list(value["DATASETS.PROPOSAL_FILES_TEST"]),
                "precomputed_proposal_topk_train": value["DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TRAIN"],
                "precomputed_proposal_topk_test": value["DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TEST"],
            },
            "input": {
                "min_size_train": list(_as_tuple(value["INPUT.MIN_SIZE_TRAIN"])),
                "min_size_train_sampling": value["INPUT.MIN_SIZE_TRAIN_SAMPLING"],
                "max_size_train": value["INPUT.MAX_SIZE_TRAIN"],
                "min_size_test": value["INPUT.MIN_SIZE_TEST"],
                "max_size_test": value["INPUT.MAX_SIZE_TEST"],
                "format": model["input_format"],
                "mask_format": value["INPUT.MASK_FORMAT"],
                "random_flip": value["INPUT.RANDOM_FLIP"],
                "crop": crop,
            },
            "loader": {
                "num_workers": value["DATALOADER.NUM_WORKERS"],
                "aspect_ratio_grouping": value["DATALOADER.ASPECT_RATIO_GROUPING"],
                "sampler": value["DATALOADER.SAMPLER_TRAIN"],
                "repeat_threshold": value["DATALOADER.REPEAT_THRESHOLD"],
                "repeat_sqrt": value["DATALOADER.REPEAT_SQRT"],
                "random_subset_ratio": value["DATALOADER.RANDOM_SUBSET_RATIO"],
                "filter_empty_annotations": value["DATALOADER.FILTER_EMPTY_ANNOTATIONS"],
            },
        },
        "solver": {
            "optimizer": "SGD",
            "base_lr": value["SOLVER.BASE_LR"],
            "momentum": value["SOLVER.MOMENTUM"],
            "nesterov": value["SOLVER.NESTEROV"],
            "weight_decay": value["SOLVER.WEIGHT_DECAY"],
            "weight_decay_norm": value["SOLVER.WEIGHT_DECAY_NORM"],
            "bias_lr_factor": value["SOLVER.BIAS_LR_FACTOR"],
            "weight_decay_bias": value["SOLVER.WEIGHT_DECAY_BIAS"],
            "lr_scheduler": scheduler,
            "steps": list(_as_tuple(value["SOLVER.STEPS"])),
            "gamma": value["SOLVER.GAMMA"],
            "base_lr_end": value["SOLVER.BASE_LR_END"],
            "warmup_method": value["SOLVER.WARMUP_METHOD"],
            "warmup_factor": value["SOLVER.WARMUP_FACTOR"],
            "warmup_iters": value["SOLVER.WARMUP_ITERS"],
            "rescale_interval": value["SOLVER.RESCALE_INTERVAL"],
            "max_iter": value["SOLVER.MAX_ITER"],
            "ims_per_batch": value["SOLVER.IMS_PER_BATCH"],
            "clip_gradients": clip,
            "amp": {"enabled": value["SOLVER.AMP.ENABLED"]},
            "checkpoint_period": value["SOLVER.CHECKPOINT_PERIOD"],
        },
        "test": {
            "eval_period": value["TEST.EVAL_PERIOD"],
            "detections_per_image": value["TEST.DETECTIONS_PER_IMAGE"],
            "precise_bn": {
                "enabled": value["TEST.PRECISE_BN.ENABLED"],
                "num_iter": value["TEST.PRECISE_BN.NUM_ITER"],
            },
            "aug": {
                "enabled": value["TEST.AUG.ENABLED"],
                "min_sizes": list(_as_tuple(value["TEST.AUG.MIN_SIZES"])),
                "max_size": value["TEST.AUG.MAX_SIZE"],
                "flip": value["TEST.AUG.FLIP"],
            },
            # a proposal network has no box AP to choose a best checkpoint on
            "best_metric": None if model["name"] == "ProposalNetwork" else "bbox/AP",
        },
        "output_dir": value["OUTPUT_DIR"],
        "seed": value["SEED"],
    }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, list)) else value


def _as_tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def config_text(name: str, source: str, config: ExperimentConfig) -> str:
    """The file of a zoo config: the header, then the complete resolved config."""
    return HEADER.format(name=name, source=source) + dump_config(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--detectron2", type=Path, help="detectron2 checkout (with configs/) to translate from"
    )
    parser.add_argument("--retranslate", action="store_true", help="translate every entry again")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if anything would change")
    args = parser.parse_args(argv)
    manifest = default_manifest()
    stale: list[str] = []
    waiting: list[str] = []
    broken: list[str] = []
    entries = []
    for entry in manifest.entries:
        if entry.detectron2_config is None:
            entries.append(entry)
            continue
        target = CONFIG_DIR / f"{entry.name}.yaml"
        if entry.detectron2_config.endswith(".py"):  # written by hand: checked, never rewritten
            if not target.exists():
                waiting.append(f"{entry.name}: a LazyConfig (.py); dt's translator reads YAML configs only")
            else:
                try:
                    load_experiment(target)
                except ConfigError as err:
                    broken.append(f"{target}: {err.problems[0]}")
            entries.append(attrs.evolve(entry, config=f"{entry.name}.yaml" if target.exists() else None))
            continue
        text = None
        if args.detectron2 is not None and (args.retranslate or not target.exists()):
            try:
                data = experiment_data(args.detectron2 / "configs" / entry.detectron2_config)
                text = config_text(entry.name, entry.detectron2_config, structure(ExperimentConfig, data))
            except ConfigError as err:
                waiting.append(f"{entry.name}: {err.problems[0]}")
        elif target.exists():
            try:
                text = config_text(entry.name, entry.detectron2_config, load_experiment(target))
            except ConfigError as err:  # dt's config classes changed under the file: fix the file
                broken.append(f"{target}: {err.problems[0]}")
        if text is not None and (not target.exists() or target.read_text() != text):
            stale.append(str(target))
            if not args.check:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        has_config = text is not None or target.exists()
        entries.append(attrs.evolve(entry, config=f"{entry.name}.yaml" if has_config else None))
    manifest_text = dump_manifest(attrs.evolve(manifest, entries=tuple(entries)))
    if MANIFEST.read_text() != manifest_text:
        stale.append(str(MANIFEST))
        if not args.check:
            MANIFEST.write_text(manifest_text)
    built = sum(e.config is not None for e in entries)
    total = sum(e.detectron2_config is not None for e in entries)
    print(f"{built}/{total} zoo models have a dt config", file=sys.stderr)
    for line in waiting:
        print(f"  waiting: {line}", file=sys.stderr)
    for line in broken:
        print(f"  does not load: {line}", file=sys.stderr)
    if broken:
        return 1
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run {Path(__file__).name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
