// Deformable convolution sampling kernels (the GEMMs run in torch).
#include "common/bilinear.h"
#include "cuda/launch.cuh"
#include "cuda/ops.h"

namespace dt::cuda {
namespace {

// Sampling point of kernel tap k at output position l of image b, offset group og.
template <typename T>
__device__ void sample_point(const DeformGeometry& g, const T* offset, const T* mask, int64_t b, int64_t og,
                             int64_t k, int64_t l, T& y, T& x, T& m) {
  const int64_t kk = g.kernel_h * g.kernel_w, hw = g.out_h * g.out_w;
  const int64_t oy = l / g.out_w, ox = l % g.out_w, i = k / g.kernel_w, j = k % g.kernel_w;
  const T* off = offset + ((b * g.offset_groups + og) * 2 * kk + 2 * k) * hw;
  y = static_cast<T>(oy * g.stride_h - g.pad_h + i * g.dilation_h) + off[l];
  x = static_cast<T>(ox * g.stride_w - g.pad_w + j * g.dilation_w) + off[hw + l];
  m = mask != nullptr ? mask[((b * g.offset_groups + og) * kk + k) * hw + l] : T(1);
}

// columns[b, c * K + k, l]
template <typename T>
__global__ void im2col_kernel(const T* input, const T* offset, const T* mask, DeformGeometry g, T* columns) {
  const int64_t kk = g.kernel_h * g.kernel_w, hw = g.out_h * g.out_w;
  DT_GRID_LOOP(index, g.batch * g.channels * kk * hw) {
    const int64_t l = index % hw, k = (index / hw) % kk, c = (index / hw / kk) % g.channels;
    const int64_t b = index / hw / kk / g.channels;
    T y, x, m;
    sample_point(g, offset, mask, b, c / (g.channels / g.offset_groups), k, l, y, x, m);
    columns[index] = apply_tap(input + (b * g.channels + c) * g.height * g.width, deform_tap(g.height, g.width, y, x, m));
  }
}

template <typename T>
__global__ void col2im_kernel(const T* grad_columns, const T* offset, const T* mask, DeformGeometry g,
                              T* grad_input) {
  const int64_t kk = g.kernel_h * g.kernel_w, hw = g.out_h * g.out_w;
  DT_GRID_LOOP(index, g.batch * g.channels * kk * hw) {
    const int64_t l = index % hw, k = (index / hw) % kk, c = (index / hw / kk) % g.channels;
    const int64_t b = index / hw / kk / g.channels;
    T y, x, m;
    sample_point(g, offset, mask, b, c / (g.channels / g.offset_groups), k, l, y, x, m);
    const Tap<T> t = deform_tap(g.height, g.width, y, x, m);
    T* plane = grad_input + (b * g.channels + c) * g.height * g.width;
    const T v = grad_columns[index];
    if (t.w1 != T(0)) atomicAdd(plane + t.o1, t.w1 * v);
    if (t.w2 != T(0)) atomicAdd(plane + t.o2, t.w2 * v);
    if (t.w3 != T(0)) atomicAdd(plane + t.o3, t.w3 * v);
    if (t.w4 != T(0)) atomicAdd(plane + t.o4, t.w4 * v);
  }
}

// One thread per (b, og, k, l): sums over the channels of the offset group.
template <typename T>
__global__ void col2im_coord_kernel(const T* grad_columns, const T* input, const T* offset, const T* mask,
                                    DeformGeometry g, T* grad_offset, T* grad_mask) {
  const int64_t kk = g.kernel_h * g.kernel_w, hw = g.out_h * g.out_w, cg = g.channels / g.offset_groups;
  DT_GRID_LOOP(index, g.batch * g.offset_groups * kk * hw) {
    const int64_t l = index % hw, k = (index / hw) % kk, og = (index / hw / kk) % g.offset_groups;
    const int64_t b = index / hw / kk / g.offset_groups;
    T y, x, m;
    sample_point(g, offset, mask, b, og, k, l, y, x, m);
    const DeformGradTap<T> d = deform_grad_tap(g.height, g.width, y, x);
    const Tap<T> t = deform_tap(g.height, g.width, y, x, T(1));
    T gy = T(0), gx = T(0), gm = T(0);
    for (int64_t c = og * cg; c < (og + 1) * cg; ++c) {
      const T* in = input + (b * g.channels + c) * g.height * g.width;
      const T v1 = d.v1 ? in[d.o1] : T(0), v2 = d.v2 ? in[d.o2] : T(0);
      const T v3 = d.v3 ? in[d.o3] : T(0), v4 = d.v4 ? in[d.o4] : T(0);
      const T col = grad_columns[((b * g.channels + c) * kk + k) * hw + l];
      gy += col * (d.lx * (v4 - v2) + (T(1) - d.lx) * (v3 - v1));
      gx += col * (d.ly * (v4 - v3) + (T(1) - d.ly) * (v2 - v1));
      gm += col * apply_tap(in, t);
    }
    T* goff = grad_offset + ((b * g.offset_groups + og) * 2 * kk + 2 * k) * hw;
    goff[l] = m * gy;
    goff[hw + l] = m * gx;
    if (grad_mask != nullptr) grad_mask[((b * g.offset_groups + og) * kk + k) * hw + l] = gm;
  }
}

}  // namespace

template <typename T>
void deform_im2col(const T* input, const T* offset, const T* mask, const DeformGeometry& g, T* columns,
                   void* stream) {
  const int64_t n = g.batch * g.channels * g.kernel_h * g.kernel_w * g.out_h * g.out_w;
  im2col_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(input, offset, mask, g, columns);
  check_launch("deform_im2col");
}

template <typename T>
void deform_col2im(const T* grad_columns, const T* offset, const T* mask, const DeformGeometry& g,
                   T* grad_input, void* stream) {
  const int64_t n = g.batch * g.channels * g.kernel_h * g.kernel_w * g.out_h * g.out_w;
  col2im_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(grad_columns, offset, mask, g,
                                                                                   grad_input);
  check_launch("deform_col2im");
}

template <typename T>
void deform_col2im_coord(const T* grad_columns, const T* input, const T* offset, const T* mask,
                         const DeformGeometry& g, T* grad_offset, T* grad_mask, void* stream) {
  const int64_t n = g.batch * g.offset_groups * g.kernel_h * g.kernel_w * g.out_h * g.out_w;
  col2im_coord_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      grad_columns, input, offset, mask, g, grad_offset, grad_mask);
  check_launch("deform_col2im_coord");
}

#define DT_INSTANTIATE(T)                                                                                   \
  template void deform_im2col<T>(const T*, const T*, const T*, const DeformGeometry&, T*, void*);          \
  template void deform_col2im<T>(const T*, const T*, const T*, const DeformGeometry&, T*, void*);          \
  template void deform_col2im_coord<T>(const T*, const T*, const T*, const T*, const DeformGeometry&, T*,   \
                                       T*, void*);
DT_INSTANTIATE(float)
DT_INSTANTIATE(double)
#undef DT_INSTANTIATE

}  // namespace dt::cuda
