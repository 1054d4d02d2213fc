"""ROI heads: sampling, the box branch (head, predictor), extra branches (masks), with their configs
(importing this package registers them)."""

from dt_models.roi_heads.box_head import (
    FastRCNNConvFCHead,
    FastRCNNConvFCHeadConfig,
    build_fast_rcnn_conv_fc_head,
)
from dt_models.roi_heads.branch import ROIBranch, ROIBranches, check_branches
from dt_models.roi_heads.fast_rcnn import (
    FastRCNNOutputLayers,
    FastRCNNOutputLayersConfig,
    build_fast_rcnn_output_layers,
    fast_rcnn_inference,
)
from dt_models.roi_heads.mask_head import (
    MaskBranch,
    MaskBranchConfig,
    MaskRCNNConvUpsampleHead,
    MaskRCNNConvUpsampleHeadConfig,
    build_mask_branch,
    build_mask_rcnn_conv_upsample_head,
    mask_rcnn_inference,
    mask_rcnn_loss,
)
from dt_models.roi_heads.roi_heads import (
    ROIHeads,
    StandardROIHeads,
    StandardROIHeadsConfig,
    build_standard_roi_heads,
    select_foreground_proposals,
)

__all__ = [
    "FastRCNNConvFCHead",
    "FastRCNNConvFCHeadConfig",
    "FastRCNNOutputLayers",
    "FastRCNNOutputLayersConfig",
    "MaskBranch",
    "MaskBranchConfig",
    "MaskRCNNConvUpsampleHead",
    "MaskRCNNConvUpsampleHeadConfig",
    "ROIBranch",
    "ROIBranches",
    "ROIHeads",
    "StandardROIHeads",
    "StandardROIHeadsConfig",
    "build_fast_rcnn_conv_fc_head",
    "build_fast_rcnn_output_layers",
    "build_mask_branch",
    "build_mask_rcnn_conv_upsample_head",
    "build_standard_roi_heads",
    "check_branches",
    "fast_rcnn_inference",
    "mask_rcnn_inference",
    "mask_rcnn_loss",
    "select_foreground_proposals",
]
