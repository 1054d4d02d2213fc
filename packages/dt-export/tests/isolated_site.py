"""A folder holding only some distributions (and what they require), for a Python started with
``-I -S``: no site-packages, so nothing else installed here (dt-models, dt-engine) is importable."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path


def _requirements(name: str) -> list[str]:
    names = []
    for requirement in metadata.requires(name) or []:
        if "extra ==" in requirement:
            continue
        names.append(re.match(r"\s*([A-Za-z0-9._-]+)", requirement).group(1))
    return names


def build_isolated_site(folder: Path, distributions: list[str]) -> Path:
    """Symlink the top-level modules and ``.dist-info`` of ``distributions`` and their dependencies
    into ``folder``; returns it (put it first on ``sys.path`` of a ``python -I -S`` process)."""
    folder.mkdir(parents=True, exist_ok=True)
    todo, seen = list(distributions), set()
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:  # an optional requirement (setuptools) not installed here
            continue
        for file in dist.files or []:
            top = Path(str(file)).parts[0]
            source = Path(str(dist.locate_file(top)))
            target = folder / top
            if top == ".." or top.endswith(".pth") or target.exists() or not source.exists():
                continue
            target.symlink_to(source)
        todo.extend(_requirements(name))
    return folder
