// Per-ROI sampling grids of ROIAlign (torchvision) and ROIAlignRotated (detectron2).
#pragma once
#include "common/macros.h"

namespace dt {

template <typename T>
struct RoiGrid {
  int64_t batch;
  T start_h, start_w;  // top-left of the ROI (ROIAlign) or -size/2 (rotated, relative to the center)
  T bin_h, bin_w;
  int64_t grid_h, grid_w;  // samples per bin along each axis
  T count;                 // samples averaged per bin (at least 1)
  T center_h, center_w, cos_t, sin_t;  // rotation (identity for ROIAlign)
};

// roi = (batch_index, x1, y1, x2, y2).
template <typename T>
DT_HD RoiGrid<T> roi_align_grid(const T* roi, double spatial_scale, int64_t pooled_h, int64_t pooled_w,
                                int64_t sampling_ratio, bool aligned) {
  RoiGrid<T> g;
  g.batch = static_cast<int64_t>(roi[0]);
  const T offset = aligned ? T(0.5) : T(0.0);
  const T start_w = roi[1] * spatial_scale - offset;
  const T start_h = roi[2] * spatial_scale - offset;
  const T end_w = roi[3] * spatial_scale - offset;
  const T end_h = roi[4] * spatial_scale - offset;
  T roi_w = end_w - start_w, roi_h = end_h - start_h;
  if (!aligned) {  // legacy mode: ROIs are at least 1x1
    roi_w = dt_max(roi_w, T(1));
    roi_h = dt_max(roi_h, T(1));
  }
  g.start_h = start_h;
  g.start_w = start_w;
  g.bin_h = roi_h / static_cast<T>(pooled_h);
  g.bin_w = roi_w / static_cast<T>(pooled_w);
  g.grid_h = sampling_ratio > 0 ? sampling_ratio : static_cast<int64_t>(ceil(roi_h / pooled_h));
  g.grid_w = sampling_ratio > 0 ? sampling_ratio : static_cast<int64_t>(ceil(roi_w / pooled_w));
  g.count = static_cast<T>(dt_max(g.grid_h * g.grid_w, int64_t(1)));
  g.center_h = T(0);
  g.center_w = T(0);
  g.cos_t = T(1);
  g.sin_t = T(0);
  return g;
}

// roi = (batch_index, cx, cy, w, h, angle in degrees, counter-clockwise); always half-pixel aligned.
template <typename T>
DT_HD RoiGrid<T> roi_align_rotated_grid(const T* roi, double spatial_scale, int64_t pooled_h,
                                        int64_t pooled_w, int64_t sampling_ratio) {
  RoiGrid<T> g;
  g.batch = static_cast<int64_t>(roi[0]);
  const T offset = T(0.5);
  g.center_w = roi[1] * spatial_scale - offset;
  g.center_h = roi[2] * spatial_scale - offset;
  const T roi_w = roi[3] * spatial_scale;
  const T roi_h = roi[4] * spatial_scale;
  const T theta = roi[5] * 3.14159265358979323846 / 180.0;
  g.cos_t = static_cast<T>(cos(static_cast<double>(theta)));
  g.sin_t = static_cast<T>(sin(static_cast<double>(theta)));
  g.bin_h = roi_h / static_cast<T>(pooled_h);
  g.bin_w = roi_w / static_cast<T>(pooled_w);
  g.grid_h = sampling_ratio > 0 ? sampling_ratio : static_cast<int64_t>(ceil(roi_h / pooled_h));
  g.grid_w = sampling_ratio > 0 ? sampling_ratio : static_cast<int64_t>(ceil(roi_w / pooled_w));
  g.count = static_cast<T>(dt_max(g.grid_h * g.grid_w, int64_t(1)));
  g.start_h = -roi_h / T(2.0);
  g.start_w = -roi_w / T(2.0);
  return g;
}

// Image coordinates of sample (iy, ix) of bin (ph, pw).
template <typename T>
DT_HD void roi_sample_point(const RoiGrid<T>& g, int64_t ph, int64_t pw, int64_t iy, int64_t ix, T& y, T& x) {
  const T yy = g.start_h + static_cast<T>(ph) * g.bin_h +
               static_cast<T>(iy + 0.5f) * g.bin_h / static_cast<T>(g.grid_h);
  const T xx = g.start_w + static_cast<T>(pw) * g.bin_w +
               static_cast<T>(ix + 0.5f) * g.bin_w / static_cast<T>(g.grid_w);
  y = yy * g.cos_t - xx * g.sin_t + g.center_h;
  x = yy * g.sin_t + xx * g.cos_t + g.center_w;
}

}  // namespace dt
