"""``file_lock``: an exclusive ``fcntl.flock`` lock, so concurrent processes download a file once.

DDP ranks (or two shells) asking for the same file: the first takes the lock and downloads, the
others block until it is released, then find the finished file. The kernel releases the lock when
its holder exits, even by a crash, so a killed download never leaves the others waiting. POSIX only.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path

__all__ = ["file_lock", "lock_path"]

logger = logging.getLogger(__name__)


def lock_path(target: Path) -> Path:
    """The lock file guarding ``target``: ``<target>.lock`` (kept after use: deleting it would race)."""
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def file_lock(target: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``target`` for the ``with`` block, waiting for it if it is taken."""
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process downloading %s", target)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
