"""dt-eval's base install (numpy, pycocotools) without the ``torch`` extra: ``dt_eval.coco`` evaluates,
and every part that needs the extra says so in one ImportError line naming it.

Each case runs in a fresh interpreter where the extra's modules cannot be imported (``sys.modules[name]
= None`` makes ``import name`` fail, as if the package were not installed).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dt_eval._extra import EXTRA_MODULES, INSTALL_HINT

EVALUATE_WITHOUT_TORCH = """
import contextlib, io
from pycocotools.coco import COCO
import dt_eval
from dt_eval.coco import COCOeval

gt = COCO()
gt.dataset = {
    "images": [{"id": 1, "width": 64, "height": 64}, {"id": 2, "width": 64, "height": 64}],
    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 8, 20, 20], "area": 400, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [30, 4, 10, 30], "area": 300, "iscrowd": 0},
    ],
}
with contextlib.redirect_stdout(io.StringIO()):
    gt.createIndex()
    dt = gt.loadRes([
        {"image_id": 1, "category_id": 1, "bbox": [8, 8, 20, 20], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [30, 4, 10, 30], "score": 0.8},
    ])
    E = COCOeval(gt, dt, "bbox")
    E.evaluate()
    E.accumulate()
    E.summarize()
print(round(float(E.stats[0]), 6), dt_eval.COCOeval is COCOeval)
"""


def _run_blocked(blocked: set[str], code: str) -> subprocess.CompletedProcess:
    prelude = f"import sys\nfor _name in {sorted(blocked)!r}:\n    sys.modules[_name] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_coco_evaluation_runs_with_the_whole_extra_missing():
    result = _run_blocked(set(EXTRA_MODULES), EVALUATE_WITHOUT_TORCH)
    assert result.returncode == 0, result.stderr
    # image 1: a perfect match of class a; image 2: class b missed, a false positive of class a
    assert result.stdout.split() == ["0.5", "True"]


def _import_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: "), result.stderr
    assert "ModuleNotFoundError" not in result.stderr and "During handling" not in result.stderr
    return last


@pytest.mark.parametrize(
    ("code", "names"),
    [
        ("import dt_eval\ndt_eval.COCOEvaluator", "dt_eval.COCOEvaluator: module 'dt_config'"),
        ("import dt_eval\ndt_eval.inference_on_dataset", "dt_eval.inference_on_dataset: module 'dt_config'"),
        ("from dt_eval.sem_seg_evaluation import SemSegEvaluator", "evaluators: module 'dt_config'"),
        ("import dt_eval.box_proposals", "dt_eval.box_proposals (proposal recall): module 'torch'"),
    ],
)
def test_evaluators_without_the_extra_name_it_in_one_line(code, names):
    line = _import_error_line(_run_blocked(set(EXTRA_MODULES), code))
    assert names in line and INSTALL_HINT in line


@pytest.mark.parametrize(
    ("code", "names"),
    [
        (
            "import dt_eval\ndt_eval.inference_on_dataset(lambda x: x, [], None)",
            "dt_eval.inference_on_dataset: module 'torch'",
        ),
        (
            "from dt_eval.coco_format import convert_to_coco_dict\n"
            "convert_to_coco_dict([{'image_id': 1, 'height': 9, 'width': 9, 'file_name': 'a.png',\n"
            "    'annotations': [{'bbox': [0, 0, 4, 4], 'bbox_mode': 1, 'category_id': 0}]}],\n"
            "    {'thing_classes': ['a']})",
            "converting dataset dicts to COCO json: module 'dt_structures'",
        ),
    ],
)
def test_torch_missing_with_dt_config_present_is_one_line_too(code, names):
    line = _import_error_line(_run_blocked({"torch", "dt_structures"}, code))
    assert names in line and INSTALL_HINT in line
