"""Errors caused by the user's input, reported by the ``dt`` command as one line with exit code 2."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["InputError", "check_writable_dir"]


class InputError(Exception):
    """Bad input (missing file, unknown dataset, unwritable folder): one line, no traceback."""


def check_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` if needed and check a file can be written in it; raises ``InputError`` otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".dt-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise InputError(f"output folder {path} is not writable ({reason})") from None
    return path
