// ROIPool bin bounds (torchvision semantics): ROI corners rounded to integers, bins cover
// [floor(p * size / pooled), ceil((p + 1) * size / pooled)) clipped to the image.
#pragma once
#include "common/macros.h"

namespace dt {

struct PoolBin {
  int64_t h0, h1, w0, w1;
};

template <typename T>
DT_HD PoolBin roi_pool_bin(const T* roi, double spatial_scale, int64_t height, int64_t width,
                           int64_t pooled_h, int64_t pooled_w, int64_t ph, int64_t pw) {
  const int64_t start_w = static_cast<int64_t>(round(roi[1] * spatial_scale));
  const int64_t start_h = static_cast<int64_t>(round(roi[2] * spatial_scale));
  const int64_t end_w = static_cast<int64_t>(round(roi[3] * spatial_scale));
  const int64_t end_h = static_cast<int64_t>(round(roi[4] * spatial_scale));
  const int64_t roi_w = dt_max(end_w - start_w + 1, int64_t(1));
  const int64_t roi_h = dt_max(end_h - start_h + 1, int64_t(1));
  const T bin_h = static_cast<T>(roi_h) / static_cast<T>(pooled_h);
  const T bin_w = static_cast<T>(roi_w) / static_cast<T>(pooled_w);
  PoolBin bin;
  bin.h0 = static_cast<int64_t>(floor(static_cast<T>(ph) * bin_h));
  bin.w0 = static_cast<int64_t>(floor(static_cast<T>(pw) * bin_w));
  bin.h1 = static_cast<int64_t>(ceil(static_cast<T>(ph + 1) * bin_h));
  bin.w1 = static_cast<int64_t>(ceil(static_cast<T>(pw + 1) * bin_w));
  bin.h0 = dt_min(dt_max(bin.h0 + start_h, int64_t(0)), height);
  bin.h1 = dt_min(dt_max(bin.h1 + start_h, int64_t(0)), height);
  bin.w0 = dt_min(dt_max(bin.w0 + start_w, int64_t(0)), width);
  bin.w1 = dt_min(dt_max(bin.w1 + start_w, int64_t(0)), width);
  return bin;
}

}  // namespace dt
