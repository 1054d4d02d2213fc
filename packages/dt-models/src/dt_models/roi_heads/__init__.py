"""ROI heads: sampling, the box branch (head, predictor), extra branches (masks, keypoints), the C4
``Res5ROIHeads``, ``CascadeROIHeads`` and the rotated ``RROIHeads``, with their configs (importing
this package registers them)."""

from dt_models.roi_heads.box_head import (
    FastRCNNConvFCHead,
    FastRCNNConvFCHeadConfig,
    build_fast_rcnn_conv_fc_head,
)
from dt_models.roi_heads.branch import ROIBranch, ROIBranches, check_branches
from dt_models.roi_heads.cascade_rcnn import CascadeROIHeads, CascadeROIHeadsConfig, build_cascade_roi_heads
from dt_models.roi_heads.fast_rcnn import (
    FastRCNNOutputLayers,
    FastRCNNOutputLayersConfig,
    build_fast_rcnn_output_layers,
    fast_rcnn_inference,
)
from dt_models.roi_heads.keypoint_head import (
    KeypointBranch,
    KeypointBranchConfig,
    KRCNNConvDeconvUpsampleHead,
    KRCNNConvDeconvUpsampleHeadConfig,
    build_keypoint_branch,
    keypoint_rcnn_inference,
    keypoint_rcnn_loss,
    select_proposals_with_visible_keypoints,
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
from dt_models.roi_heads.res5_roi_heads import (
    Res5HeadConfig,
    Res5ROIHeads,
    Res5ROIHeadsConfig,
    build_res5_roi_heads,
)
from dt_models.roi_heads.roi_heads import (
    ROIHeads,
    SampledROIHeadsConfig,
    StandardROIHeads,
    StandardROIHeadsConfig,
    build_box_predictor,
    build_standard_roi_heads,
    roi_heads_sampling_kwargs,
    select_foreground_proposals,
)
from dt_models.roi_heads.rotated_fast_rcnn import (
    RotatedFastRCNNOutputLayers,
    RotatedFastRCNNOutputLayersConfig,
    RotatedPoolerConfig,
    RROIHeads,
    RROIHeadsConfig,
    build_rotated_fast_rcnn_output_layers,
    build_rroi_heads,
)

__all__ = [
    "CascadeROIHeads",
    "CascadeROIHeadsConfig",
    "FastRCNNConvFCHead",
    "FastRCNNConvFCHeadConfig",
    "FastRCNNOutputLayers",
    "FastRCNNOutputLayersConfig",
    "KRCNNConvDeconvUpsampleHead",
    "KRCNNConvDeconvUpsampleHeadConfig",
    "KeypointBranch",
    "KeypointBranchConfig",
    "MaskBranch",
    "MaskBranchConfig",
    "MaskRCNNConvUpsampleHead",
    "MaskRCNNConvUpsampleHeadConfig",
    "ROIBranch",
    "ROIBranches",
    "ROIHeads",
    "RROIHeads",
    "RROIHeadsConfig",
    "Res5HeadConfig",
    "Res5ROIHeads",
    "Res5ROIHeadsConfig",
    "RotatedFastRCNNOutputLayers",
    "RotatedFastRCNNOutputLayersConfig",
    "RotatedPoolerConfig",
    "SampledROIHeadsConfig",
    "StandardROIHeads",
    "StandardROIHeadsConfig",
    "build_box_predictor",
    "build_cascade_roi_heads",
    "build_fast_rcnn_conv_fc_head",
    "build_fast_rcnn_output_layers",
    "build_keypoint_branch",
    "build_mask_branch",
    "build_mask_rcnn_conv_upsample_head",
    "build_res5_roi_heads",
    "build_rotated_fast_rcnn_output_layers",
    "build_rroi_heads",
    "build_standard_roi_heads",
    "check_branches",
    "fast_rcnn_inference",
    "keypoint_rcnn_inference",
    "keypoint_rcnn_loss",
    "mask_rcnn_inference",
    "mask_rcnn_loss",
    "roi_heads_sampling_kwargs",
    "select_foreground_proposals",
    "select_proposals_with_visible_keypoints",
]
