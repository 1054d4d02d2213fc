import json
import statistics
import subprocess
import sys

import pytest
import torch

import dt_structures
from dt_structures import BitMasks, RotatedBoxes, pairwise_iou_rotated

_IMPORT_PROBE = """
import json, sys, time
import torch
start = time.perf_counter()
import dt_structures
elapsed = time.perf_counter() - start
dt_ops_modules = sorted(m for m in sys.modules if m.split(".")[0] == "dt_ops")
print(json.dumps({"seconds": elapsed, "dt_ops": dt_ops_modules}))
"""


def _probe_import() -> dict:
    out = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_import_is_cheap_and_does_not_import_dt_ops():
    runs = [_probe_import() for _ in range(3)]
    assert all(r["dt_ops"] == [] for r in runs)
    assert statistics.median(r["seconds"] for r in runs) < 0.5


def test_all_is_complete():
    for name in dt_structures.__all__:
        assert hasattr(dt_structures, name), name
    assert isinstance(dt_structures.__version__, str)


def test_missing_dt_ops_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dt_ops", None)  # makes `import dt_ops` raise ImportError
    boxes = RotatedBoxes(torch.tensor([[5.0, 5.0, 2.0, 2.0, 0.0]]))
    with pytest.raises(ImportError, match=r'pip install "dt-structures\[ops\]"'):
        pairwise_iou_rotated(boxes, boxes)
    with pytest.raises(ImportError, match=r'pip install "dt-structures\[ops\]"'):
        BitMasks(torch.ones(1, 4, 4)).crop_and_resize(torch.tensor([[0.0, 0.0, 4.0, 4.0]]), 2)
