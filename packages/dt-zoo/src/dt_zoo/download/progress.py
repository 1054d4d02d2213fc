"""``progress_bar``: the tqdm bar of a download (bytes done and total, speed, ETA).

Shown only when asked for and when the stream is a terminal (logs and CI stay clean).
"""

from __future__ import annotations

import sys
from typing import IO, Any

__all__ = ["progress_bar"]


def progress_bar(description: str, *, enabled: bool, file: IO[str] | None = None) -> Any:
    """A ``tqdm`` byte counter for ``description``; a silent one unless ``enabled`` and ``file`` is a TTY.

    The caller sets the total with ``bar.reset(total=...)`` and advances with ``bar.update(n)``.
    """
    from tqdm import tqdm

    return tqdm(
        desc=description,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=file if file is not None else sys.stderr,
        disable=None if enabled else True,  # None: tqdm disables itself on a non-TTY
        leave=True,
    )
