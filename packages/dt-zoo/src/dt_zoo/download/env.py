"""The environment variables of the download layer, read at call time (never cached at import).

* ``DT_CACHE``: cache root, default ``~/.cache/dt``; zoo files live under ``<root>/zoo``.
* ``DT_OFFLINE``: ``1`` (or ``true``/``yes``/``on``) never touches the network; ``0`` or unset allows it.
* ``DT_ZOO_MIRROR``: a base URL that replaces the scheme and host of every download URL
  (the rule is in :func:`dt_zoo.download.urls.apply_mirror`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ZooError

__all__ = [
    "CACHE_ENV",
    "MIRROR_ENV",
    "OFFLINE_ENV",
    "cache_root",
    "mirror_base",
    "offline_mode",
    "zoo_cache_dir",
]

CACHE_ENV = "DT_CACHE"
OFFLINE_ENV = "DT_OFFLINE"
MIRROR_ENV = "DT_ZOO_MIRROR"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def cache_root() -> Path:
    """``$DT_CACHE`` or ``~/.cache/dt`` (with ``~`` expanded)."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/dt").expanduser()


def zoo_cache_dir() -> Path:
    """Where downloaded zoo files are kept: ``<cache root>/zoo``."""
    return cache_root() / "zoo"


def offline_mode(offline: bool | None = None) -> bool:
    """``offline`` when given, else what ``$DT_OFFLINE`` says (unset: online)."""
    if offline is not None:
        return offline
    value = os.environ.get(OFFLINE_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ZooError(f"{OFFLINE_ENV} must be 1 or 0, got {value!r}")


def mirror_base() -> str | None:
    """``$DT_ZOO_MIRROR`` when set and not empty."""
    return os.environ.get(MIRROR_ENV) or None
