"""Download URLs: the mirror rewrite and the cache path of a URL.

The mirror rule: a URL is ``scheme://host[:port]/path[?query]``. With a mirror base ``M`` (from
``$DT_ZOO_MIRROR``), the URL fetched is ``M`` without its trailing ``/``, then ``/path[?query]``::

    https://dl.fbaipublicfiles.com/detectron2/COCO-Detection/x/1/model_final_abc.pkl
    DT_ZOO_MIRROR=http://mirror.lan:8080/zoo
    -> http://mirror.lan:8080/zoo/detectron2/COCO-Detection/x/1/model_final_abc.pkl

``M`` may be ``http://``, ``https://`` or ``file://`` (a directory laid out like the original host).

The cache path of a URL is the zoo cache directory joined with the URL's path (never the host, so a
file downloaded through a mirror is the same cached file): ``<cache>/zoo/detectron2/COCO-...pkl``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from ..errors import ZooError
from .env import MIRROR_ENV, mirror_base, zoo_cache_dir

__all__ = ["apply_mirror", "cache_path"]

_SCHEMES = ("http", "https", "file")


def apply_mirror(url: str, mirror: str | None = None) -> str:
    """``url`` with scheme and host replaced by ``mirror`` (default ``$DT_ZOO_MIRROR``; unset: unchanged)."""
    mirror = mirror if mirror is not None else mirror_base()
    if not mirror:
        return url
    base = urlsplit(mirror)
    if base.scheme not in _SCHEMES or not (base.netloc or base.path):
        raise ZooError(f"{MIRROR_ENV} must be an http://, https:// or file:// base URL, got {mirror!r}")
    parts = urlsplit(url)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    return mirror.rstrip("/") + "/" + tail.lstrip("/")


def cache_path(url: str, root: Path | None = None) -> Path:
    """Where the file of ``url`` is cached: ``root`` (default the zoo cache dir) / the URL's path."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ZooError(f"cannot download {url!r}: the scheme must be http, https or file")
    segments = [s for s in PurePosixPath(unquote(parts.path)).parts if s != "/"]
    if not segments or any(s in (".", "..") for s in segments):
        raise ZooError(f"cannot cache {url!r}: its path must name a file and contain no '.' or '..'")
    return (root if root is not None else zoo_cache_dir()).joinpath(*segments)
