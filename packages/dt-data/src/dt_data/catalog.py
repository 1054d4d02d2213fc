"""Global registries of datasets (name -> function returning ``list[dict]``) and their metadata.

Same contract as detectron2's ``DatasetCatalog``/``MetadataCatalog``: a dataset is registered by name
with a zero-argument function returning dataset dicts; metadata is a per-name attribute bag
(``thing_classes``, ``thing_dataset_id_to_contiguous_id``, ``stuff_classes``, ``keypoint_names``,
``keypoint_flip_map``, ``evaluator_type``, ...). Unknown names raise ``KeyError`` listing close names.
"""

from __future__ import annotations

from collections import UserDict
from collections.abc import Callable
from typing import Any

from dt_config import close_matches

__all__ = ["DatasetCatalog", "Metadata", "MetadataCatalog"]


def _unknown(kind: str, name: str, known: list[str]) -> KeyError:
    close = close_matches(name, known, n=5)
    hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
    return KeyError(f"{kind} {name!r} is not registered.{hint} ({len(known)} registered)")


class _DatasetCatalog(UserDict):
    """Maps a dataset name to a function returning its dataset dicts (``list[dict]``)."""

    def register(self, name: str, func: Callable[[], list[dict]]) -> None:
        if not callable(func):
            raise TypeError(f"DatasetCatalog.register: func must be callable, got {type(func).__name__}")
        if name in self:
            raise ValueError(f"DatasetCatalog.register: dataset {name!r} is already registered")
        self[name] = func

    def get(self, name: str) -> list[dict]:  # type: ignore[override]
        """Call the registered function of ``name`` and return its dataset dicts."""
        try:
            func = self[name]
        except KeyError:
            raise _unknown("Dataset", name, sorted(self.keys())) from None
        dicts = func()
        if not isinstance(dicts, list):
            raise TypeError(
                f"dataset {name!r}: the registered function returned {type(dicts).__name__}, not list"
            )
        return dicts

    def list(self) -> list[str]:
        return list(self.keys())

    def remove(self, name: str) -> None:
        self.pop(name)

    def __str__(self) -> str:
        return f"DatasetCatalog(registered datasets: {', '.join(self.keys())})"

    __repr__ = __str__


DatasetCatalog = _DatasetCatalog()


class Metadata:
    """Attribute bag of one dataset's metadata; attributes are write-once (re-setting to a different
    value raises), like detectron2's. ``thing_colors`` etc. are plain attributes."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        object.__setattr__(self, "name", name)
        self.set(**kwargs)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        known = [k for k in self.__dict__ if k != "name"]
        close = close_matches(key, known, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise AttributeError(
            f"metadata of dataset {self.name!r} has no attribute {key!r}.{hint} Available: {sorted(known)}"
        )

    def __setattr__(self, key: str, value: Any) -> None:
        if key == "name":
            raise AttributeError("Metadata.name cannot be changed")
        if key in self.__dict__:
            old = self.__dict__[key]
            if not _same(old, value):
                raise ValueError(
                    f"metadata {key!r} of dataset {self.name!r} cannot be set to a different value "
                    f"({old!r} != {value!r})"
                )
            return
        object.__setattr__(self, key, value)

    def set(self, **kwargs: Any) -> Metadata:
        """Set several attributes; returns self."""
        for key, value in kwargs.items():
            setattr(self, key, value)
        return self

    def get(self, key: str, default: Any = None) -> Any:
        return self.__dict__.get(key, default)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __repr__(self) -> str:
        return f"Metadata({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (ValueError, TypeError):  # e.g. numpy arrays
        return a is b


class _MetadataCatalog(UserDict):
    """Maps a dataset name to its :class:`Metadata` (created on first ``get``)."""

    def get(self, name: str) -> Metadata:  # type: ignore[override]
        if name not in self:
            self[name] = Metadata(name=name)
        return self[name]

    def list(self) -> list[str]:
        return list(self.keys())

    def remove(self, name: str) -> None:
        self.pop(name)

    def __str__(self) -> str:
        return f"MetadataCatalog(registered metadata: {', '.join(self.keys())})"

    __repr__ = __str__


MetadataCatalog = _MetadataCatalog()
