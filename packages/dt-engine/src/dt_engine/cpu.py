"""CPU settings training needs: denormal floats flushed to zero, the number of intra-op threads."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

import dt_ops

__all__ = ["configure_cpu", "flush_denormals"]


def _flushes_denormals() -> bool:
    return float((torch.tensor([1e-40]) * 1.0).item()) == 0.0  # 1e-40 is a float32 denormal


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Within the block, denormal floats are flushed to zero on the CPU, on every thread of torch's
    OpenMP team (``dt_ops.set_flush_denormal``: torch's own setting reaches the calling thread only);
    the setting is restored after.

    From-scratch training produces tiny gradients and optimizer moments; without flushing, the
    first training steps of the demo ran several times slower on the x86 denormal path. Every
    ``DefaultTrainer.train`` runs inside it, so a run and its repetition compute the same numbers.
    """
    saved = _flushes_denormals()
    dt_ops.set_flush_denormal(True)
    try:
        yield
    finally:
        dt_ops.set_flush_denormal(saved)


@contextlib.contextmanager
def configure_cpu(num_threads: int | None = None) -> Iterator[int]:
    """Within the block: ``num_threads`` intra-op threads (default: every core) and denormal floats
    flushed to zero; both restored afterwards. Yields the number of threads. Enter it after the
    heavy imports (dt_models, dt_data) and before building a model."""
    threads = num_threads if num_threads is not None else max(1, len(os.sched_getaffinity(0)))
    if threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {threads}")
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with flush_denormals():
            yield threads
    finally:
        torch.set_num_threads(saved_threads)
