"""Random augmentation policies that return deterministic transforms (detectron2 semantics).

An :class:`Augmentation` reads the inputs it needs (``input_args``, by default ``("image",)``) from an
:class:`AugInput`, draws its parameters from an explicit ``np.random.Generator`` and returns a
:class:`~dt_data.transforms.transform.Transform`, which is then applied to the input and can be
replayed on boxes, polygons, keypoints and segmentation.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from .transform import Transform, TransformList

__all__ = ["AugInput", "Augmentation", "AugmentationList", "StandardAugInput", "apply_augmentations"]


@functools.cache
def _accepts_rng(cls: type) -> bool:
    try:
        return "rng" in inspect.signature(cls.get_transform).parameters
    except (TypeError, ValueError):
        return False


def as_generator(rng: np.random.Generator | None) -> np.random.Generator:
    """``rng`` itself, or a fresh OS-seeded generator when None (non-reproducible)."""
    if rng is None:
        return np.random.default_rng()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    return rng


class Augmentation:
    """A random policy: ``get_transform(*inputs, rng)`` returns a :class:`Transform`.

    Subclasses list the :class:`AugInput` attributes they read in ``input_args`` and draw randomness
    only from the ``rng`` keyword. detectron2-style subclasses without ``rng`` still work (they use
    whatever randomness they use).
    """

    input_args: tuple[str, ...] = ("image",)

    def _init(self, params: dict[str, Any] | None = None) -> None:
        for key, value in (params or {}).items():
            if key != "self" and not key.startswith("_"):
                setattr(self, key, value)

    def get_transform(self, *args: Any, rng: np.random.Generator | None = None) -> Transform:
        raise NotImplementedError

    def __call__(self, aug_input: AugInput, rng: np.random.Generator | None = None) -> Transform:
        """Draw a transform for ``aug_input``, apply it to ``aug_input`` in place, return it."""
        args = []
        for name in self.input_args:
            if not hasattr(aug_input, name):
                raise AttributeError(
                    f"{type(self).__name__} needs input {name!r}, "
                    f"which {type(aug_input).__name__} does not have"
                )
            args.append(getattr(aug_input, name))
        if _accepts_rng(type(self)):
            tfm = self.get_transform(*args, rng=as_generator(rng))
        else:
            tfm = self.get_transform(*args)
        if not isinstance(tfm, Transform):
            raise TypeError(f"{type(self).__name__}.get_transform must return a Transform, got {type(tfm)}")
        aug_input.transform(tfm)
        return tfm

    def _rand_range(
        self, rng: np.random.Generator, low: float = 1.0, high: float | None = None, size: Any = None
    ) -> Any:
        """Uniform in ``[0, low)`` or ``[low, high)``."""
        if high is None:
            low, high = 0.0, low
        return rng.uniform(low, high, size)

    def __repr__(self) -> str:
        try:
            sig = inspect.signature(type(self).__init__)
        except (TypeError, ValueError):
            return f"{type(self).__name__}()"
        items = []
        for name, param in sig.parameters.items():
            if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if not hasattr(self, name):
                continue
            value = getattr(self, name)
            if param.default is not param.empty and _same(value, param.default):
                continue
            items.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(items)})"

    __str__ = __repr__


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (ValueError, TypeError):
        return False


class _TransformToAug(Augmentation):
    """Wraps a fixed Transform so it can sit in an AugmentationList."""

    def __init__(self, tfm: Transform) -> None:
        self.tfm = tfm

    def get_transform(self, *args: Any, rng: np.random.Generator | None = None) -> Transform:
        return self.tfm

    def __repr__(self) -> str:
        return repr(self.tfm)


def _as_augmentation(aug: Augmentation | Transform) -> Augmentation:
    if isinstance(aug, Augmentation):
        return aug
    if isinstance(aug, Transform):
        return _TransformToAug(aug)
    raise TypeError(f"expected an Augmentation or a Transform, got {type(aug).__name__}")


class AugmentationList(Augmentation):
    """Applies a sequence of augmentations in order; returns the :class:`TransformList` of all."""

    def __init__(self, augs: Sequence[Augmentation | Transform]) -> None:
        self.augs = [_as_augmentation(a) for a in augs]

    def __call__(self, aug_input: AugInput, rng: np.random.Generator | None = None) -> TransformList:
        rng = as_generator(rng)
        return TransformList([aug(aug_input, rng) for aug in self.augs])

    def __repr__(self) -> str:
        return f"AugmentationList[{', '.join(map(repr, self.augs))}]"


class AugInput:
    """The inputs augmentations read and transform: ``image`` (``ndarray[H, W]`` or ``[H, W, C]``,
    uint8 or float), optional ``boxes`` (``ndarray[N, 4]`` XYXY_ABS) and ``sem_seg`` (``ndarray[H, W]``
    integer labels). ``transform`` updates them in place."""

    def __init__(
        self, image: np.ndarray, *, boxes: np.ndarray | None = None, sem_seg: np.ndarray | None = None
    ) -> None:
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
            raise ValueError(
                f"AugInput: image must be an ndarray [H, W] or [H, W, C], got "
                f"{getattr(image, 'shape', type(image).__name__)}"
            )
        if image.dtype == np.uint8 or np.issubdtype(image.dtype, np.floating):
            self.image = image
        else:
            raise TypeError(f"AugInput: image must be uint8 or floating point, got {image.dtype}")
        if sem_seg is not None and sem_seg.shape[:2] != image.shape[:2]:
            raise ValueError(
                f"AugInput: sem_seg shape {sem_seg.shape} does not match image {image.shape[:2]}"
            )
        self.boxes = boxes
        self.sem_seg = sem_seg

    def transform(self, tfm: Transform) -> None:
        """Apply ``tfm`` to every input held (modifies this object)."""
        self.image = tfm.apply_image(self.image)
        if self.boxes is not None:
            self.boxes = tfm.apply_box(self.boxes)
        if self.sem_seg is not None:
            self.sem_seg = tfm.apply_segmentation(self.sem_seg)

    def apply_augmentations(
        self, augmentations: Sequence[Augmentation | Transform], rng: np.random.Generator | None = None
    ) -> TransformList:
        return AugmentationList(augmentations)(self, rng)


StandardAugInput = AugInput


def apply_augmentations(
    augmentations: Sequence[Augmentation | Transform],
    inputs: AugInput | np.ndarray,
    rng: np.random.Generator | None = None,
) -> tuple[AugInput | np.ndarray, TransformList]:
    """Apply ``augmentations`` to an :class:`AugInput` (modified) or an image (a new array is
    returned); returns ``(inputs, transforms)``."""
    if isinstance(inputs, np.ndarray):
        aug_input = AugInput(inputs)
        tfms = aug_input.apply_augmentations(augmentations, rng)
        return aug_input.image, tfms
    return inputs, inputs.apply_augmentations(augmentations, rng)
