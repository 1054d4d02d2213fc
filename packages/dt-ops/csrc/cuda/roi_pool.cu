// ROIPool: one thread per pooled output element; backward scatters to the argmax with atomicAdd.
#include <cfloat>

#include "common/roi_pool.h"
#include "cuda/launch.cuh"
#include "cuda/ops.h"

namespace dt::cuda {
namespace {

template <typename T>
__device__ T lowest();
template <>
__device__ float lowest<float>() { return -FLT_MAX; }
template <>
__device__ double lowest<double>() { return -DBL_MAX; }

template <typename T>
__global__ void roi_pool_forward_kernel(const T* input, int64_t batch, int64_t channels, int64_t height,
                                        int64_t width, const T* rois, int64_t num_rois, int64_t pooled_h,
                                        int64_t pooled_w, double spatial_scale, T* output, int64_t* argmax) {
  DT_GRID_LOOP(index, num_rois * channels * pooled_h * pooled_w) {
    const int64_t pw = index % pooled_w, ph = (index / pooled_w) % pooled_h;
    const int64_t c = (index / pooled_w / pooled_h) % channels, r = index / pooled_w / pooled_h / channels;
    const T* roi = rois + r * 5;
    const int64_t b = static_cast<int64_t>(roi[0]);
    const PoolBin bin = roi_pool_bin(roi, spatial_scale, height, width, pooled_h, pooled_w, ph, pw);
    const bool empty = b < 0 || b >= batch || bin.h1 <= bin.h0 || bin.w1 <= bin.w0;
    T best = empty ? T(0) : lowest<T>();
    int64_t best_idx = -1;
    if (!empty) {
      const T* plane = input + (b * channels + c) * height * width;
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
    output[index] = best;
    argmax[index] = best_idx;
  }
}

template <typename T>
__global__ void roi_pool_backward_kernel(const T* grad_output, const int64_t* argmax, const T* rois,
                                         int64_t num_rois, int64_t channels, int64_t height, int64_t width,
                                         int64_t pooled_h, int64_t pooled_w, T* grad_input) {
  DT_GRID_LOOP(index, num_rois * channels * pooled_h * pooled_w) {
    const int64_t idx = argmax[index];
    if (idx < 0) continue;
    const int64_t c = (index / pooled_w / pooled_h) % channels, r = index / pooled_w / pooled_h / channels;
    const int64_t b = static_cast<int64_t>(rois[r * 5]);
    atomicAdd(grad_input + (b * channels + c) * height * width + idx, grad_output[index]);
  }
}

}  // namespace

template <typename T>
void roi_pool_forward(const T* input, int64_t batch, int64_t channels, int64_t height, int64_t width,
                      const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w, double spatial_scale,
                      T* output, int64_t* argmax, void* stream) {
  const int64_t n = num_rois * channels * pooled_h * pooled_w;
  roi_pool_forward_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      input, batch, channels, height, width, rois, num_rois, pooled_h, pooled_w, spatial_scale, output, argmax);
  check_launch("roi_pool_forward");
}

template <typename T>
void roi_pool_backward(const T* grad_output, const int64_t* argmax, const T* rois, int64_t num_rois,
                       int64_t channels, int64_t height, int64_t width, int64_t pooled_h, int64_t pooled_w,
                       T* grad_input, void* stream) {
  const int64_t n = num_rois * channels * pooled_h * pooled_w;
  roi_pool_backward_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      grad_output, argmax, rois, num_rois, channels, height, width, pooled_h, pooled_w, grad_input);
  check_launch("roi_pool_backward");
}

#define DT_INSTANTIATE(T)                                                                                 \
  template void roi_pool_forward<T>(const T*, int64_t, int64_t, int64_t, int64_t, const T*, int64_t,     \
                                    int64_t, int64_t, double, T*, int64_t*, void*);                      \
  template void roi_pool_backward<T>(const T*, const int64_t*, const T*, int64_t, int64_t, int64_t,      \
                                     int64_t, int64_t, int64_t, T*, void*);
DT_INSTANTIATE(float)
DT_INSTANTIATE(double)
#undef DT_INSTANTIATE

}  // namespace dt::cuda
