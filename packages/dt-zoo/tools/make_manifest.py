"""Generate dt-zoo's ``manifest.json`` from detectron2's MODEL_ZOO.md and configs.

    python packages/dt-zoo/tools/make_manifest.py DETECTRON2_DIR [-o OUT] [--check]

``DETECTRON2_DIR`` holds ``MODEL_ZOO.md`` and ``configs/``. The output (default: the package's
``src/dt_zoo/manifest.json``) is committed; dt-zoo and its tests never need detectron2's files, and
this script is not part of the installed package. ``--check`` fails if the output would change.

What is read:

* every HTML table of MODEL_ZOO.md: a row's Name cell links its config, the other columns are
  mapped by ``ENTRY_COLUMNS`` and ``METRIC_COLUMNS`` (an unknown column is an error), the download
  cell links the weights and the metrics file. The ablation tables repeat baselines of other tables:
  a repeated model is one entry, and its numbers must agree. A row "above + test-time aug." gives
  the ``tta_metrics`` of the row above it;
* the ImageNet backbone links of "ImageNet Pretrained Models", named as detectron2's configs name
  them (``ImageNetPretrained/MSRA/R-50``; Detectron's own files as ``ImageNetPretrained/FAIR/<file>``);
* each model's config (YAML through ``_BASE_``, Python configs through their ``dataloader`` imports)
  for its train and test datasets.

An entry's ``config`` names dt's config file when ``src/dt_zoo/configs`` has one (``make_configs.py``
writes them), else it is ``null``.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from dt_zoo import dump_manifest, parse_manifest
from dt_zoo.zoo_configs import CONFIG_DIR

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "dt_zoo" / "manifest.json"

ENTRY_COLUMNS = {
    "Name": None,
    "lr sched": "lr_sched",
    "epochs": "epochs",
    "model id": "model_id",
    "download": None,
}
METRIC_COLUMNS = {
    "box AP": "box_ap",
    "box AP50": "box_ap50",
    "mask AP": "mask_ap",
    "kp. AP": "keypoint_ap",
    "PQ": "pq",
    "prop. AR": "proposal_ar",
    "train time (s/iter)": "train_time_s_per_iter",
    "train time (s/im)": "train_time_s_per_im",
    "inference time (s/im)": "inference_time_s_per_im",
    "train mem (GB)": "train_memory_gb",
}
CLASSES = {  # test dataset -> label set (see dt_zoo.manifest)
    "coco_2017_val": "coco",
    "keypoints_coco_2017_val": "coco_person",
    "coco_2017_val_panoptic_separated": "coco_panoptic",
    "lvis_v0.5_val": "lvis_v0.5",
    "cityscapes_fine_instance_seg_val": "cityscapes",
    "voc_2007_test": "voc",
}
TASK_BY_STEM = (  # the first of these found in the config's file name
    ("rpn_", "proposals"),
    ("keypoint_rcnn", "keypoints"),
    ("panoptic_fpn", "panoptic-segmentation"),
    ("mask_rcnn", "instance-segmentation"),
    ("faster_rcnn", "detection"),
    ("fast_rcnn", "detection"),
    ("retinanet", "detection"),
)
TTA_LABEL = "above + test-time aug."

_BLOCK = re.compile(r"^(#{3,4}) (.+?)\s*$|<table>(.*?)</table>", re.M | re.S)
_LINK = re.compile(r'<a href="([^"]+)">([^<]*)</a>')
_MD5 = re.compile(r"_([0-9a-f]{6,32})\.pkl$")
_BACKBONE = re.compile(
    r"^\* \[([^\]]+)\]\((https://dl\.fbaipublicfiles\.com/(detectron2?)/(\S+?)\.pkl)\)", re.M
)


class _ConfigLoader(yaml.SafeLoader):
    """Safe YAML that reads detectron2's ``!!python/...`` values (anchor sizes) as ``None``: only
    ``DATASETS`` is needed, and nothing is ever evaluated."""


_ConfigLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def fail(message: str) -> None:
    raise SystemExit(f"make_manifest: {message}")


def number(text: str) -> float | None:
    return None if text in ("", "N/A") else float(text)


def parse_row(headers: list[str], cells: list[str], section: str) -> dict[str, Any]:
    """One table row as a partial entry: ``label``, entry fields, ``metrics``, links."""
    if len(cells) != len(headers):
        fail(f"{section}: a row has {len(cells)} cells for {len(headers)} columns")
    row: dict[str, Any] = {"section": section, "metrics": {}}
    for header, cell in zip(headers, cells, strict=True):
        links = {text: href for href, text in _LINK.findall(cell)}
        if header == "Name":
            config = next(iter(links.values()), None)
            row["label"] = next(iter(links), cell)
            row["detectron2_config"] = config.removeprefix("configs/") if config else None
        elif header == "download":
            row["urls"] = [links["model"]] if "model" in links else []
            row["metrics_url"] = links.get("metrics")
        elif header in METRIC_COLUMNS:
            if (value := number(cell)) is not None:
                row["metrics"][METRIC_COLUMNS[header]] = value
        elif header in ENTRY_COLUMNS:
            row[ENTRY_COLUMNS[header]] = (int(cell) if header != "lr sched" else cell) if cell else None
        else:
            fail(f"{section}: unknown column {header!r}")
    return row


def yaml_datasets(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=_ConfigLoader) or {}
    found = yaml_datasets(path.parent / data["_BASE_"]) if "_BASE_" in data else {}
    for key, value in (data.get("DATASETS") or {}).items():
        if key in ("TRAIN", "TEST"):
            found[key.lower()] = list(ast.literal_eval(value) if isinstance(value, str) else value)
    return found


def python_datasets(path: Path) -> dict[str, Any]:
    text = path.read_text()
    found: dict[str, Any] = {}
    for dots, module, names in re.findall(r"^from (\.+)([\w.]+) import (\([^)]*\)|[^\n]*)", text, re.M):
        if re.search(r"\bdataloader\b", names):
            base = path.parent.joinpath(*[".."] * (len(dots) - 1), *module.split("."))
            found.update(python_datasets(base.with_suffix(".py")))
    built = r"dataloader\.(train|test)\s*=\s*L\(\w+\)\(\s*dataset=L\(\w+\)\(names=\"([^\"]+)\""
    assigned = r"dataloader\.(train|test)\.dataset\.names\s*=\s*\"([^\"]+)\""
    for split, name in re.findall(built, text) + re.findall(assigned, text):
        found[split] = [name]
    return found


def dataset_ref(configs: Path, config: str) -> dict[str, Any]:
    path = configs / config
    if not path.exists():
        fail(f"config {path} does not exist")
    found = python_datasets(path) if path.suffix == ".py" else yaml_datasets(path)
    if set(found) != {"train", "test"}:
        fail(f"{config}: cannot tell its train and test datasets (found {found})")
    if found["test"][0] not in CLASSES:
        fail(f"{config}: no label set known for test dataset {found['test'][0]!r}")
    return {**found, "classes": CLASSES[found["test"][0]]}


def model_entry(row: dict[str, Any], configs: Path) -> dict[str, Any]:
    config = row["detectron2_config"]
    name = re.sub(r"\.(yaml|py)$", "", config)
    stem = name.rsplit("/", 1)[-1]
    task = next((task for prefix, task in TASK_BY_STEM if prefix in stem), None)
    if task is None or len(row["urls"]) != 1:
        fail(f"{name}: no task for its name, or not exactly one model link")
    md5 = _MD5.search(row["urls"][0])
    return {
        "name": name,
        "task": task,
        "label": row["label"],
        "section": row["section"],
        "config": f"{name}.yaml" if (CONFIG_DIR / f"{name}.yaml").is_file() else None,
        "detectron2_config": config,
        "model_id": row.get("model_id"),
        "lr_sched": row.get("lr_sched"),
        "epochs": row.get("epochs"),
        "weights": {
            "urls": row["urls"],
            "sha256": None,
            "md5_prefix": md5.group(1) if md5 else None,
            "size": None,
        },
        "metrics_url": row["metrics_url"],
        "metrics": row["metrics"],
        "tta_metrics": None,
        "dataset": dataset_ref(configs, config),
    }


def backbone_entries(text: str) -> list[dict[str, Any]]:
    section = "ImageNet Pretrained Models"
    start = text.index(f"#### {section}")
    block = text[start : text.index("\n#### ", start + 1)]
    entries = []
    for label, url, host, path in _BACKBONE.findall(block):
        name = (
            path
            if host == "detectron2"
            else re.sub(r"^ImageNetPretrained/\d+/", "ImageNetPretrained/FAIR/", path)
        )
        weights = {"urls": [url], "sha256": None, "md5_prefix": None, "size": None}
        entries.append(
            {
                "name": name,
                "task": "backbone",
                "label": label.replace(".pkl", ""),
                "section": section,
                "weights": weights,
            }
        )
    return entries


def build_manifest(detectron2: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The manifest data and counts: table rows with weights, repeated rows, TTA rows, backbones."""
    text = (detectron2 / "MODEL_ZOO.md").read_text()
    entries: dict[str, dict[str, Any]] = {}
    counts = {"rows": 0, "repeated": 0, "tta": 0}
    headings = {3: "", 4: ""}
    previous: dict[str, Any] | None = None
    for match in _BLOCK.finditer(text):
        if match.group(1):
            level = len(match.group(1))
            headings[level] = match.group(2).rstrip(":")
            if level == 3:
                headings[4] = ""
            continue
        section = " / ".join(h for h in (headings[3], headings[4]) if h)
        table = match.group(3)
        headers = [re.sub(r"<br/>", " ", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table)]
        for row_html in re.findall(r"<tr>(.*?)</tr>", table, re.S):
            row = parse_row(headers, re.findall(r"<td[^>]*>(.*?)</td>", row_html, re.S), section)
            if row["label"] == TTA_LABEL and previous is not None:
                previous["tta_metrics"] = row["metrics"]
                counts["tta"] += 1
                continue
            entry = model_entry(row, detectron2 / "configs")
            counts["rows"] += 1
            if entry["name"] in entries:
                first = entries[entry["name"]]
                keys = ("model_id", "lr_sched", "epochs", "weights", "metrics")
                if any(first[k] != entry[k] for k in keys):
                    fail(f"{entry['name']} is listed twice with different numbers")
                counts["repeated"] += 1
            else:
                entries[entry["name"]] = entry
            previous = entries[entry["name"]]
    backbones = backbone_entries(text)
    counts["backbones"] = len(backbones)
    data = {"version": 1, "entries": list(entries.values()) + backbones}
    counts["entries"] = len(data["entries"])
    return data, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("detectron2", type=Path, help="directory with MODEL_ZOO.md and configs/")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="fail if OUT is not up to date")
    args = parser.parse_args(argv)
    data, counts = build_manifest(args.detectron2)
    text = dump_manifest(parse_manifest(data, "generated manifest"))
    print(
        f"{counts['rows']} table rows with weights ({counts['repeated']} repeat a model of another table), "
        f"{counts['tta']} test-time-augmentation row, {counts['backbones']} ImageNet backbones "
        f"-> {counts['entries']} entries",
        file=sys.stderr,
    )
    if args.check:
        if not args.out.exists() or args.out.read_text() != text:
            print(f"{args.out} is out of date; run {Path(__file__).name} without --check", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
