"""dt's config files of the zoo models, packaged under ``dt_zoo/configs/<name>.yaml``.

Each is a complete ``ExperimentConfig`` (model, data, solver, test), first translated from
detectron2's file of the same name by ``tools/make_configs.py`` and owned by dt since; those of
detectron2's Python LazyConfigs (``new_baselines/``) are written for dt on a translated ``_base_``. An
entry's ``config`` is ``null`` in the manifest while dt lacks its model family.

``config_source`` is dt-zoo's ``dt_engine.config_source`` entry point: it lets every ``--config``
take a zoo name (``dt train --config COCO-Detection/faster_rcnn_R_50_FPN_3x``).
"""

from __future__ import annotations

from pathlib import Path

from dt_config import ConfigError, close_matches

from .errors import ZooError
from .manifest import Manifest, default_manifest

__all__ = ["CONFIG_DIR", "config_path", "config_source"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def config_path(name: str, *, manifest: Manifest | None = None) -> Path:
    """The dt config file of zoo model ``name``.

    Raises:
        ZooError: unknown name (with the closest names), or an entry without a dt config yet.
    """
    entry = (manifest or default_manifest()).get(name)
    if entry.config is None:
        why = (
            "an ImageNet backbone has none"
            if entry.task == "backbone"
            else f"dt cannot translate detectron2's {entry.detectron2_config} yet"
        )
        raise ZooError(
            f"zoo entry {entry.name!r} has no dt config ({why}); `dt zoo list` shows which have one"
        )
    return CONFIG_DIR / entry.config


def config_source(name: str) -> Path | None:
    """The zoo config for a ``--config`` value that is not a file; ``None`` if it is not a zoo name.

    A close miss of a zoo name (``COCO-Detection/faster_rcnn_R_50_FPN_3X``) is an error naming the
    closest names, rather than "file not found".

    Raises:
        ConfigError: a zoo entry without a dt config, or a near miss of a zoo name.
    """
    manifest = default_manifest()
    key = name.removesuffix(".yaml")
    if key in manifest.names():
        try:
            return config_path(key, manifest=manifest)
        except ZooError as err:
            raise ConfigError([f"{name}: {err}"]) from None
    with_config = [e.name for e in manifest.entries if e.config is not None]
    guesses = close_matches(key, with_config, n=3) if "/" in key else []
    if guesses:
        hint = " or ".join(repr(g) for g in guesses)
        raise ConfigError([f"{name}: no such config file or zoo model (did you mean {hint}?)"])
    return None
