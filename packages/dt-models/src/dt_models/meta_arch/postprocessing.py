"""``detector_postprocess``: rescale detections to the size the caller asked for and paste masks."""

from __future__ import annotations

import torch

from dt_models.proposal_generator.proposal_utils import clip_boxes, nonempty_boxes
from dt_structures import Boxes, Instances, RotatedBoxes, paste_masks_in_image

__all__ = ["detector_postprocess"]


def detector_postprocess(
    results: Instances, output_height: int, output_width: int, mask_threshold: float = 0.5
) -> Instances:
    """Detections on the network input rescaled to an ``(output_height, output_width)`` image.

    Boxes (``pred_boxes`` or ``proposal_boxes``) are scaled, clipped, and empty ones dropped
    (``RotatedBoxes`` by their own ``scaled`` and ``clip``, as detectron2);
    ``pred_masks`` ``Tensor[R, 1, M, M]`` probabilities are pasted into the boxes and thresholded
    into ``Tensor[R, output_height, output_width]`` bool; ``pred_keypoints`` x, y are scaled.
    ``results`` is not modified.
    """
    scale_x = output_width / results.image_size[1]
    scale_y = output_height / results.image_size[0]
    fields = dict(results.get_fields())
    box_field = (
        "pred_boxes" if "pred_boxes" in fields else "proposal_boxes" if "proposal_boxes" in fields else None
    )
    output = Instances((int(output_height), int(output_width)))
    if box_field is None:
        for name, value in fields.items():
            output.set(name, value)
        return output
    boxes = fields[box_field].tensor
    if isinstance(fields[box_field], RotatedBoxes):
        rotated = fields[box_field].scaled(scale_x, scale_y)
        rotated.clip(output.image_size)
        fields[box_field] = rotated
        keep = rotated.nonempty()
    else:
        scale = torch.tensor([scale_x, scale_y, scale_x, scale_y], dtype=boxes.dtype, device=boxes.device)
        boxes = clip_boxes(boxes * scale, output.image_size)
        fields[box_field] = Boxes(boxes)
        keep = nonempty_boxes(boxes)
    for name, value in fields.items():
        output.set(name, value)
    output = output[keep]
    if output.has("pred_keypoints"):  # Tensor[R, K, 3] of (x, y, score)
        scale_xy = torch.tensor([scale_x, scale_y, 1.0], device=boxes.device)
        output.pred_keypoints = output.pred_keypoints * scale_xy
    if output.has("pred_masks"):
        masks = output.pred_masks
        if masks.dim() == 4:
            masks = masks[:, 0]
        output.pred_masks = paste_masks_in_image(
            masks, output.pred_boxes, (int(output_height), int(output_width)), threshold=mask_threshold
        )
    return output
