"""``dt env``: what a bug report needs about this machine and installation, as a two-column table.

Python, platform, the installed dt packages and their key dependencies, torch's CPU capability and
thread counts, the dt-ops build (extension file, CUDA kernels or not) and CUDA devices.
Installed through dt-engine's own ``dt_engine.command`` entry point.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from importlib import metadata

__all__ = ["COMMAND", "EnvCommand", "environment_rows"]

PACKAGES = (
    "dt-config",
    "dt-ops",
    "dt-structures",
    "dt-data",
    "dt-eval",
    "dt-models",
    "dt-engine",
    "dt-zoo",
    "torch",
    "numpy",
    "pycocotools",
    "pillow",
    "opencv-python",
    "attrs",
    "cattrs",
)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _dt_ops_rows() -> list[tuple[str, str]]:
    try:
        from dt_ops import _native
    except ImportError as err:
        return [("dt-ops build", f"cannot load its extension ({err})")]
    extension = getattr(_native._C, "__file__", "?")
    kernels = "CPU + CUDA" if _native.has_cuda() else "CPU only"
    return [("dt-ops build", f"{kernels} ({extension})")]


def environment_rows() -> list[tuple[str, str]]:
    """``(name, value)`` rows describing this environment."""
    import torch

    rows = [
        ("python", sys.version.split()[0] + f" ({sys.executable})"),
        ("platform", platform.platform()),
    ]
    rows += [(name, _version(name)) for name in PACKAGES]
    rows += [
        ("cpu capability", torch.backends.cpu.get_cpu_capability()),
        ("cpu count", str(os.cpu_count())),
        ("torch threads", f"{torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op"),
        ("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "unset")),
    ]
    rows += _dt_ops_rows()
    rows.append(("torch CUDA", torch.version.cuda or "none (CPU build)"))
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            memory = props.total_memory / 2**30
            rows.append((f"GPU {index}", f"{props.name}, {memory:.1f} GiB, sm_{props.major}{props.minor}"))
    else:
        rows.append(("GPUs", "none available"))
    return rows


class EnvCommand:
    """``dt env``: versions, CPU capability, threads, dt-ops build and CUDA information."""

    name = "env"
    summary = "print versions, CPU capability, threads, the dt-ops build and CUDA information"
    example = "dt env"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--debug", action="store_true", help="show the traceback of an error")

    def run(self, args: argparse.Namespace) -> int:
        rows = environment_rows()
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"{name.ljust(width)}  {value}")
        return 0


COMMAND = EnvCommand()
