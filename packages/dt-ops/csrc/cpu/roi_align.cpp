// ROIAlign (torchvision semantics) and ROIAlignRotated (detectron2 semantics), forward and backward.
//
// For each ROI the bilinear taps of every sample are computed once and reused for all channels.
// Forward parallelises over ROIs; backward over channels, so that no two threads ever write the same
// element of grad_input (no atomics, deterministic result).
#include <vector>

#include "common/bilinear.h"
#include "common/roi_geometry.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace dt::cpu {
namespace {

// Taps of all samples of one ROI, grouped by bin: bin b owns taps[first[b] .. first[b + 1]).
template <typename T>
struct RoiTaps {
  std::vector<Tap<T>> taps;
  std::vector<int64_t> first;
  RoiGrid<T> grid;

  void compute(const T* roi, int64_t height, int64_t width, int64_t pooled_h, int64_t pooled_w,
               double spatial_scale, int64_t sampling_ratio, bool aligned, bool rotated) {
    grid = rotated ? roi_align_rotated_grid(roi, spatial_scale, pooled_h, pooled_w, sampling_ratio)
                   : roi_align_grid(roi, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned);
    taps.clear();
    first.assign(1, 0);
    for (int64_t ph = 0; ph < pooled_h; ++ph) {
      for (int64_t pw = 0; pw < pooled_w; ++pw) {
        for (int64_t iy = 0; iy < grid.grid_h; ++iy) {
          for (int64_t ix = 0; ix < grid.grid_w; ++ix) {
            T y, x;
            roi_sample_point(grid, ph, pw, iy, ix, y, x);
            taps.push_back(roi_align_tap(height, width, y, x));
          }
        }
        first.push_back(static_cast<int64_t>(taps.size()));
      }
    }
  }
};

}  // namespace

template <typename T>
void roi_align_forward(const T* input, int64_t batch, int64_t channels, int64_t height, int64_t width,
                       const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w,
                       double spatial_scale, int64_t sampling_ratio, bool aligned, bool rotated, T* output,
                       int threads) {
  const int64_t roi_cols = rotated ? 6 : 5;
  const int64_t bins = pooled_h * pooled_w;
  parallel_for(num_rois, threads, 1, [&](int64_t lo, int64_t hi) {
    RoiTaps<T> rt;
    for (int64_t r = lo; r < hi; ++r) {
      rt.compute(rois + r * roi_cols, height, width, pooled_h, pooled_w, spatial_scale, sampling_ratio,
                 aligned, rotated);
      const int64_t b = rt.grid.batch;
      T* out = output + r * channels * bins;
      if (b < 0 || b >= batch) {
        for (int64_t k = 0; k < channels * bins; ++k) out[k] = T(0);
        continue;
      }
      for (int64_t c = 0; c < channels; ++c) {
        const T* plane = input + (b * channels + c) * height * width;
        for (int64_t bin = 0; bin < bins; ++bin) {
          T sum = T(0);
          for (int64_t t = rt.first[bin]; t < rt.first[bin + 1]; ++t) sum += apply_tap(plane, rt.taps[t]);
          out[c * bins + bin] = sum / rt.grid.count;
        }
      }
    }
  });
}

template <typename T>
void roi_align_backward(const T* grad_output, int64_t batch, int64_t channels, int64_t height,
                        int64_t width, const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w,
                        double spatial_scale, int64_t sampling_ratio, bool aligned, bool rotated,
                        T* grad_input, int threads) {
  const int64_t roi_cols = rotated ? 6 : 5;
  const int64_t bins = pooled_h * pooled_w;
  parallel_for(channels, threads, 1, [&](int64_t c_lo, int64_t c_hi) {
    RoiTaps<T> rt;
    for (int64_t r = 0; r < num_rois; ++r) {
      rt.compute(rois + r * roi_cols, height, width, pooled_h, pooled_w, spatial_scale, sampling_ratio,
                 aligned, rotated);
      const int64_t b = rt.grid.batch;
      if (b < 0 || b >= batch) continue;
      for (int64_t c = c_lo; c < c_hi; ++c) {
        T* plane = grad_input + (b * channels + c) * height * width;
        const T* go = grad_output + (r * channels + c) * bins;
        for (int64_t bin = 0; bin < bins; ++bin) {
          const T g = go[bin] / rt.grid.count;
          for (int64_t t = rt.first[bin]; t < rt.first[bin + 1]; ++t) {
            const Tap<T>& tap = rt.taps[t];
            plane[tap.o1] += g * tap.w1;
            plane[tap.o2] += g * tap.w2;
            plane[tap.o3] += g * tap.w3;
            plane[tap.o4] += g * tap.w4;
          }
        }
      }
    }
  });
}

#define DT_INSTANTIATE(T)                                                                                  \
  template void roi_align_forward<T>(const T*, int64_t, int64_t, int64_t, int64_t, const T*, int64_t,     \
                                     int64_t, int64_t, double, int64_t, bool, bool, T*, int);             \
  template void roi_align_backward<T>(const T*, int64_t, int64_t, int64_t, int64_t, const T*, int64_t,    \
                                      int64_t, int64_t, double, int64_t, bool, bool, T*, int);
DT_INSTANTIATE(float)
DT_INSTANTIATE(double)
#undef DT_INSTANTIATE

}  // namespace dt::cpu
