// Axis-aligned and rotated NMS bit matrices, pairwise IoU.
#include "common/box_iou.h"
#include "common/rotated_iou.h"
#include "cuda/launch.cuh"
#include "cuda/ops.h"

namespace dt::cuda {
namespace {

constexpr int kBits = 64;

template <int Width, typename T, typename Iou>
__global__ void nms_mask_kernel(const T* boxes, const int64_t* idxs, int64_t n, double threshold,
                                unsigned long long* mask, Iou iou_fn) {
  const int64_t row_block = blockIdx.y, col_block = blockIdx.x;
  if (row_block > col_block) return;
  const int64_t col_size = min(n - col_block * kBits, int64_t(kBits));
  const int64_t row_size = min(n - row_block * kBits, int64_t(kBits));
  __shared__ T cols[kBits * Width];
  if (threadIdx.x < col_size) {
    for (int k = 0; k < Width; ++k) cols[threadIdx.x * Width + k] = boxes[(col_block * kBits + threadIdx.x) * Width + k];
  }
  __syncthreads();
  if (threadIdx.x >= row_size) return;
  const int64_t i = row_block * kBits + threadIdx.x;
  const T* box = boxes + i * Width;
  unsigned long long bits = 0;
  const int64_t start = row_block == col_block ? threadIdx.x + 1 : 0;
  for (int64_t c = start; c < col_size; ++c) {
    const int64_t j = col_block * kBits + c;
    if (idxs != nullptr && idxs[i] != idxs[j]) continue;
    if (iou_fn(box, cols + c * Width, threshold)) bits |= 1ULL << c;
  }
  mask[i * ((n + kBits - 1) / kBits) + col_block] = bits;
}

struct AxisSuppress {
  template <typename T>
  __device__ bool operator()(const T* a, const T* b, double threshold) const {
    const T iou = box_iou_xyxy(a[0], a[1], a[2], a[3], box_area(a[0], a[1], a[2], a[3]), b[0], b[1], b[2], b[3],
                               box_area(b[0], b[1], b[2], b[3]));
    return static_cast<double>(iou) > threshold;
  }
};

struct RotatedSuppress {
  template <typename T>
  __device__ bool operator()(const T* a, const T* b, double threshold) const {
    return static_cast<double>(rotated_iou(a, b)) >= threshold;
  }
};

template <int Width, typename T, typename Iou>
void launch_mask(const T* boxes, const int64_t* idxs, int64_t n, double threshold, int64_t* mask, void* stream,
                 Iou iou_fn) {
  const int64_t blocks = (n + kBits - 1) / kBits;
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(blocks));
  nms_mask_kernel<Width><<<grid, kBits, 0, static_cast<cudaStream_t>(stream)>>>(
      boxes, idxs, n, threshold, reinterpret_cast<unsigned long long*>(mask), iou_fn);
  check_launch("nms_mask");
}

template <typename T>
__global__ void box_iou_kernel(const T* a, int64_t n, const T* b, int64_t m, T* out) {
  DT_GRID_LOOP(k, n * m) {
    const T* p = a + (k / m) * 4;
    const T* q = b + (k % m) * 4;
    out[k] = box_iou_xyxy(p[0], p[1], p[2], p[3], box_area(p[0], p[1], p[2], p[3]), q[0], q[1], q[2], q[3],
                          box_area(q[0], q[1], q[2], q[3]));
  }
}

template <typename T>
__global__ void box_iou_rotated_kernel(const T* a, int64_t n, const T* b, int64_t m, T* out) {
  DT_GRID_LOOP(k, n * m) { out[k] = rotated_iou(a + (k / m) * 5, b + (k % m) * 5); }
}

}  // namespace

template <typename T>
void nms_mask(const T* boxes, const int64_t* idxs, int64_t n, double iou_threshold, int64_t* mask, void* stream) {
  launch_mask<4>(boxes, idxs, n, iou_threshold, mask, stream, AxisSuppress{});
}

template <typename T>
void nms_rotated_mask(const T* boxes, const int64_t* idxs, int64_t n, double iou_threshold, int64_t* mask,
                      void* stream) {
  launch_mask<5>(boxes, idxs, n, iou_threshold, mask, stream, RotatedSuppress{});
}

template <typename T>
void box_iou(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out, void* stream) {
  box_iou_kernel<<<blocks_for(n * m), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(boxes1, n, boxes2, m, out);
  check_launch("box_iou");
}

template <typename T>
void box_iou_rotated(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out, void* stream) {
  box_iou_rotated_kernel<<<blocks_for(n * m), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(boxes1, n, boxes2,
                                                                                                 m, out);
  check_launch("box_iou_rotated");
}

#define DT_INSTANTIATE(T)                                                                                   \
  template void nms_mask<T>(const T*, const int64_t*, int64_t, double, int64_t*, void*);                    \
  template void nms_rotated_mask<T>(const T*, const int64_t*, int64_t, double, int64_t*, void*);            \
  template void box_iou<T>(const T*, int64_t, const T*, int64_t, T*, void*);                                \
  template void box_iou_rotated<T>(const T*, int64_t, const T*, int64_t, T*, void*);
DT_INSTANTIATE(float)
DT_INSTANTIATE(double)
#undef DT_INSTANTIATE

}  // namespace dt::cuda
