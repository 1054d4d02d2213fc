"""DensePose's downloaded data files, read from the dt cache (``$DT_CACHE/densepose``, default
``~/.cache/dt/densepose``). dt never downloads them at run time: a missing file is one line naming
the path to put it at and the URL to fetch it from."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DENSEPOSE_DATA_URL", "MissingDataFileError", "cache_file", "densepose_cache_dir"]

DENSEPOSE_DATA_URL = "https://dl.fbaipublicfiles.com/densepose/data"
"""Where detectron2's DensePose project publishes its data files."""


class MissingDataFileError(FileNotFoundError):
    """A DensePose data file is not in the cache; the message says where to put it and where from."""


def densepose_cache_dir() -> Path:
    """``$DT_CACHE/densepose`` (``DT_CACHE`` defaults to ``~/.cache/dt``)."""
    root = os.environ.get("DT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "dt")
    return Path(root) / "densepose"


def cache_file(name: str) -> Path:
    """The cached data file ``name``; :class:`MissingDataFileError` if it is not there."""
    path = densepose_cache_dir() / name
    if not path.is_file():
        raise MissingDataFileError(
            f"DensePose data file {path} is missing: download {DENSEPOSE_DATA_URL}/{name} to that path"
        )
    return path
