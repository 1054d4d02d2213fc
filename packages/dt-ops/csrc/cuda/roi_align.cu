// ROIAlign / ROIAlignRotated: one thread per pooled output element; backward scatters with atomicAdd.
#include "common/bilinear.h"
#include "common/roi_geometry.h"
#include "cuda/launch.cuh"
#include "cuda/ops.h"

namespace dt::cuda {
namespace {

template <typename T>
__device__ RoiGrid<T> grid_of(const T* rois, int64_t r, int64_t pooled_h, int64_t pooled_w, double spatial_scale,
                              int64_t sampling_ratio, bool aligned, bool rotated) {
  return rotated ? roi_align_rotated_grid(rois + r * 6, spatial_scale, pooled_h, pooled_w, sampling_ratio)
                 : roi_align_grid(rois + r * 5, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned);
}

template <typename T>
__global__ void roi_align_forward_kernel(const T* input, int64_t batch, int64_t channels, int64_t height,
                                         int64_t width, const T* rois, int64_t num_rois, int64_t pooled_h,
                                         int64_t pooled_w, double spatial_scale, int64_t sampling_ratio,
                                         bool aligned, bool rotated, T* output) {
  DT_GRID_LOOP(index, num_rois * channels * pooled_h * pooled_w) {
    const int64_t pw = index % pooled_w, ph = (index / pooled_w) % pooled_h;
    const int64_t c = (index / pooled_w / pooled_h) % channels, r = index / pooled_w / pooled_h / channels;
    const RoiGrid<T> g = grid_of(rois, r, pooled_h, pooled_w, spatial_scale, sampling_ratio, aligned, rotated);
    T sum = T(0);
    if (g.batch >= 0 && g.batch < batch) {
      const T* plane = input + (g.batch * channels + c) * height * width;
      for (int64_t iy = 0; iy < g.grid_h; ++iy) {
        for (int64_t ix = 0; ix < g.grid_w; ++ix) {
          T y, x;
          roi_sample_point(g, ph, pw, iy, ix, y, x);
          sum += apply_tap(plane, roi_align_tap(height, width, y, x));
        }
      }
    }
    output[index] = sum / g.count;
  }
}

template <typename T>
__global__ void roi_align_backward_kernel(const T* grad_output, int64_t batch, int64_t channels, int64_t height,
                                          int64_t width, const T* rois, int64_t num_rois, int64_t pooled_h,
                                          int64_t pooled_w, double spatial_scale, int64_t sampling_ratio,
                                          bool aligned, bool rotated, T* grad_input) {
  DT_GRID_LOOP(index, num_rois * channels * pooled_h * pooled_w) {
    const int64_t pw = index % pooled_w, ph = (index / pooled_w) % pooled_h;
    const int64_t c = (index / pooled_w / pooled_h) % channels, r = index / pooled_w / pooled_h / channels;
    const RoiGrid<T> g = grid_of(rois, r, pooled_h, pooled_w, spatial_scale, sampling_ratio, aligned, rotated);
    if (g.batch < 0 || g.batch >= batch) continue;
    T* plane = grad_input + (g.batch * channels + c) * height * width;
    const T grad = grad_output[index] / g.count;
    for (int64_t iy = 0; iy < g.grid_h; ++iy) {
      for (int64_t ix = 0; ix < g.grid_w; ++ix) {
        T y, x;
        roi_sample_point(g, ph, pw, iy, ix, y, x);
        const Tap<T> t = roi_align_tap(height, width, y, x);
        if (t.w1 == T(0) && t.w2 == T(0) && t.w3 == T(0) && t.w4 == T(0)) continue;
        atomicAdd(plane + t.o1, grad * t.w1);
        atomicAdd(plane + t.o2, grad * t.w2);
        atomicAdd(plane + t.o3, grad * t.w3);
        atomicAdd(plane + t.o4, grad * t.w4);
      }
    }
  }
}

}  // namespace

template <typename T>
void roi_align_forward(const T* input, int64_t batch, int64_t channels, int64_t height, int64_t width,
                       const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w,
                       double spatial_scale, int64_t sampling_ratio, bool aligned, bool rotated, T* output,
                       void* stream) {
  const int64_t n = num_rois * channels * pooled_h * pooled_w;
  roi_align_forward_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      input, batch, channels, height, width, rois, num_rois, pooled_h, pooled_w, spatial_scale, sampling_ratio,
      aligned, rotated, output);
  check_launch("roi_align_forward");
}

template <typename T>
void roi_align_backward(const T* grad_output, int64_t batch, int64_t channels, int64_t height,
                        int64_t width, const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w,
                        double spatial_scale, int64_t sampling_ratio, bool aligned, bool rotated,
                        T* grad_input, void* stream) {
  const int64_t n = num_rois * channels * pooled_h * pooled_w;
  roi_align_backward_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      grad_output, batch, channels, height, width, rois, num_rois, pooled_h, pooled_w, spatial_scale,
      sampling_ratio, aligned, rotated, grad_input);
  check_launch("roi_align_backward");
}

#define DT_INSTANTIATE(T)                                                                                  \
  template void roi_align_forward<T>(const T*, int64_t, int64_t, int64_t, int64_t, const T*, int64_t,     \
                                     int64_t, int64_t, double, int64_t, bool, bool, T*, void*);           \
  template void roi_align_backward<T>(const T*, int64_t, int64_t, int64_t, int64_t, const T*, int64_t,    \
                                      int64_t, int64_t, double, int64_t, bool, bool, T*, void*);
DT_INSTANTIATE(float)
DT_INSTANTIATE(double)
#undef DT_INSTANTIATE

}  // namespace dt::cuda
