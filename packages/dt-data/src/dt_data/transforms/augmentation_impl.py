"""Built-in augmentations, numerically matching detectron2's ``augmentation_impl.py``: same size
rounding, interpolation and crop placement for the same random draws (drawn here from an explicit
``np.random.Generator``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from PIL import Image

from .augmentation import AugInput, Augmentation, _as_augmentation, as_generator
from .transform import (
    BlendTransform,
    CropTransform,
    ExtentTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    ResizeTransform,
    RotationTransform,
    Transform,
    TransformList,
    VFlipTransform,
)

__all__ = [
    "FixedSizeCrop",
    "RandomApply",
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomCrop_CategoryAreaConstraint",
    "RandomExtent",
    "RandomFlip",
    "RandomLighting",
    "RandomRotation",
    "RandomSaturation",
    "Resize",
    "ResizeScale",
    "ResizeShortestEdge",
]

Generator = np.random.Generator


class RandomApply(Augmentation):
    """Apply ``tfm_or_aug`` with probability ``prob``."""

    def __init__(self, tfm_or_aug: Augmentation | Transform, prob: float = 0.5) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"RandomApply: prob must be in [0, 1], got {prob}")
        self.aug = _as_augmentation(tfm_or_aug)
        self.prob = prob

    def __call__(self, aug_input: AugInput, rng: Generator | None = None) -> Transform:
        rng = as_generator(rng)
        if rng.uniform(0.0, 1.0) < self.prob:
            return self.aug(aug_input, rng)
        return NoOpTransform()


class RandomFlip(Augmentation):
    """Flip horizontally (default) or vertically with probability ``prob``."""

    def __init__(self, prob: float = 0.5, *, horizontal: bool = True, vertical: bool = False) -> None:
        if horizontal == vertical:
            raise ValueError("RandomFlip: exactly one of horizontal and vertical must be True")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"RandomFlip: prob must be in [0, 1], got {prob}")
        self._init(locals())

    def get_transform(self, image: np.ndarray, *, rng: Generator) -> Transform:
        h, w = image.shape[:2]
        if self._rand_range(rng) < self.prob:
            return HFlipTransform(w) if self.horizontal else VFlipTransform(h)
        return NoOpTransform()


class Resize(Augmentation):
    """Resize to a fixed ``shape`` (h, w) or a square of side ``shape``."""

    def __init__(self, shape: int | tuple[int, int], interp: int = Image.BILINEAR) -> None:
        if isinstance(shape, int):
            shape = (shape, shape)
        self.shape = tuple(int(s) for s in shape)
        self.interp = interp

    def get_transform(self, image: np.ndarray, *, rng: Generator | None = None) -> Transform:
        return ResizeTransform(image.shape[0], image.shape[1], self.shape[0], self.shape[1], self.interp)


class ResizeShortestEdge(Augmentation):
    """Resize so the short edge equals a length drawn from ``short_edge_length`` (``"range"``: an
    integer in [min, max]; ``"choice"``: one of the values), unless the long edge would exceed
    ``max_size``, in which case the long edge becomes ``max_size``. A length of 0 is a no-op."""

    def __init__(
        self,
        short_edge_length: int | Sequence[int],
        max_size: int = sys.maxsize,
        sample_style: str = "range",
        interp: int = Image.BILINEAR,
    ) -> None:
        if sample_style not in ("range", "choice"):
            raise ValueError(
                f"ResizeShortestEdge: sample_style must be 'range' or 'choice', got {sample_style!r}"
            )
        if isinstance(short_edge_length, int):
            short_edge_length = (short_edge_length, short_edge_length)
        short_edge_length = tuple(int(s) for s in short_edge_length)
        if sample_style == "range" and len(short_edge_length) != 2:
            raise ValueError(
                f"ResizeShortestEdge: sample_style='range' needs (min, max), got {short_edge_length}"
            )
        self.short_edge_length = short_edge_length
        self.max_size = max_size
        self.sample_style = sample_style
        self.interp = interp

    @staticmethod
    def get_output_shape(oldh: int, oldw: int, short_edge_length: int, max_size: int) -> tuple[int, int]:
        """Target (h, w) for an input (oldh, oldw), rounded half up as detectron2 does."""
        size = short_edge_length * 1.0
        scale = size / min(oldh, oldw)
        if oldh < oldw:
            newh, neww = size, scale * oldw
        else:
            newh, neww = scale * oldh, size
        if max(newh, neww) > max_size:
            scale = max_size * 1.0 / max(newh, neww)
            newh, neww = newh * scale, neww * scale
        return int(newh + 0.5), int(neww + 0.5)

    def get_transform(self, image: np.ndarray, *, rng: Generator) -> Transform:
        h, w = image.shape[:2]
        if self.sample_style == "range":
            size = int(rng.integers(self.short_edge_length[0], self.short_edge_length[1] + 1))
        else:
            size = int(rng.choice(self.short_edge_length))
        if size == 0:
            return NoOpTransform()
        newh, neww = self.get_output_shape(h, w, size, self.max_size)
        return ResizeTransform(h, w, newh, neww, self.interp)


class ResizeScale(Augmentation):
    """Scale the target size (``target_height``, ``target_width``) by a factor drawn uniformly from
    [``min_scale``, ``max_scale``] and resize the image, keeping its aspect ratio, to fit inside it."""

    def __init__(
        self,
        min_scale: float,
        max_scale: float,
        target_height: int,
        target_width: int,
        interp: int = Image.BILINEAR,
    ) -> None:
        if min_scale > max_scale:
            raise ValueError(f"ResizeScale: min_scale {min_scale} > max_scale {max_scale}")
        self._init(locals())

    def _get_resize(self, image: np.ndarray, scale: float) -> Transform:
        input_size = image.shape[:2]
        target_scale_size = np.multiply((self.target_height, self.target_width), scale)
        output_scale = np.minimum(target_scale_size[0] / input_size[0], target_scale_size[1] / input_size[1])
        output_size = np.round(np.multiply(input_size, output_scale)).astype(int)
        return ResizeTransform(
            input_size[0], input_size[1], int(output_size[0]), int(output_size[1]), self.interp
        )

    def get_transform(self, image: np.ndarray, *, rng: Generator) -> Transform:
        return self._get_resize(image, rng.uniform(self.min_scale, self.max_scale))


class RandomCrop(Augmentation):
    """Crop a random window. ``crop_type``: ``"relative"`` (fraction (h, w) of the image),
    ``"relative_range"`` (fraction drawn uniformly in [crop_size, 1]), ``"absolute"`` (pixels, clamped
    to the image), ``"absolute_range"`` (pixels drawn in [crop_size[0], crop_size[1]] per side)."""

    def __init__(self, crop_type: str, crop_size: tuple[float, float]) -> None:
        if crop_type not in ("relative_range", "relative", "absolute", "absolute_range"):
            raise ValueError(
                f"RandomCrop: crop_type must be one of relative_range, relative, absolute, absolute_range; "
                f"got {crop_type!r}"
            )
        if len(crop_size) != 2:
            raise ValueError(f"RandomCrop: crop_size must have 2 values, got {crop_size}")
        if crop_type.startswith("relative") and not all(0 < c <= 1 for c in crop_size):
            raise ValueError(f"RandomCrop: relative crop_size must be in (0, 1], got {crop_size}")
        if crop_type == "absolute_range" and crop_size[0] > crop_size[1]:
            raise ValueError(
                f"RandomCrop: absolute_range needs crop_size[0] <= crop_size[1], got {crop_size}"
            )
        self.crop_type = crop_type
        self.crop_size = tuple(crop_size)

    def get_crop_size(self, image_size: tuple[int, int], rng: Generator) -> tuple[int, int]:
        """(crop_h, crop_w) for an image of ``image_size`` (h, w)."""
        h, w = image_size
        if self.crop_type == "relative":
            ch, cw = self.crop_size
            return int(h * ch + 0.5), int(w * cw + 0.5)
        if self.crop_type == "relative_range":
            crop_size = np.asarray(self.crop_size, dtype=np.float32)
            ch, cw = crop_size + rng.random(2) * (1 - crop_size)
            return int(h * ch + 0.5), int(w * cw + 0.5)
        if self.crop_type == "absolute":
            return min(int(self.crop_size[0]), h), min(int(self.crop_size[1]), w)
        lo, hi = int(self.crop_size[0]), int(self.crop_size[1])
        ch = int(rng.integers(min(h, lo), min(h, hi) + 1))
        cw = int(rng.integers(min(w, lo), min(w, hi) + 1))
        return ch, cw

    def get_transform(self, image: np.ndarray, *, rng: Generator) -> Transform:
        h, w = image.shape[:2]
        croph, cropw = self.get_crop_size((h, w), rng)
        h0 = int(rng.integers(h - croph + 1))
        w0 = int(rng.integers(w - cropw + 1))
        return CropTransform(w0, h0, cropw, croph)


class RandomCrop_CategoryAreaConstraint(Augmentation):
    """RandomCrop that retries (up to 10 times) until no single semantic category covers more than
    ``single_category_max_area`` of the crop (``ignored_category`` not counted)."""

    input_args = ("image", "sem_seg")

    def __init__(
        self,
        crop_type: str,
        crop_size: tuple[float, float],
        single_category_max_area: float = 1.0,
        ignored_category: int | None = None,
    ) -> None:
        self.crop_aug = RandomCrop(crop_type, crop_size)
        self.crop_type, self.crop_size = crop_type, tuple(crop_size)
        self.single_category_max_area = single_category_max_area
        self.ignored_category = ignored_category

    def get_transform(self, image: np.ndarray, sem_seg: np.ndarray, *, rng: Generator) -> Transform:
        if self.single_category_max_area >= 1.0:
            return self.crop_aug.get_transform(image, rng=rng)
        if sem_seg is None:
            raise ValueError("RandomCrop_CategoryAreaConstraint needs sem_seg in the AugInput")
        h, w = sem_seg.shape
        for _ in range(10):
            crop_size = self.crop_aug.get_crop_size((h, w), rng)
            y0 = int(rng.integers(h - crop_size[0] + 1))
            x0 = int(rng.integers(w - crop_size[1] + 1))
            window = sem_seg[y0 : y0 + crop_size[0], x0 : x0 + crop_size[1]]
            labels, cnt = np.unique(window, return_counts=True)
            if self.ignored_category is not None:
                cnt = cnt[labels != self.ignored_category]
            if len(cnt) > 1 and np.max(cnt) < np.sum(cnt) * self.single_category_max_area:
                break
        return CropTransform(x0, y0, crop_size[1], crop_size[0])


class FixedSizeCrop(Augmentation):
    """Crop a random ``crop_size`` (h, w) window (one uniform offset fraction for both axes, rounded);
    if the image is smaller and ``pad``, pad right/bottom with ``pad_value`` (``seg_pad_value`` for
    segmentation) up to ``crop_size``."""

    def __init__(
        self,
        crop_size: tuple[int, int],
        pad: bool = True,
        pad_value: float = 128.0,
        seg_pad_value: int = 255,
    ) -> None:
        self.crop_size = tuple(int(c) for c in crop_size)
        self.pad, self.pad_value, self.seg_pad_value = pad, pad_value, seg_pad_value

    def get_transform(self, image: np.ndarray, *, rng: Generator) -> Transform:
        input_size = image.shape[:2]
        output_size = self.crop_size
        max_offset = np.maximum(np.subtract(input_size, output_size), 0)
        offset = np.round(np.multiply(max_offset, rng.uniform(0.0, 1.0))).astype(int)
        tfms: list[Transform] = [
            CropTransform(
                int(offset[1]), int(offset[0]), output_size[1], output_size[0], input_size[1], input_size[0]
            )
        ]
        if self.pad:
            pad_size = np.maximum(np.subtract(output_size, input_size), 0)
            original_size = np.minimum(input_size, output_size)
            tfms.append(
                PadTransform(
                    0,
                    0,
                    int(pad_size[1]),
                    int(pad_size[0]),
                    int(original_size[1]),
                    int(original_size[0]),
                    self.pad_value,
                    self.seg_pad_value,
                )
            )
        return TransformList(tfms)


class RandomRotation(Augmentation):
    """Rotate by an angle (degrees CCW) drawn uniformly from ``angle`` = (min, max) (``"range"``) or
    chosen from a list (``"choice"``), around an optional relative ``center`` ((x, y) fractions; a range
    ((xmin, ymin), (xmax, ymax)) or a list of choices)."""

    def __init__(
        self,
        angle: float | Sequence[float],
        expand: bool = True,
        center: Sequence | None = None,
        sample_style: str = "range",
        interp: int | None = None,
    ) -> None:
        if sample_style not in ("range", "choice"):
            raise ValueError(
                f"RandomRotation: sample_style must be 'range' or 'choice', got {sample_style!r}"
            )
        self.is_range = sample_style == "range"
        if isinstance(angle, (float, int)):
            angle = (angle, angle)
        if center is not None and isinstance(center[0], (float, int)):
            center = (center, center)
        self.angle, self.expand, self.center = tuple(angle), expand, center
        self.sample_style, self.interp = sample_style, interp

    def get_transform(self, image: np.ndarray, *, rng: Generator) -> Transform:
        h, w = image.shape[:2]
        center = None
        if self.is_range:
            angle = rng.uniform(self.angle[0], self.angle[1])
            if self.center is not None:
                center = (
                    rng.uniform(self.center[0][0], self.center[1][0]),
                    rng.uniform(self.center[0][1], self.center[1][1]),
                )
        else:
            angle = float(rng.choice(self.angle))
            if self.center is not None:
                center = self.center[int(rng.integers(len(self.center)))]
        if center is not None:
            center = (w * center[0], h * center[1])
        if angle % 360 == 0:
            return NoOpTransform()
        return RotationTransform(h, w, angle, expand=self.expand, center=center, interp=self.interp)


class RandomExtent(Augmentation):
    """Take a random sub-/super-rectangle of the image: scale its extent by a factor in
    ``scale_range`` and shift its centre by up to ``shift_range`` (fractions of w, h) / 2."""

    def __init__(self, scale_range: tuple[float, float], shift_range: tuple[float, float]) -> None:
        self.scale_range, self.shift_range = tuple(scale_range), tuple(shift_range)

    def get_transform(self, image: np.ndarray, *, rng: Generator) -> Transform:
        img_h, img_w = image.shape[:2]
        src_rect = np.array([-0.5 * img_w, -0.5 * img_h, 0.5 * img_w, 0.5 * img_h])
        src_rect *= rng.uniform(self.scale_range[0], self.scale_range[1])
        src_rect[0::2] += self.shift_range[0] * img_w * (rng.random() - 0.5)
        src_rect[1::2] += self.shift_range[1] * img_h * (rng.random() - 0.5)
        src_rect[0::2] += 0.5 * img_w
        src_rect[1::2] += 0.5 * img_h
        return ExtentTransform(
            src_rect=tuple(float(v) for v in src_rect),
            output_size=(int(src_rect[3] - src_rect[1]), int(src_rect[2] - src_rect[0])),
        )


class _IntensityRange(Augmentation):
    def __init__(self, intensity_min: float, intensity_max: float) -> None:
        if intensity_min > intensity_max:
            raise ValueError(
                f"{type(self).__name__}: intensity_min {intensity_min} > intensity_max {intensity_max}"
            )
        self.intensity_min, self.intensity_max = intensity_min, intensity_max


class RandomBrightness(_IntensityRange):
    """``image * w`` with ``w`` uniform in [intensity_min, intensity_max]."""

    def get_transform(self, image: np.ndarray, *, rng: Generator) -> Transform:
        w = rng.uniform(self.intensity_min, self.intensity_max)
        return BlendTransform(src_image=0, src_weight=1 - w, dst_weight=w)


class RandomContrast(_IntensityRange):
    """Blend with the image mean: ``mean * (1 - w) + image * w``."""

    def get_transform(self, image: np.ndarray, *, rng: Generator) -> Transform:
        w = rng.uniform(self.intensity_min, self.intensity_max)
        return BlendTransform(src_image=image.mean(), src_weight=1 - w, dst_weight=w)


class RandomSaturation(_IntensityRange):
    """Blend with the grayscale image (RGB weights 0.299, 0.587, 0.114); input must be [H, W, 3] RGB."""

    def get_transform(self, image: np.ndarray, *, rng: Generator) -> Transform:
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"RandomSaturation only works on RGB images [H, W, 3], got {image.shape}")
        w = rng.uniform(self.intensity_min, self.intensity_max)
        grayscale = image.dot([0.299, 0.587, 0.114])[:, :, np.newaxis]
        return BlendTransform(src_image=grayscale, src_weight=1 - w, dst_weight=w)


class RandomLighting(Augmentation):
    """AlexNet-style PCA lighting noise with ImageNet eigenvectors; weights ~ N(0, ``scale``)."""

    eigen_vecs = np.array(
        [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]
    )
    eigen_vals = np.array([0.2175, 0.0188, 0.0045])

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def get_transform(self, image: np.ndarray, *, rng: Generator) -> Transform:
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"RandomLighting only works on RGB images [H, W, 3], got {image.shape}")
        weights = rng.normal(scale=self.scale, size=3)
        return BlendTransform(
            src_image=self.eigen_vecs.dot(weights * self.eigen_vals), src_weight=1.0, dst_weight=1.0
        )
