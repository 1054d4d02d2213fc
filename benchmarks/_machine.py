"""What every benchmark reports about the machine it ran on: CPU model, torch's CPU capability,
threads, the kernel restrictions in the environment, and the load while it ran."""

from __future__ import annotations

import os
import platform

import torch

KERNEL_RESTRICTIONS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def cpu_model() -> str:
    """The ``model name`` of /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """JSON-ready description of this machine and of torch's CPU settings."""
    return {
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "kernel_restrictions": {k: os.environ[k] for k in KERNEL_RESTRICTIONS if k in os.environ},
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
