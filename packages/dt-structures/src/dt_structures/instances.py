"""``Instances``: the per-image bag of per-object fields (boxes, scores, classes, masks, ...)."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from ._utils import check_size_pair, is_integer_index

__all__ = ["Instances"]


def _describe(value: Any) -> str:
    """A one-line description of a field for ``repr``."""
    if isinstance(value, torch.Tensor):
        shape = ", ".join(str(s) for s in value.shape)
        return f"Tensor[{shape}] {str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, list):
        return f"list[{len(value)}]"
    if isinstance(getattr(value, "tensor", None), torch.Tensor):
        shape = ", ".join(str(s) for s in value.tensor.shape)
        return f"{type(value).__name__}[{shape}]"
    return f"{type(value).__name__}(len={len(value)})"


def _index_list(values: list, item: Any) -> list:
    """Index a list field like a tensor: by slice, bool mask or integer indices."""
    if isinstance(item, slice):
        return values[item]
    if isinstance(item, torch.Tensor):
        if item.dtype == torch.bool:
            if item.shape != (len(values),):
                raise IndexError(f"bool mask of shape {tuple(item.shape)} for a list field of {len(values)}")
            item = item.nonzero().flatten()
        item = item.tolist()
    return [values[i] for i in item]


class Instances:
    """The objects found in (or annotated on) one image, stored as named fields.

    Every field (a ``Tensor``, ``Boxes``, ``BitMasks``, a list, ...) holds one entry per object,
    so all fields have the same length; setting a field of another length raises ``ValueError``.
    Fields are read and written as attributes or with ``get``/``set``::

        inst = Instances((480, 640), scores=torch.rand(3))
        inst.pred_boxes = Boxes(torch.rand(3, 4))
        confident = inst[inst.scores > 0.5]   # indexes every field
        "pred_boxes" in inst, inst.has("pred_masks"), len(inst)

    Names starting with ``_`` are not fields.
    """

    def __init__(self, image_size: tuple[int, int], **fields: Any):
        """
        Args:
            image_size: (height, width) of the image.
            fields: initial fields, as ``name=value``.
        """
        self._image_size = check_size_pair(image_size, "image_size")
        self._fields: dict[str, Any] = {}
        for name, value in fields.items():
            self.set(name, value)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width)."""
        return self._image_size

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, value)
        else:
            self.set(name, value)

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails; read __dict__ directly so that copy/pickle,
        # which probe attributes before _fields exists, get an AttributeError
        fields = self.__dict__.get("_fields")
        if fields is None or name not in fields:
            raise AttributeError(f"Cannot find field '{name}' in the given Instances")
        return fields[name]

    def set(self, name: str, value: Any) -> None:
        """Set field ``name``; ``len(value)`` must equal the length of the other fields."""
        if not isinstance(name, str) or not name or name.startswith("_"):
            raise ValueError(f"field name must be a non-empty str not starting with '_', got {name!r}")
        if hasattr(Instances, name):
            raise ValueError(f"'{name}' is an attribute of Instances and cannot be a field name")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                length = len(value)
        except TypeError:
            raise TypeError(
                f"field '{name}' must have a length (Tensor, list, Boxes, ...), got {type(value).__name__}"
            ) from None
        others = [k for k in self._fields if k != name]
        if others:
            expected = len(self._fields[others[0]])
            if length != expected:
                raise ValueError(
                    f"field '{name}' has length {length}, but the other fields of this Instances "
                    f"(e.g. '{others[0]}') have length {expected}"
                )
        self._fields[name] = value

    def has(self, name: str) -> bool:
        """Whether field ``name`` exists."""
        return name in self._fields

    def __contains__(self, name: str) -> bool:
        return name in self._fields

    def remove(self, name: str) -> None:
        """Remove field ``name``."""
        if name not in self._fields:
            raise KeyError(f"Instances has no field '{name}'")
        del self._fields[name]

    def get(self, name: str) -> Any:
        """The value of field ``name``."""
        if name not in self._fields:
            raise KeyError(f"Instances has no field '{name}'")
        return self._fields[name]

    def get_fields(self) -> dict[str, Any]:
        """The dict mapping field names to values, itself (as detectron2), not a copy.

        Changes to the dict change this object and skip the length check of :meth:`set`; take
        ``dict(inst.get_fields())`` for a copy.
        """
        return self._fields

    def to(self, *args: Any, **kwargs: Any) -> Instances:
        """New Instances whose fields that have a ``to`` method are moved with ``to(*args, **kwargs)``."""
        ret = Instances(self._image_size)
        for name, value in self._fields.items():
            if hasattr(value, "to"):
                value = value.to(*args, **kwargs)
            ret.set(name, value)
        return ret

    def __getitem__(self, item: int | slice | torch.Tensor | Sequence[int]) -> Instances:
        """New Instances with every field indexed by ``item`` (int, slice, bool mask or index tensor).

        An int selects one object and keeps it as an Instances of length 1.
        """
        if is_integer_index(item):
            n = len(self)
            index = int(item)
            if index >= n or index < -n:
                raise IndexError(f"Instances index {index} out of range for length {n}")
            item = slice(index, None, n)  # one element, but every field type supports slices
        ret = Instances(self._image_size)
        for name, value in self._fields.items():
            ret.set(name, _index_list(value, item) if isinstance(value, list) else value[item])
        return ret

    def __len__(self) -> int:
        for value in self._fields.values():
            # __len__ rather than len(): len() must return an int, which tracing cannot follow
            return value.__len__()
        raise NotImplementedError("an Instances without fields has no length")

    def __iter__(self):
        raise TypeError("Instances is not iterable; index it (inst[i]) or read its fields")

    @staticmethod
    def cat(instance_lists: Sequence[Instances]) -> Instances:
        """Concatenate Instances of the same image size and the same field names.

        Tensors are concatenated with ``torch.cat``, lists are chained, other field types with
        their ``cat`` class method. A list of one Instances returns that object itself (as detectron2).
        """
        if not isinstance(instance_lists, (list, tuple)) or len(instance_lists) == 0:
            raise ValueError("instance_lists must be a non-empty list of Instances")
        for i, inst in enumerate(instance_lists):
            if not isinstance(inst, Instances):
                raise TypeError(f"instance_lists[{i}] must be Instances, got {type(inst).__name__}")
        first = instance_lists[0]
        if len(instance_lists) == 1:
            return first
        names = list(first._fields)
        for i, inst in enumerate(instance_lists[1:], start=1):
            if not any(isinstance(s, torch.Tensor) for s in first.image_size) and (
                tuple(inst.image_size) != tuple(first.image_size)
            ):
                raise ValueError(
                    f"instance_lists[{i}] has image_size {inst.image_size}, expected {first.image_size}"
                )
            if set(inst._fields) != set(names):
                diff = sorted(set(inst._fields) ^ set(names))
                raise ValueError(f"instance_lists[{i}] has different fields than instance_lists[0]: {diff}")
        ret = Instances(first.image_size)
        for name in names:
            values = [inst._fields[name] for inst in instance_lists]
            v0 = values[0]
            if isinstance(v0, torch.Tensor):
                merged = torch.cat(values, dim=0)
            elif isinstance(v0, list):
                merged = list(itertools.chain(*values))
            elif hasattr(type(v0), "cat"):
                merged = type(v0).cat(values)
            else:
                raise TypeError(f"field '{name}' of type {type(v0).__name__} cannot be concatenated")
            ret.set(name, merged)
        return ret

    def __repr__(self) -> str:
        n = len(self) if self._fields else 0
        fields = ", ".join(f"{k}: {_describe(v)}" for k, v in self._fields.items())
        h, w = self._image_size
        return f"Instances(num_instances={n}, image_height={h}, image_width={w}, fields=[{fields}])"

    __str__ = __repr__
