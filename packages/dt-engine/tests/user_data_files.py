"""A user's own tiny COCO dataset on disk (images, annotation JSON, config) and a runner of the real
``dt`` command, for the end-to-end tests of users' data and every failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent
DT = str(Path(sys.executable).parent / "dt")
CATEGORIES = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]  # not contiguous on purpose


def write_image(path: Path, width: int = 64, height: int = 48, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
    pixels[8:32, 10:40] = (220, 40, 40)
    Image.fromarray(pixels).save(path)


def coco_json(num_images: int, width: int = 64, height: int = 48) -> dict:
    """``num_images`` images of ``width x height``, each with a cat (id 3) and a dog (id 7)."""
    images, annotations = [], []
    for i in range(num_images):
        images.append({"id": i + 1, "file_name": f"img{i}.png", "width": width, "height": height})
        for k, (cat, box) in enumerate([(3, [10, 8, 30, 24]), (7, [40, 20, 16, 20])]):
            x, y, w, h = box
            annotations.append(
                {
                    "id": 10 * (i + 1) + k,
                    "image_id": i + 1,
                    "category_id": cat,
                    "bbox": box,
                    "area": w * h,
                    "iscrowd": 0,
                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                }
            )
    return {"images": images, "annotations": annotations, "categories": CATEGORIES}


def write_dataset(root: Path, split: str, num_images: int, annotations: str = "ann") -> None:
    """``root/<annotations>/<split>.json`` and ``root/images/<split>/img<i>.png``."""
    for i in range(num_images):
        write_image(root / "images" / split / f"img{i}.png", seed=i)
    (root / annotations).mkdir(parents=True, exist_ok=True)
    (root / annotations / f"{split}.json").write_text(json.dumps(coco_json(num_images)))


CONFIG = """\
_base_: {base}
datasets:
  my_train: {{type: coco, json_file: ann/train.json, image_root: images/train}}
  my_val: {{type: coco, json_file: ann/val.json, image_root: images/val}}
data:
  datasets: {{train: [my_train], test: [my_val]}}
model: {{roi_heads: {{num_classes: 2}}}}
solver: {{max_iter: 2, steps: [1], checkpoint_period: 1, ema: {{enabled: false}}}}
test: {{eval_period: 0, val_loss_period: 0, precise_bn: {{enabled: false}}}}
output_dir: out
"""


def write_project(root: Path) -> Path:
    """A user's folder: 4 training and 2 validation images, their JSON, and ``cfg.yaml`` (a tiny Mask
    R-CNN, paths relative to the config). Returns the config path."""
    write_dataset(root, "train", 4)
    write_dataset(root, "val", 2)
    config = root / "cfg.yaml"
    config.write_text(CONFIG.format(base=HERE / "engine_tiny_rcnn.yaml"))
    return config


def run_dt(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``dt <args>`` in a subprocess (stdout and stderr captured as text)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [DT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if ": error: " in line]
