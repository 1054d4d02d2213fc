// Axis-aligned IoU of XYXY boxes, with torchvision's operation order (NMS results are exact).
#pragma once
#include "common/macros.h"

namespace dt {

template <typename T>
DT_HD T box_area(T x1, T y1, T x2, T y2) { return (x2 - x1) * (y2 - y1); }

// IoU of box a and box b, given their precomputed areas. 0/0 (two empty boxes) is NaN, as in torchvision.
template <typename T>
DT_HD T box_iou_xyxy(T ax1, T ay1, T ax2, T ay2, T area_a, T bx1, T by1, T bx2, T by2, T area_b) {
  const T w = dt_max(T(0), dt_min(ax2, bx2) - dt_max(ax1, bx1));
  const T h = dt_max(T(0), dt_min(ay2, by2) - dt_max(ay1, by1));
  const T inter = w * h;
  return inter / (area_a + area_b - inter);
}

}  // namespace dt
