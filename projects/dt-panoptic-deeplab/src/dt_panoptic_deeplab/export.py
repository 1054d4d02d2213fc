"""``dt export`` of ``PanopticDeepLab``: its inference and panoptic post-processing as one capturable
graph, registered through the ``dt_export.family`` entry point (loaded only by dt-export).

The eager merge (:func:`~dt_panoptic_deeplab.post_processing.merge_semantic_and_instance`) loops over
instances in Python; here it is written with tensors: per instance the class histogram of its
pixels (majority class: the smallest of the most frequent), its number within its class by a
cumulative count, and the stuff areas by one histogram. Centres are the eager
``find_instance_centers``; grouping appends one far-away dummy centre so that an image without
centres needs no branch, and computes the squared distances itself (``torch.cdist`` branches on the
number of points, which a graph cannot follow). Outputs: ``sem_seg`` ``[C, H, W]`` logits and
``panoptic_seg`` ``[H, W]`` int64 labels (``class * label_divisor + instance``, -1 void); the
``instances`` the eager model can add (``predict_instances``) are not exported.
"""

from __future__ import annotations

import torch

from dt_export.families import ALL_FORMATS, Family
from dt_export.graph import ExportGraph
from dt_export.semantic import crop

from .panoptic_seg import PanopticDeepLab
from .post_processing import find_instance_centers

__all__ = ["FAMILY", "PanopticDeepLabGraph"]

_FAR = -1e7  # the dummy centre's coordinates: farther from every pixel's vote than any real centre


class PanopticDeepLabGraph(ExportGraph):
    """A ``PanopticDeepLab`` on one image, post-processing included, without data-dependent branches."""

    output_names = ("sem_seg", "panoptic_seg")

    def __init__(self, model: PanopticDeepLab) -> None:
        super().__init__(model)  # refuses padding constraints the graph does not reproduce
        self.register_buffer("thing_ids", torch.tensor(model.thing_ids, dtype=torch.int64), persistent=False)

    def eager_outputs(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            result = self.model([{"image": image}])[0]
        return {"sem_seg": result["sem_seg"], "panoptic_seg": result["panoptic_seg"][0]}

    def _is_thing(self, labels: torch.Tensor) -> torch.Tensor:
        """Whether each of ``labels`` is a thing class (``torch.isin``, which has no ONNX lowering)."""
        return (labels[..., None] == self.thing_ids).any(dim=-1)

    def _instances(self, center: torch.Tensor, offset: torch.Tensor, thing_seg: torch.Tensor):
        """Instance ids ``[H, W]`` (0: none, else the 1-based centre) and the number of centres."""
        model = self.model
        centers = find_instance_centers(center, model.center_threshold, model.nms_kernel, model.top_k)
        height, width = offset.shape[1:]
        ys = torch.arange(height, dtype=offset.dtype, device=offset.device)
        xs = torch.arange(width, dtype=offset.dtype, device=offset.device)
        votes = (torch.stack(torch.meshgrid(ys, xs, indexing="ij")) + offset).flatten(1).T  # [H*W, 2]
        candidates = torch.cat([centers.to(offset.dtype), offset.new_full((1, 2), _FAR)])  # [K+1, 2]
        # squared distances as cdist's matrix-product path computes them (cdist itself branches on sizes)
        squared = (
            candidates.pow(2).sum(1, keepdim=True) - 2 * candidates @ votes.T + votes.pow(2).sum(1)[None]
        )
        ids = squared.argmin(dim=0).reshape(height, width) + 1  # [H, W]
        return torch.where(thing_seg & (ids <= centers.shape[0]), ids, torch.zeros_like(ids)), centers.shape[
            0
        ]

    def _merge(self, labels: torch.Tensor, instances: torch.Tensor, count, num_classes: int) -> torch.Tensor:
        """The panoptic map ``[H, W]`` of semantic ``labels`` and ``instances`` (``count`` of them)."""
        model = self.model
        flat_labels, flat_ids = labels.flatten(), instances.flatten()
        thing = flat_ids > 0
        histogram = torch.zeros((count + 1) * num_classes, dtype=torch.int64, device=labels.device)
        histogram = histogram.index_add(0, flat_ids * num_classes + flat_labels, thing.to(torch.int64))
        histogram = histogram.view(count + 1, num_classes)  # [K+1, C] pixels per instance and class
        nonempty = histogram.sum(dim=1) > 0
        category = histogram.argmax(dim=1)  # [K+1]
        chosen = torch.nn.functional.one_hot(category, num_classes) * nonempty[:, None].to(torch.int64)
        number = torch.cumsum(chosen, dim=0).gather(1, category[:, None])[:, 0]  # [K+1]
        thing_label = category * model.label_divisor + number
        free = (flat_ids == 0).to(torch.int64)
        area = torch.zeros(num_classes, dtype=torch.int64, device=labels.device).index_add(
            0, flat_labels, free
        )
        is_stuff = ~self._is_thing(torch.arange(num_classes, device=labels.device))
        stuff = is_stuff & (area >= model.stuff_area) & (area > 0)
        void = torch.full_like(flat_labels, -1)
        panoptic = torch.where(thing, thing_label[flat_ids], void)
        panoptic = torch.where(
            (flat_ids == 0) & stuff[flat_labels], flat_labels * model.label_divisor, panoptic
        )
        return panoptic.view_as(labels)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = image.shape[-2:]
        features = self.features(image)
        sem_seg = crop(self.model.sem_seg_head(features)[0][0], height, width)  # [C, H, W]
        center, offset, _ = self.model.ins_embed_head(features)
        center, offset = crop(center[0], height, width), crop(offset[0], height, width)  # [1|2, H, W]
        labels = sem_seg.argmax(dim=0)  # [H, W]
        thing_seg = self._is_thing(labels)
        instances, count = self._instances(center, offset, thing_seg)
        return sem_seg, self._merge(labels, instances, count, sem_seg.shape[0])


FAMILY = Family(
    PanopticDeepLab, PanopticDeepLabGraph, ALL_FORMATS, "PanopticDeepLab (panoptic post-processing included)"
)
