"""Access to the compiled kernels (``dt_ops._C``) with actionable errors.

Tensors are handed to the extension through DLPack (nanobind ``nb::ndarray``); outputs are always
allocated here, by torch, so torch's allocators (and CUDA streams) are used. CPU kernels receive the
thread count of ``torch.get_num_threads()``; CUDA kernels the current stream as an integer.
"""

from __future__ import annotations

import ctypes
import re
from typing import Any

import torch

__all__ = ["call", "has_cuda"]

_CUDA_HELP = (
    "this dt-ops build has no CUDA kernels. Reinstall it from source on a machine with the CUDA toolkit "
    "(nvcc) and a GPU, or force the CUDA build with: "
    "DT_OPS_CUDA=ON pip install --no-binary dt-ops --force-reinstall dt-ops"
)

try:
    from dt_ops import _C
except ImportError as error:  # pragma: no cover - only on a broken installation
    raise ImportError(
        "dt_ops could not load its compiled extension dt_ops._C "
        f"({error}). Reinstall dt-ops for this Python: pip install --force-reinstall dt-ops"
    ) from error


_OPENMP_LIBRARY = re.compile(r"/lib(gomp|iomp5|omp)[^/]*\.so[^/]*$")
_OPENMP_ENTRY_POINTS = ("GOMP_parallel", "omp_get_thread_num", "omp_get_num_threads")


def _share_torchs_openmp() -> bool:
    """Run the CPU kernels' threads on torch's own OpenMP team (found among the libraries this process
    loaded): a thread of their own waits milliseconds for its core after each torch op, where
    OpenMP's worker still spin-waits. Without it (another platform, another parallel backend) the
    kernels start their own threads. Returns whether the team is shared."""
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return False
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = dict.fromkeys(line.split()[-1] for line in maps if _OPENMP_LIBRARY.search(line.rstrip()))
    except OSError:
        return False
    for path in paths:
        try:
            library = ctypes.CDLL(path)
            entry_points = [
                ctypes.cast(getattr(library, name), ctypes.c_void_p).value for name in _OPENMP_ENTRY_POINTS
            ]
        except (OSError, AttributeError):
            continue
        _C.use_openmp_runtime(*entry_points)
        return True
    return False


SHARES_TORCH_OPENMP = _share_torchs_openmp()


def has_cuda() -> bool:
    """Whether this build of dt-ops contains the CUDA kernels."""
    return bool(_C.has_cuda)


def _array(value: Any) -> Any:
    # DLPack refuses tensors that require grad; the kernels never need the autograd graph.
    return value.detach() if isinstance(value, torch.Tensor) else value


def call(name: str, device: torch.device, *args: Any) -> Any:
    """Run kernel ``name`` on ``device``: ``_C.<name>(*args, threads)`` on CPU, ``_C.<name>_cuda(*args,
    stream)`` on CUDA. Tensor arguments must already be contiguous and of the kernel's dtype."""
    converted = [_array(a) for a in args]
    if device.type == "cpu":
        return getattr(_C, name)(*converted, torch.get_num_threads())
    if device.type == "cuda":
        if not has_cuda():
            raise RuntimeError(f"dt_ops.{name} got CUDA tensors but {_CUDA_HELP}")
        stream = torch.cuda.current_stream(device).cuda_stream
        return getattr(_C, f"{name}_cuda")(*converted, stream)
    raise ValueError(f"dt_ops.{name} supports cpu and cuda tensors, got device {device}")
