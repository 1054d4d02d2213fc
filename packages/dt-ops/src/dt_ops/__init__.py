"""dt-ops: native detection kernels (NMS, ROIAlign, rotated boxes, deformable convolution).

Each op is a ``torch.library`` custom op (``torch.ops.dt.<name>``) backed by C++/CUDA kernels that do
not link libtorch, so one build works with every supported torch release.
"""

from importlib.metadata import version

from dt_ops.boxes import batched_nms, box_iou, nms
from dt_ops.cpu import set_flush_denormal
from dt_ops.deform_conv import deform_conv2d
from dt_ops.layers import DeformConv, ModulatedDeformConv, ROIAlign, ROIAlignRotated, ROIPool
from dt_ops.roi_align import roi_align
from dt_ops.roi_pool import roi_pool
from dt_ops.rotated import batched_nms_rotated, box_iou_rotated, nms_rotated, roi_align_rotated

__version__ = version("dt-ops")

__all__ = [
    "DeformConv",
    "ModulatedDeformConv",
    "ROIAlign",
    "ROIAlignRotated",
    "ROIPool",
    "__version__",
    "batched_nms",
    "batched_nms_rotated",
    "box_iou",
    "box_iou_rotated",
    "deform_conv2d",
    "nms",
    "nms_rotated",
    "roi_align",
    "roi_align_rotated",
    "roi_pool",
    "set_flush_denormal",
]
