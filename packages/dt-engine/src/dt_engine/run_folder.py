"""A run folder belongs to one run: ``dt train`` refuses one that holds a run unless told what to do.

``--resume`` continues the run in it; ``--overwrite`` deletes that run's files (config, checkpoints,
metrics, TensorBoard events) first, so no second run is appended to ``metrics.jsonl``. Both
decisions are taken after every other check passed, so a failed start leaves the folder untouched.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from .errors import InputError

__all__ = ["RUN_FILE_PATTERNS", "claim_run_folder", "run_files"]

RUN_FILE_PATTERNS = (
    "config.yaml",
    "metrics.jsonl",
    "last_checkpoint",
    "model_*.pth",
    "events.out.tfevents.*",
)
"""Files ``dt train`` writes into ``output_dir`` (what makes a folder a run folder)."""


def run_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that a ``dt train`` run wrote (``RUN_FILE_PATTERNS``), sorted."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and any(fnmatch.fnmatch(p.name, g) for g in RUN_FILE_PATTERNS)
    )


def claim_run_folder(folder: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse a folder holding a run unless ``resume`` or ``overwrite``; with ``overwrite`` delete that
    run's files. Raises ``InputError`` (one line naming the folder and what to pass)."""
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other: continue the run or replace it")
    found = run_files(folder)
    if not found or resume:
        return
    if not overwrite:
        names = ", ".join(p.name for p in found[:4]) + (", ..." if len(found) > 4 else "")
        raise InputError(
            f"output folder {folder} already holds a run ({names}); pass --resume to continue it, "
            "--overwrite to replace it, or choose another output_dir"
        )
    for path in found:
        path.unlink()
