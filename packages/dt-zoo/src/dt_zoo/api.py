"""The zoo's user functions: ``list_models``, ``info``, ``get_weights``.

Each takes ``manifest=`` (default: the packaged one, ``default_manifest()``), so a project or a test
can serve its own entries with ``load_manifest(path)``.
"""

from __future__ import annotations

from pathlib import Path

from .download import Expected, download_file
from .manifest import Manifest, ZooEntry, default_manifest

__all__ = ["get_weights", "info", "list_models"]


def list_models(task: str | None = None, *, manifest: Manifest | None = None) -> list[str]:
    """Names of the zoo's models in MODEL_ZOO.md's order, only those of ``task`` when given
    (one of ``dt_zoo.TASKS``: ``detection``, ``instance-segmentation``, ``keypoints``, ...)."""
    return (manifest or default_manifest()).names(task)


def info(name: str, *, manifest: Manifest | None = None) -> ZooEntry:
    """Everything the zoo knows of ``name``: config, weights URL and digests, reported metrics, datasets.

    Raises:
        ZooError: unknown name (with the closest names).
    """
    return (manifest or default_manifest()).get(name)


def get_weights(
    name: str, *, offline: bool | None = None, progress: bool = True, manifest: Manifest | None = None
) -> Path:
    """The local, verified weights file of ``name``, downloaded into ``$DT_CACHE/zoo`` if needed.

    Args:
        offline: never use the network (``None``: ``$DT_OFFLINE``); a missing file then raises a
            line naming the URL to fetch and the path to save it as.
        progress: show a download progress bar on a terminal.

    Raises:
        ZooError: unknown name, offline and not cached, download or verification failed.
    """
    entry = info(name, manifest=manifest)
    weights = entry.weights
    expected = Expected(sha256=weights.sha256, md5_prefix=weights.md5_prefix, size=weights.size)
    return download_file(
        weights.urls, expected=expected, offline=offline, progress=progress, description=entry.name
    )
