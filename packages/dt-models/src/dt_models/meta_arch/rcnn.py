"""Meta-architectures of the R-CNN family: ``GeneralizedRCNN`` and the RPN-only ``ProposalNetwork``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from dt_models.backbone import Backbone
from dt_models.meta_arch.postprocessing import detector_postprocess
from dt_structures import ImageList, Instances

__all__ = ["GeneralizedRCNN", "ProposalNetwork"]

INPUT_FORMATS = ("BGR", "RGB", "L")


class _ImageModel(nn.Module):
    """Shared input handling: device placement, normalization, batching into an ``ImageList``."""

    def __init__(
        self, backbone: Backbone, pixel_mean: Sequence[float], pixel_std: Sequence[float], input_format: str
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
        self.register_buffer(
            "pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(-1, 1, 1), False
        )
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(-1, 1, 1), False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: Sequence[dict[str, Any]]) -> ImageList:
        """Normalize each ``image`` (``Tensor[C, H, W]`` in ``input_format``, any real dtype) and pad them
        into one batch whose size satisfies the backbone's ``size_divisibility``."""
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
            images,
            size_divisibility=self.backbone.size_divisibility,
            padding_constraints=self.backbone.padding_constraints,
        )

    def _features(self, images: ImageList) -> dict[str, torch.Tensor]:
        x = images.tensor
        if x.device.type == "cpu" and self.backbone.channels_last_on_cpu:
            # oneDNN convolutions are markedly faster on NHWC; every op downstream accepts it
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x)

    def _gt_instances(self, batched_inputs: Sequence[dict[str, Any]]) -> list[Instances]:
        missing = [i for i, x in enumerate(batched_inputs) if "instances" not in x]
        if missing:
            raise ValueError(f"training needs 'instances' in every input; missing in {missing}")
        return [x["instances"].to(self.device) for x in batched_inputs]


class GeneralizedRCNN(_ImageModel):
    """Backbone, proposal generator and ROI heads (Faster / Mask R-CNN).

    ``forward(batched_inputs)`` takes a list of dicts with ``image`` (``Tensor[C, H, W]``, in
    ``input_format``), optional ``height``/``width`` (the output resolution) and, in training,
    ``instances`` (``gt_boxes``, ``gt_classes``, ``gt_masks``). It returns a dict of losses in
    training and ``[{"instances": Instances}]`` in eval mode.

    Args:
        backbone: feature extractor; ``size_divisibility`` decides the padding.
        proposal_generator: ``(images, features, gt_instances) -> (proposals, losses)``.
        roi_heads: ``(images, features, proposals, gt_instances) -> (instances, losses)``.
        pixel_mean, pixel_std: per-channel normalization, in ``input_format`` order.
        input_format: channel order of the input images: ``"BGR"``, ``"RGB"`` or ``"L"``.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        proposal_generator: nn.Module,
        roi_heads: nn.Module,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str = "BGR",
    ) -> None:
        super().__init__(backbone, pixel_mean, pixel_std, input_format)
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads

    def forward(self, batched_inputs: Sequence[dict[str, Any]]):
        if not self.training:
            return self.inference(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        gt_instances = self._gt_instances(batched_inputs)
        features = self._features(images)
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        return {**detector_losses, **proposal_losses}

    def inference(
        self,
        batched_inputs: Sequence[dict[str, Any]],
        detected_instances: list[Instances] | None = None,
        do_postprocess: bool = True,
    ) -> list[dict[str, Instances]] | list[Instances]:
        """Detections per image; with ``detected_instances`` (boxes and classes), only the mask head runs.

        With ``do_postprocess=False`` the raw ``Instances`` at the network input size are returned.
        """
        if self.training:
            raise RuntimeError("inference needs eval mode; call model.eval() first")
        images = self.preprocess_image(batched_inputs)
        features = self._features(images)
        if detected_instances is None:
            proposals, _ = self.proposal_generator(images, features, None)
            results, _ = self.roi_heads(images, features, proposals, None)
        else:
            results = self.roi_heads.forward_with_given_boxes(
                features, [x.to(self.device) for x in detected_instances]
            )
        if not do_postprocess:
            return results
        return [
            {"instances": detector_postprocess(r, x.get("height", size[0]), x.get("width", size[1]))}
            for r, x, size in zip(results, batched_inputs, images.image_sizes, strict=True)
        ]


class ProposalNetwork(_ImageModel):
    """Backbone and proposal generator only; eval mode returns ``[{"proposals": Instances}]``.

    Args as for :class:`GeneralizedRCNN`, without ``roi_heads``.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        proposal_generator: nn.Module,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str = "BGR",
    ) -> None:
        super().__init__(backbone, pixel_mean, pixel_std, input_format)
        self.proposal_generator = proposal_generator

    def forward(self, batched_inputs: Sequence[dict[str, Any]]):
        images = self.preprocess_image(batched_inputs)
        features = self._features(images)
        gt_instances = self._gt_instances(batched_inputs) if self.training else None
        proposals, losses = self.proposal_generator(images, features, gt_instances)
        if self.training:
            return losses
        return [
            {"proposals": detector_postprocess(p, x.get("height", size[0]), x.get("width", size[1]))}
            for p, x, size in zip(proposals, batched_inputs, images.image_sizes, strict=True)
        ]
