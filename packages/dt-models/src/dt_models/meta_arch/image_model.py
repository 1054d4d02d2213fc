"""``ImageModel``: the base of meta-architectures over images (input normalization, batching, backbone
features), and ``ImageModelConfig``, the base of their configs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch
from torch import nn

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.backbone import Backbone, ResNetFPNConfig
from dt_models.layers import ShapeSpec
from dt_models.registry import BackboneConfig, ModelConfig
from dt_structures import ImageList, Instances

__all__ = ["INPUT_FORMATS", "ImageModel", "ImageModelConfig"]

INPUT_FORMATS = ("BGR", "RGB", "L")


class ImageModel(nn.Module):
    """Base of models taking detectron2-style ``list[dict]`` inputs with an ``image`` each.

    It holds the backbone and what every such model does before its heads: move images to the
    model's device, normalize them, and pad them into one ``ImageList`` that satisfies the
    backbone's size constraints. Subclasses (R-CNN, RetinaNet, semantic segmentation, a project's
    own) implement ``forward(batched_inputs)`` with :meth:`preprocess_image`,
    :meth:`extract_features` and :meth:`gt_instances`.

    Args:
        backbone: feature extractor.
        pixel_mean, pixel_std: per-channel normalization in ``input_format`` order (0-255 values).
        input_format: channel order of the input images: ``"BGR"``, ``"RGB"`` or ``"L"``.
        size_divisibility: batch height and width are padded to multiples of this (0: none);
            ``None`` takes the backbone's.
        padding_constraints: further ``ImageList.from_tensors`` rules (``{"square_size": 1024}``);
            ``None`` takes the backbone's.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str = "BGR",
        size_divisibility: int | None = None,
        padding_constraints: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()
        if len(pixel_mean) != len(pixel_std):
            raise ValueError(
                f"pixel_mean and pixel_std differ in length: {list(pixel_mean)} vs {list(pixel_std)}"
            )
        if any(s <= 0 for s in pixel_std):
            raise ValueError(f"pixel_std must be positive, got {list(pixel_std)}")
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
        if len(pixel_mean) != (1 if input_format == "L" else 3):
            raise ValueError(
                f"input_format {input_format!r} does not match {len(pixel_mean)} pixel_mean values"
            )
        self.backbone = backbone
        self.input_format = input_format
        self.size_divisibility = (
            backbone.size_divisibility if size_divisibility is None else size_divisibility
        )
        self.padding_constraints = dict(
            backbone.padding_constraints if padding_constraints is None else padding_constraints
        )
        self.register_buffer(
            "pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(-1, 1, 1), False
        )
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(-1, 1, 1), False)

    @property
    def device(self) -> torch.device:
        """The device of the model (where inputs are moved)."""
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: Sequence[dict[str, Any]]) -> ImageList:
        """Normalize each ``image`` (``Tensor[C, H, W]`` in ``input_format``, any real dtype) and pad
        them into one ``Tensor[N, C, H', W']`` batch honouring ``size_divisibility`` and
        ``padding_constraints``."""
        images = []
        for i, item in enumerate(batched_inputs):
            image = item.get("image") if isinstance(item, dict) else None
            if not isinstance(image, torch.Tensor) or image.dim() != 3:
                raise ValueError(f"batched_inputs[{i}]['image'] must be a Tensor[C, H, W]")
            if image.shape[0] != self.pixel_mean.shape[0]:
                raise ValueError(
                    f"batched_inputs[{i}]['image'] has {image.shape[0]} channels, the model expects "
                    f"{self.pixel_mean.shape[0]} ({self.input_format})"
                )
            image = image.to(self.device, non_blocking=True).to(torch.float32)
            images.append((image - self.pixel_mean) / self.pixel_std)
        return ImageList.from_tensors(
            images, size_divisibility=self.size_divisibility, padding_constraints=self.padding_constraints
        )

    def extract_features(self, images: ImageList) -> dict[str, torch.Tensor]:
        """The backbone's feature maps of the batch; on CPU the images are handed over channels-last
        (NHWC) when the backbone allows it (``channels_last_on_cpu``), where oneDNN convolutions run
        markedly faster, except when training on large images (>= 400x400) on a CPU without AVX-512:
        there oneDNN's convolution backward is 1.4-1.5x slower on large NHWC maps (256 channels, 3x3 at
        64x64: 153 vs 103 ms; equal at 32x32), so NCHW makes a RetinaNet step at 512x512 15 % faster,
        while the demo's small images still train 3-5 % faster channels-last. Every op downstream
        accepts both; the values are the same."""
        x = images.tensor
        if (
            x.device.type == "cpu"
            and self.backbone.channels_last_on_cpu
            and not self._trains_large_on_avx2(x)
        ):
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x)

    def _trains_large_on_avx2(self, x: torch.Tensor) -> bool:
        large = x.shape[-2] * x.shape[-1] >= 400 * 400
        return self.training and large and torch.backends.cpu.get_cpu_capability() != "AVX512"

    def gt_instances(self, batched_inputs: Sequence[dict[str, Any]]) -> list[Instances]:
        """The ground-truth ``instances`` of every input, on the model's device (training)."""
        missing = [i for i, x in enumerate(batched_inputs) if "instances" not in x]
        if missing:
            raise ValueError(f"training needs 'instances' in every input; missing in {missing}")
        return [x["instances"].to(self.device) for x in batched_inputs]


@attrs.define(frozen=True, kw_only=True)
class ImageModelConfig(ModelConfig):
    """Base of the configs of :class:`ImageModel` meta-architectures: the backbone and the input.

    ``pixel_mean``/``pixel_std`` are in ``input_format`` channel order (0-255 pixel values).
    """

    backbone: BackboneConfig = attrs.field(
        factory=ResNetFPNConfig, validator=check.instance_of(BackboneConfig)
    )
    pixel_mean: tuple[float, ...] = (103.53, 116.28, 123.675)
    pixel_std: tuple[float, ...] = (1.0, 1.0, 1.0)
    input_format: str = attrs.field(default="BGR", validator=check.one_of(INPUT_FORMATS))

    def __attrs_post_init__(self) -> None:
        if len(self.pixel_mean) != len(self.pixel_std):
            raise ConfigProblem(
                f"has {len(self.pixel_std)} values but pixel_mean has {len(self.pixel_mean)}", key="pixel_std"
            )
        if any(s <= 0 for s in self.pixel_std):
            raise ConfigProblem(f"values must be > 0, got {list(self.pixel_std)}", key="pixel_std")
        expected = 1 if self.input_format == "L" else 3
        if len(self.pixel_mean) != expected:
            raise ConfigProblem(
                f"needs {expected} values for input_format {self.input_format!r}", key="pixel_mean"
            )

    def check_input_features(self, part: Any, key: str) -> None:
        """Check that the feature maps ``part`` reads (its ``input_features()``) are backbone outputs;
        ``key`` is the part's field name, for the error path."""
        available = self.backbone.output_features()
        if available is None:
            return
        for sub_key, names in part.input_features().items():
            missing = [f for f in names if f not in available]
            if missing:
                raise ConfigProblem(
                    f"{missing} are not backbone outputs {list(available)}", key=f"{key}.{sub_key}"
                )

    def input_shape(self) -> ShapeSpec:
        """The shape of the backbone's input: ``ShapeSpec(channels=len(pixel_mean))``."""
        return ShapeSpec(channels=len(self.pixel_mean))

    def input_kwargs(self) -> dict[str, Any]:
        """The :class:`ImageModel` arguments the config sets: pixel mean and std, input format."""
        return {"pixel_mean": self.pixel_mean, "pixel_std": self.pixel_std, "input_format": self.input_format}
