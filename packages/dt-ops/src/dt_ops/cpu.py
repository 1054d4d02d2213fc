"""CPU floating-point settings for every thread that runs CPU work."""

from __future__ import annotations

import torch

from dt_ops._native import _C

__all__ = ["set_flush_denormal"]


def set_flush_denormal(flushed: bool) -> bool:
    """``torch.set_flush_denormal`` for the calling thread *and* every thread of torch's OpenMP team
    (torch's own sets the calling thread only, so workers started earlier kept computing denormals:
    training steps of random weights grew 2-3x slower from the fifth step on). Returns whether the CPU
    supports it (x86: flush-to-zero and denormals-are-zero)."""
    torch.set_flush_denormal(flushed)
    return bool(_C.set_denormals_flushed(bool(flushed), torch.get_num_threads()))
