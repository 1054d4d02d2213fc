"""The one-build-for-every-torch property and the CPU-only build's CUDA error."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import dt_ops
from dt_ops import _C, _native


def _needed_libraries(path: Path) -> list[str]:
    if shutil.which("readelf") is None:
        pytest.fail("readelf (binutils) is required to inspect the extension")
    dynamic = subprocess.run(["readelf", "-d", str(path)], check=True, capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic)


def test_extension_does_not_link_libtorch():
    needed = _needed_libraries(Path(_C.__file__))
    assert needed, "readelf found no dynamic dependencies at all"
    offending = [lib for lib in needed if re.match(r"lib(torch|c10|caffe2|cudart)", lib)]
    assert offending == []


def test_extension_has_no_undefined_torch_symbols():
    nm = shutil.which("nm")
    if nm is None:
        pytest.fail("nm (binutils) is required to inspect the extension")
    symbols = subprocess.run(
        [nm, "-D", "--undefined-only", _C.__file__], check=True, capture_output=True, text=True
    )
    assert not re.search(r"\b(c10|at|torch)\d*\w*::|_ZN(3c10|2at|5torch)", symbols.stdout)


@pytest.mark.skipif(_native.has_cuda(), reason="checks the message of a CPU-only build")
def test_cuda_tensor_on_cpu_build_explains_the_fix(monkeypatch):
    with pytest.raises(RuntimeError, match="DT_OPS_CUDA=ON"):
        _native.call("nms", torch.device("cuda"), torch.zeros(1, 4))


def test_version():
    assert dt_ops.__version__ == "0.1.0"
