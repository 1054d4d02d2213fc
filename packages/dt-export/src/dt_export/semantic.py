"""``SemanticGraph``: semantic segmentation inference (Semantic FPN's ``SemanticSegmentor`` and any
model whose ``sem_seg_head(features)`` returns per-class logits at the padded input size, such as
dt-deeplab's ``DeepLabSegmentor``) as a capturable graph (see :mod:`dt_export.graph`).

Output: ``sem_seg`` ``Tensor[C, H, W]``, the head's logits cropped to the input image (the eager
``sem_seg_postprocess`` at the input size). The head is batch-agnostic, so
:class:`BatchedSemanticGraph` runs a batch ``Tensor[B, C, H, W]`` of same-size images at once
(``sem_seg`` ``Tensor[B, C, H, W]``).
"""

from __future__ import annotations

import torch

from .graph import ExportGraph

__all__ = ["BatchedSemanticGraph", "SemanticGraph", "crop"]


def crop(maps: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The top-left ``height x width`` of ``maps`` ``Tensor[..., H', W']``, by ``index_select`` (the
    shape solver cannot prove that a slice's end ``height <= H'`` of the padded maps is in range)."""
    rows = torch.arange(height, device=maps.device)
    columns = torch.arange(width, device=maps.device)
    return maps.index_select(-2, rows).index_select(-1, columns)


class SemanticGraph(ExportGraph):
    """``model.sem_seg_head`` on the backbone features of one image, cropped to it."""

    output_names = ("sem_seg",)

    def eager_outputs(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {"sem_seg": self.model([{"image": image}])[0]["sem_seg"]}

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.cropped_logits(image)[0],)

    def cropped_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The head's logits ``Tensor[1 | B, C', H, W]`` of one image ``[C, H, W]`` or a batch
        ``[B, C, H, W]``, cropped from the padded size to the input's."""
        height, width = images.shape[-2:]
        return crop(self.model.sem_seg_head(self.features(images))[0], height, width)


class BatchedSemanticGraph(SemanticGraph):
    """``model.sem_seg_head`` on a batch ``Tensor[B, C, H, W]`` of same-size images -> ``sem_seg``
    ``Tensor[B, C', H, W]`` (image ``i``'s logits are the eager model's on image ``i`` alone)."""

    batched = True

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.cropped_logits(images),)
