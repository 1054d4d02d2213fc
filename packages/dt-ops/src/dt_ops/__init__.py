"""dt-ops: native detection kernels (NMS, ROIAlign, rotated boxes, deformable convolution).

Each op is a ``torch.library`` custom op (``torch.ops.dt.<name>``) backed by C++/CUDA kernels that do
not link libtorch, so one build works with every supported torch release.
"""

from importlib.metadata import version

from dt_ops.boxes import batched_nms, box_iou, nms
from dt_ops.roi_align import roi_align

__version__ = version("dt-ops")

__all__ = [
    "__version__",
    "batched_nms",
    "box_iou",
    "nms",
    "roi_align",
]
