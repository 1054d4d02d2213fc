// ROIAlign (torchvision semantics) and ROIAlignRotated (detectron2 semantics), forward and backward.
//
// The bilinear taps of every sample of a chunk of ROIs are computed once (in parallel over ROIs) into a
// compact table (chunks bound its memory). The pooling itself then runs channel by channel, in
// parallel over channels: for one channel all ROIs read (or, backward, accumulate into) the same
// feature plane, which stays in cache, and no two threads ever write the same element of grad_input
// (no atomics, deterministic result). With few channels the forward pass splits the ROIs instead.
// Channels-last input (roi_align_forward_nhwc) splits the ROIs and reads each tap's pixel as one row of
// channels; its backward splits channel ranges. Per element both sum the same products in the same
// order as the NCHW kernels, so the results are the same.
#include <algorithm>
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

// Sampling grids of all ROIs plus, for a chunk of ROIs, the taps of every sample.
template <typename T>
struct RoiTable {
  const T* rois;
  int64_t batches, height, width, pooled_h, pooled_w, sampling_ratio;
  double spatial_scale;
  bool aligned, rotated;
  std::vector<int64_t> samples, batch;  // per ROI: samples per bin (0: no valid sample), image index
  std::vector<T> count;
  std::vector<CompactTap<T>> taps;  // chunk ROI r, bin b, sample s at first[r - chunk_begin] + b * samples[r] + s
  std::vector<int64_t> first;

  RoiGrid<T> grid_of(int64_t r) const {
    return rotated ? roi_align_rotated_grid(rois + r * 6, spatial_scale, pooled_h, pooled_w, sampling_ratio)
                   : roi_align_grid(rois + r * 5, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned);
  }

  void compute_grids(int64_t num_rois) {
    samples.resize(num_rois), batch.resize(num_rois), count.resize(num_rois);
    for (int64_t r = 0; r < num_rois; ++r) {
      const RoiGrid<T> g = grid_of(r);
      const bool valid = g.batch >= 0 && g.batch < batches;
      samples[r] = valid ? dt_max(g.grid_h, int64_t(0)) * dt_max(g.grid_w, int64_t(0)) : 0;
      batch[r] = valid ? g.batch : 0;
      count[r] = g.count;
    }
  }

  // End of the chunk starting at r0: as many ROIs as fit in the tap budget (at least one).
  int64_t chunk_end(int64_t r0, int64_t num_rois) const {
    constexpr int64_t kTapBudget = int64_t(1) << 20;  // 32 MB of float taps
    int64_t total = 0, r = r0;
    while (r < num_rois && (r == r0 || total + samples[r] * pooled_h * pooled_w <= kTapBudget)) {
      total += samples[r++] * pooled_h * pooled_w;
    }
    return r;
  }

  void compute_taps(int64_t r0, int64_t r1, int threads) {
    first.assign(r1 - r0 + 1, 0);
    for (int64_t r = r0; r < r1; ++r) first[r - r0 + 1] = first[r - r0] + samples[r] * pooled_h * pooled_w;
    taps.resize(first[r1 - r0]);
    parallel_for(r1 - r0, threads, 16, [&](int64_t lo, int64_t hi) {
      for (int64_t r = r0 + lo; r < r0 + hi; ++r) {
        if (samples[r] == 0) continue;
        const RoiGrid<T> g = grid_of(r);
        CompactTap<T>* out = taps.data() + first[r - r0];
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

// Runs body(table, chunk_begin, chunk_end, threads) over chunks of ROIs whose taps fit the budget, with
// one thread when all the ROIs' taps times `channels` are too little work to share.
template <typename T, typename Body>
void for_each_roi_chunk(const T* rois, int64_t num_rois, int64_t batch, int64_t channels, int64_t height,
                        int64_t width, int64_t pooled_h, int64_t pooled_w, double spatial_scale,
                        int64_t sampling_ratio, bool aligned, bool rotated, int threads, const Body& body) {
  RoiTable<T> table{rois, batch, height, width, pooled_h, pooled_w, sampling_ratio, spatial_scale, aligned, rotated};
  table.compute_grids(num_rois);
  int64_t taps = 0;
  for (const int64_t s : table.samples) taps += s * pooled_h * pooled_w;
  threads = threads_for_work(taps * channels, threads);
  for (int64_t r0 = 0; r0 < num_rois;) {
    const int64_t r1 = table.chunk_end(r0, num_rois);
    table.compute_taps(r0, r1, threads);
    body(table, r0, r1, threads);
    r0 = r1;
  }
}

}  // namespace

template <typename T>
void roi_align_forward(const T* input, int64_t batch, int64_t channels, int64_t height, int64_t width,
                       const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w,
                       double spatial_scale, int64_t sampling_ratio, bool aligned, bool rotated, T* output,
                       int threads) {
  const int64_t bins = pooled_h * pooled_w, plane = height * width;
  auto pool = [&](const RoiTable<T>& table, int64_t r0, int64_t r, int64_t c) {
    const T* in = input + (table.batch[r] * channels + c) * plane;
    const CompactTap<T>* t = table.taps.data() + table.first[r - r0];
    const int64_t s = table.samples[r];
    T* out = output + (r * channels + c) * bins;
    for (int64_t bin = 0; bin < bins; ++bin, t += s) {
      T sum = T(0);
      for (int64_t k = 0; k < s; ++k) {
        sum += t[k].w1 * in[t[k].o1] + t[k].w2 * in[t[k].o2] + t[k].w3 * in[t[k].o3] + t[k].w4 * in[t[k].o4];
      }
      out[bin] = sum / table.count[r];
    }
  };
  for_each_roi_chunk(rois, num_rois, batch, channels, height, width, pooled_h, pooled_w, spatial_scale,
                     sampling_ratio, aligned, rotated, threads,
                     [&](const RoiTable<T>& table, int64_t r0, int64_t r1, int threads) {
    if (channels >= 4 * threads) {  // channel-major: one feature plane stays in cache for all ROIs
      parallel_for(channels, threads, 1, [&](int64_t c_lo, int64_t c_hi) {
        for (int64_t c = c_lo; c < c_hi; ++c) {
          for (int64_t r = r0; r < r1; ++r) pool(table, r0, r, c);
        }
      });
    } else {  // few channels (e.g. mask crops): split the ROIs
      parallel_for(r1 - r0, threads, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t r = r0 + lo; r < r0 + hi; ++r) {
          for (int64_t c = 0; c < channels; ++c) pool(table, r0, r, c);
        }
      });
    }
  });
}

template <typename T>
void roi_align_forward_nhwc(const T* input, int64_t batch, int64_t channels, int64_t height, int64_t width,
                            const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w,
                            double spatial_scale, int64_t sampling_ratio, bool aligned, T* output, int threads) {
  const int64_t bins = pooled_h * pooled_w, plane = height * width;
  for_each_roi_chunk(rois, num_rois, batch, channels, height, width, pooled_h, pooled_w, spatial_scale,
                     sampling_ratio, aligned, false, threads,
                     [&](const RoiTable<T>& table, int64_t r0, int64_t r1, int threads) {
    parallel_for(r1 - r0, threads, 1, [&](int64_t lo, int64_t hi) {
      std::vector<T> sum(channels);
      for (int64_t r = r0 + lo; r < r0 + hi; ++r) {
        const T* in = input + table.batch[r] * plane * channels;
        const CompactTap<T>* t = table.taps.data() + table.first[r - r0];
        const int64_t s = table.samples[r];
        T* out = output + r * channels * bins;
        for (int64_t bin = 0; bin < bins; ++bin, t += s) {
          std::fill(sum.begin(), sum.end(), T(0));
          for (int64_t k = 0; k < s; ++k) {
            // the taps' plane offsets times the channels: pixel rows of `channels` values
            const T *a = in + int64_t(t[k].o1) * channels, *b = in + int64_t(t[k].o2) * channels;
            const T *c = in + int64_t(t[k].o3) * channels, *d = in + int64_t(t[k].o4) * channels;
            const T w1 = t[k].w1, w2 = t[k].w2, w3 = t[k].w3, w4 = t[k].w4;
            for (int64_t ch = 0; ch < channels; ++ch) sum[ch] += w1 * a[ch] + w2 * b[ch] + w3 * c[ch] + w4 * d[ch];
          }
          for (int64_t ch = 0; ch < channels; ++ch) out[ch * bins + bin] = sum[ch] / table.count[r];
        }
      }
    });
  });
}

template <typename T>
void roi_align_backward(const T* grad_output, int64_t batch, int64_t channels, int64_t height,
                        int64_t width, const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w,
                        double spatial_scale, int64_t sampling_ratio, bool aligned, bool rotated,
                        T* grad_input, int threads) {
  const int64_t bins = pooled_h * pooled_w, plane = height * width;
  for_each_roi_chunk(rois, num_rois, batch, channels, height, width, pooled_h, pooled_w, spatial_scale,
                     sampling_ratio, aligned, rotated, threads,
                     [&](const RoiTable<T>& table, int64_t r0, int64_t r1, int threads) {
    // Split by channel: different channels never share an element of grad_input.
    parallel_for(channels, threads, 1, [&](int64_t c_lo, int64_t c_hi) {
      for (int64_t c = c_lo; c < c_hi; ++c) {
        for (int64_t r = r0; r < r1; ++r) {
          T* gin = grad_input + (table.batch[r] * channels + c) * plane;
          const CompactTap<T>* t = table.taps.data() + table.first[r - r0];
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
  });
}

template <typename T>
void roi_align_backward_nhwc(const T* grad_output, int64_t batch, int64_t channels, int64_t height,
                             int64_t width, const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w,
                             double spatial_scale, int64_t sampling_ratio, bool aligned, T* grad_input,
                             int threads) {
  const int64_t bins = pooled_h * pooled_w, plane = height * width;
  for_each_roi_chunk(rois, num_rois, batch, channels, height, width, pooled_h, pooled_w, spatial_scale,
                     sampling_ratio, aligned, false, threads,
                     [&](const RoiTable<T>& table, int64_t r0, int64_t r1, int threads) {
    // Split by channel ranges: different ranges never share an element of grad_input.
    parallel_for(channels, threads, 16, [&](int64_t c_lo, int64_t c_hi) {
      std::vector<T> g(c_hi - c_lo);
      for (int64_t r = r0; r < r1; ++r) {
        T* gin = grad_input + table.batch[r] * plane * channels + c_lo;
        const CompactTap<T>* t = table.taps.data() + table.first[r - r0];
        const int64_t s = table.samples[r];
        const T* go = grad_output + (r * channels + c_lo) * bins;
        for (int64_t bin = 0; bin < bins; ++bin, t += s) {
          for (int64_t ch = 0; ch < c_hi - c_lo; ++ch) g[ch] = go[ch * bins + bin] / table.count[r];
          for (int64_t k = 0; k < s; ++k) {
            T *a = gin + int64_t(t[k].o1) * channels, *b = gin + int64_t(t[k].o2) * channels;
            T *c = gin + int64_t(t[k].o3) * channels, *d = gin + int64_t(t[k].o4) * channels;
            const T w1 = t[k].w1, w2 = t[k].w2, w3 = t[k].w3, w4 = t[k].w4;
            // the NCHW kernel's order per element: the four taps one after the other
            for (int64_t ch = 0; ch < c_hi - c_lo; ++ch) a[ch] += g[ch] * w1;
            for (int64_t ch = 0; ch < c_hi - c_lo; ++ch) b[ch] += g[ch] * w2;
            for (int64_t ch = 0; ch < c_hi - c_lo; ++ch) c[ch] += g[ch] * w3;
            for (int64_t ch = 0; ch < c_hi - c_lo; ++ch) d[ch] += g[ch] * w4;
          }
        }
      }
    });
  });
}

#define DT_INSTANTIATE(T)                                                                                  \
  template void roi_align_forward<T>(const T*, int64_t, int64_t, int64_t, int64_t, const T*, int64_t,     \
                                     int64_t, int64_t, double, int64_t, bool, bool, T*, int);             \
  template void roi_align_forward_nhwc<T>(const T*, int64_t, int64_t, int64_t, int64_t, const T*, int64_t, \
                                          int64_t, int64_t, double, int64_t, bool, T*, int);              \
  template void roi_align_backward<T>(const T*, int64_t, int64_t, int64_t, int64_t, const T*, int64_t,    \
                                      int64_t, int64_t, double, int64_t, bool, bool, T*, int);            \
  template void roi_align_backward_nhwc<T>(const T*, int64_t, int64_t, int64_t, int64_t, const T*, int64_t, \
                                           int64_t, int64_t, double, int64_t, bool, T*, int);
DT_INSTANTIATE(float)
DT_INSTANTIATE(double)
#undef DT_INSTANTIATE

}  // namespace dt::cpu
