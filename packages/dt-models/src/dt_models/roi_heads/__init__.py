"""ROI heads: sampling, box head, box predictor, mask head."""

from dt_models.roi_heads.box_head import FastRCNNConvFCHead
from dt_models.roi_heads.fast_rcnn import FastRCNNOutputLayers, fast_rcnn_inference
from dt_models.roi_heads.mask_head import MaskRCNNConvUpsampleHead, mask_rcnn_inference, mask_rcnn_loss
from dt_models.roi_heads.roi_heads import ROIHeads, StandardROIHeads, select_foreground_proposals

__all__ = [
    "FastRCNNConvFCHead",
    "FastRCNNOutputLayers",
    "MaskRCNNConvUpsampleHead",
    "ROIHeads",
    "StandardROIHeads",
    "fast_rcnn_inference",
    "mask_rcnn_inference",
    "mask_rcnn_loss",
    "select_foreground_proposals",
]
