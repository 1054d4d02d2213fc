"""Access to the compiled kernels (``dt_ops._C``) with actionable errors.

Tensors are handed to the extension through DLPack (nanobind ``nb::ndarray``); outputs are always
allocated here, by torch, so torch's allocators (and CUDA streams) are used. CPU kernels receive the
thread count of ``torch.get_num_threads()``; CUDA kernels the current stream as an integer.
"""

from __future__ import annotations

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
