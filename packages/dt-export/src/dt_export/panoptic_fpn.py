"""``PanopticFPNGraph``: Panoptic FPN inference as a capturable graph: the R-CNN graph's detections,
the semantic head's logits and their combination into a panoptic map, all inside the graph.

The combination (``combine_semantic_and_instance_outputs``) pastes instances one after another, each
depending on what earlier ones covered; the graph unrolls it over the ROI heads' at most
``detections_per_image`` detections (missing ones padded with empty masks and ``-inf`` scores, which
are never accepted). Stuff segments do not overlap each other, so they are assigned at once.

Outputs: those of :class:`~dt_export.rcnn.RCNNGraph`, ``sem_seg`` ``[C, H, W]``, ``panoptic_seg``
``[H, W]`` int32 segment ids (0: unassigned) and ``segments`` ``[S, 4]`` int64, one row per segment id
1..S: ``(id, isthing, category_id, instance index (things) or area (stuff))``.
"""

from __future__ import annotations

import torch

from dt_models.meta_arch import PanopticFPN

from .graph import eager_instance_outputs
from .rcnn import RCNNGraph
from .semantic import crop

__all__ = ["PanopticFPNGraph"]


class PanopticFPNGraph(RCNNGraph):
    """A ``PanopticFPN`` (R-CNN with a mask branch plus a semantic head) on one image."""

    def __init__(self, model: PanopticFPN) -> None:
        super().__init__(model)
        if "masks" not in self.output_names:
            raise ValueError("cannot export PanopticFPN without a mask branch")
        self.max_detections = int(model.roi_heads.box_predictor.test_topk_per_image)
        if self.max_detections < 0:
            raise ValueError("cannot export PanopticFPN with detections_per_image < 0 (supported: >= 0)")
        self.output_names = (*self.output_names, "sem_seg", "panoptic_seg", "segments")

    def eager_outputs(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        names = tuple(n for n in self.output_names if n not in ("sem_seg", "panoptic_seg", "segments"))
        outputs = eager_instance_outputs(self.model, image, names)
        with torch.no_grad():
            result = self.model([{"image": image}])[0]
        ids, segments = result["panoptic_seg"]
        rows = [
            [s["id"], int(s["isthing"]), s["category_id"], s["instance_id"] if s["isthing"] else s["area"]]
            for s in segments
        ]
        table = torch.tensor(rows, dtype=torch.int64).reshape(-1, 4)
        return {**outputs, "sem_seg": result["sem_seg"], "panoptic_seg": ids, "segments": table}

    def _combine(self, scores, classes, masks, labels, num_labels: int):
        """Panoptic ids ``[H, W]`` int32 and the ``segments`` table of detections (``masks`` ``[R, H, W]``
        by decreasing score) and semantic ``labels`` ``[H, W]`` (see the module docstring)."""
        model, n = self.model, self.max_detections
        height, width = labels.shape
        order = torch.argsort(-scores)
        masks = torch.cat([masks[order], masks.new_zeros((n, height, width))])[:n]  # [n, H, W]
        scores = torch.cat([scores[order], scores.new_full((n,), float("-inf"))])[:n]
        classes = torch.cat([classes[order], classes.new_zeros((n,))])[:n]
        order = torch.cat([order, order.new_zeros((n,))])[:n]
        panoptic = torch.zeros((height, width), dtype=torch.int32, device=labels.device)
        count = torch.zeros((), dtype=torch.int32, device=labels.device)
        accepted = []
        for i in range(n):
            mask = masks[i]
            area = mask.sum()
            overlap = (mask & (panoptic > 0)).sum()
            accept = (
                (scores[i] >= model.combine_instances_score_thresh)
                & (area > 0)
                & (overlap.float() / area.clamp(min=1).float() <= model.combine_overlap_thresh)
            )
            count = count + accept.to(torch.int32)
            panoptic = torch.where(mask & (panoptic == 0) & accept, count, panoptic)
            accepted.append(accept)
        accepted = torch.stack(accepted)  # [n]
        things = torch.stack([torch.ones_like(order), torch.ones_like(order), classes, order], dim=1)[
            accepted
        ]  # [T, 4]
        flat = labels.flatten()
        free = (panoptic == 0).flatten()
        area = torch.zeros(num_labels, dtype=torch.int64, device=labels.device)
        area = area.index_add(0, flat, free.to(torch.int64))  # [C] free pixels per label
        present = torch.zeros_like(area).index_add(0, flat, torch.ones_like(flat)) > 0
        stuff = present & (area >= model.combine_stuff_area_thresh)
        stuff[0] = False  # label 0 is all "things" together
        ids = count.to(torch.int64) + torch.cumsum(stuff.to(torch.int64), dim=0)  # [C]
        panoptic = torch.where((panoptic == 0) & stuff[labels], ids[labels].to(torch.int32), panoptic)
        stuff_labels = torch.nonzero(stuff).squeeze(1)
        stuff_rows = torch.stack(
            [
                torch.zeros_like(stuff_labels),
                torch.zeros_like(stuff_labels),
                stuff_labels,
                area[stuff_labels],
            ],
            dim=1,
        )  # [S', 4]
        segments = torch.cat([things, stuff_rows])
        segment_ids = torch.arange(1, segments.shape[0] + 1, device=labels.device)
        return panoptic, torch.cat([segment_ids[:, None], segments[:, 1:]], dim=1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        height, width = image.shape[-2:]
        image_size = (height, width)
        features = self.features(image)
        detections = self.detect(features, image_size)
        _, scores, classes, masks = detections[:4]
        sem_seg = crop(self.model.sem_seg_head(features)[0][0], height, width)  # [C, H, W]
        panoptic, segments = self._combine(scores, classes, masks, sem_seg.argmax(dim=0), sem_seg.shape[0])
        return (*detections, sem_seg, panoptic, segments)
