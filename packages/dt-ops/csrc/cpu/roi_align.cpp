// ROIAlign (torchvision semantics) and ROIAlignRotated (detectron2 semantics), forward and backward.
//
// The bilinear taps of every sample of every ROI are computed once (in parallel over ROIs) into a
// compact table. The pooling itself then runs channel by channel, in parallel over channels: for one
// channel all ROIs read (or, backward, accumulate into) the same feature plane, which stays in cache,
// and no two threads ever write the same element of grad_input (no atomics, deterministic result).
#include <cstdint>
#include <vector>

#include "common/bilinear.h"
#include "common/roi_geometry.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace dt::cpu {
namespace {

// A tap with 32-bit plane offsets (planes are checked to have < 2^31 elements).
template <typename T>
struct CompactTap {
  int32_t o1, o2, o3, o4;
  T w1, w2, w3, w4;
};

template <typename T>
struct RoiTable {
  std::vector<CompactTap<T>> taps;  // ROI r, bin b, sample s at first[r] + b * samples[r] + s
  std::vector<int64_t> first, samples, batch;
  std::vector<T> count;

  RoiTable(const T* rois, int64_t num_rois, int64_t batches, int64_t height, int64_t width, int64_t pooled_h,
           int64_t pooled_w, double spatial_scale, int64_t sampling_ratio, bool aligned, bool rotated,
           int threads)
      : first(num_rois + 1, 0), samples(num_rois), batch(num_rois), count(num_rois) {
    const int64_t roi_cols = rotated ? 6 : 5, bins = pooled_h * pooled_w;
    auto grid_of = [&](int64_t r) {
      return rotated ? roi_align_rotated_grid(rois + r * roi_cols, spatial_scale, pooled_h, pooled_w, sampling_ratio)
                     : roi_align_grid(rois + r * roi_cols, spatial_scale, pooled_h, pooled_w, sampling_ratio,
                                      aligned);
    };
    for (int64_t r = 0; r < num_rois; ++r) {
      const RoiGrid<T> g = grid_of(r);
      const bool valid = g.batch >= 0 && g.batch < batches;
      samples[r] = valid ? dt_max(g.grid_h, int64_t(0)) * dt_max(g.grid_w, int64_t(0)) : 0;
      batch[r] = valid ? g.batch : 0;
      count[r] = g.count;
      first[r + 1] = first[r] + bins * samples[r];
    }
    taps.resize(first[num_rois]);
    parallel_for(num_rois, threads, 16, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        if (samples[r] == 0) continue;
        const RoiGrid<T> g = grid_of(r);
        CompactTap<T>* out = taps.data() + first[r];
        for (int64_t ph = 0; ph < pooled_h; ++ph) {
          for (int64_t pw = 0; pw < pooled_w; ++pw) {
            for (int64_t iy = 0; iy < g.grid_h; ++iy) {
              for (int64_t ix = 0; ix < g.grid_w; ++ix) {
                T y, x;
                roi_sample_point(g, ph, pw, iy, ix, y, x);
                const Tap<T> t = roi_align_tap(height, width, y, x);
                *out++ = CompactTap<T>{static_cast<int32_t>(t.o1), static_cast<int32_t>(t.o2),
                                       static_cast<int32_t>(t.o3), static_cast<int32_t>(t.o4),
                                       t.w1, t.w2, t.w3, t.w4};
              }
            }
          }
        }
      }
    });
  }
};

}  // namespace

template <typename T>
void roi_align_forward(const T* input, int64_t batch, int64_t channels, int64_t height, int64_t width,
                       const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w,
                       double spatial_scale, int64_t sampling_ratio, bool aligned, bool rotated, T* output,
                       int threads) {
  const RoiTable<T> table(rois, num_rois, batch, height, width, pooled_h, pooled_w, spatial_scale, sampling_ratio,
                          aligned, rotated, threads);
  const int64_t bins = pooled_h * pooled_w, plane = height * width;
  parallel_for(channels, threads, 1, [&](int64_t c_lo, int64_t c_hi) {
    for (int64_t c = c_lo; c < c_hi; ++c) {
      for (int64_t r = 0; r < num_rois; ++r) {
        const T* in = input + (table.batch[r] * channels + c) * plane;
        const CompactTap<T>* t = table.taps.data() + table.first[r];
        const int64_t s = table.samples[r];
        T* out = output + (r * channels + c) * bins;
        for (int64_t bin = 0; bin < bins; ++bin, t += s) {
          T sum = T(0);
          for (int64_t k = 0; k < s; ++k) {
            sum += t[k].w1 * in[t[k].o1] + t[k].w2 * in[t[k].o2] + t[k].w3 * in[t[k].o3] + t[k].w4 * in[t[k].o4];
          }
          out[bin] = sum / table.count[r];
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
  const RoiTable<T> table(rois, num_rois, batch, height, width, pooled_h, pooled_w, spatial_scale, sampling_ratio,
                          aligned, rotated, threads);
  const int64_t bins = pooled_h * pooled_w, plane = height * width;
  parallel_for(channels, threads, 1, [&](int64_t c_lo, int64_t c_hi) {
    for (int64_t c = c_lo; c < c_hi; ++c) {
      for (int64_t r = 0; r < num_rois; ++r) {
        T* gin = grad_input + (table.batch[r] * channels + c) * plane;
        const CompactTap<T>* t = table.taps.data() + table.first[r];
        const int64_t s = table.samples[r];
        const T* go = grad_output + (r * channels + c) * bins;
        for (int64_t bin = 0; bin < bins; ++bin, t += s) {
          const T g = go[bin] / table.count[r];
          for (int64_t k = 0; k < s; ++k) {
            gin[t[k].o1] += g * t[k].w1;
            gin[t[k].o2] += g * t[k].w2;
            gin[t[k].o3] += g * t[k].w3;
            gin[t[k].o4] += g * t[k].w4;
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
