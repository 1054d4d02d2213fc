"""dt-zoo's download layer: a verified, resumable, lock-protected, offline-capable file cache.

``download_file(url, expected=Expected(sha256=...))`` returns the cached file's path. The modules,
one concept each: ``env`` (``DT_CACHE``, ``DT_OFFLINE``, ``DT_ZOO_MIRROR``), ``urls`` (mirror rule,
cache path), ``lock`` (one download across processes), ``progress`` (tqdm bar), ``transfer`` (HTTP
with ``Range`` resume and retries), ``verify`` (size, sha256, md5 prefix, sidecar), ``fetch`` (the
steps tying them together).
"""

from .env import CACHE_ENV, MIRROR_ENV, OFFLINE_ENV, cache_root, offline_mode, zoo_cache_dir
from .fetch import download_file, part_path
from .transfer import DEFAULT_RETRY, RetryPolicy
from .urls import apply_mirror, cache_path
from .verify import Expected, sidecar_path

__all__ = [
    "CACHE_ENV",
    "DEFAULT_RETRY",
    "MIRROR_ENV",
    "OFFLINE_ENV",
    "Expected",
    "RetryPolicy",
    "apply_mirror",
    "cache_path",
    "cache_root",
    "download_file",
    "offline_mode",
    "part_path",
    "sidecar_path",
    "zoo_cache_dir",
]
