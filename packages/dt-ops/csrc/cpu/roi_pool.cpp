// ROIPool (torchvision semantics): max over each bin; argmax recorded for the backward pass.
#include <limits>

#include "common/roi_pool.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace dt::cpu {

template <typename T>
void roi_pool_forward(const T* input, int64_t batch, int64_t channels, int64_t height, int64_t width,
                      const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w, double spatial_scale,
                      T* output, int64_t* argmax, int threads) {
  const int64_t bins = pooled_h * pooled_w;
  parallel_for(num_rois * channels, threads, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t rc = lo; rc < hi; ++rc) {
      const int64_t r = rc / channels, c = rc % channels;
      const T* roi = rois + r * 5;
      const int64_t b = static_cast<int64_t>(roi[0]);
      T* out = output + rc * bins;
      int64_t* arg = argmax + rc * bins;
      const bool valid_batch = b >= 0 && b < batch;
      const T* plane = input + (valid_batch ? (b * channels + c) * height * width : 0);
      for (int64_t ph = 0; ph < pooled_h; ++ph) {
        for (int64_t pw = 0; pw < pooled_w; ++pw) {
          const PoolBin bin = roi_pool_bin(roi, spatial_scale, height, width, pooled_h, pooled_w, ph, pw);
          const bool empty = !valid_batch || bin.h1 <= bin.h0 || bin.w1 <= bin.w0;
          T best = empty ? T(0) : -std::numeric_limits<T>::max();
          int64_t best_idx = -1;
          if (!empty) {
            for (int64_t h = bin.h0; h < bin.h1; ++h) {
              for (int64_t w = bin.w0; w < bin.w1; ++w) {
                const int64_t idx = h * width + w;
                if (plane[idx] > best) {
                  best = plane[idx];
                  best_idx = idx;
                }
              }
            }
          }
          out[ph * pooled_w + pw] = best;
          arg[ph * pooled_w + pw] = best_idx;
        }
      }
    }
  });
}

template <typename T>
void roi_pool_backward(const T* grad_output, const int64_t* argmax, const T* rois, int64_t num_rois,
                       int64_t channels, int64_t height, int64_t width, int64_t pooled_h, int64_t pooled_w,
                       T* grad_input, int threads) {
  const int64_t bins = pooled_h * pooled_w;
  parallel_for(channels, threads, 1, [&](int64_t c_lo, int64_t c_hi) {
    for (int64_t r = 0; r < num_rois; ++r) {
      const int64_t b = static_cast<int64_t>(rois[r * 5]);
      for (int64_t c = c_lo; c < c_hi; ++c) {
        const int64_t rc = r * channels + c;
        T* plane = grad_input + (b * channels + c) * height * width;
        for (int64_t k = 0; k < bins; ++k) {
          const int64_t idx = argmax[rc * bins + k];
          if (idx >= 0) plane[idx] += grad_output[rc * bins + k];
        }
      }
    }
  });
}

#define DT_INSTANTIATE(T)                                                                                 \
  template void roi_pool_forward<T>(const T*, int64_t, int64_t, int64_t, int64_t, const T*, int64_t,     \
                                    int64_t, int64_t, double, T*, int64_t*, int);                        \
  template void roi_pool_backward<T>(const T*, const int64_t*, const T*, int64_t, int64_t, int64_t,      \
                                     int64_t, int64_t, int64_t, T*, int);
DT_INSTANTIATE(float)
DT_INSTANTIATE(double)
#undef DT_INSTANTIATE

}  // namespace dt::cpu
