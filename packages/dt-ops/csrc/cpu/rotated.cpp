// Rotated boxes: pairwise IoU and NMS (detectron2 semantics: a box is suppressed when IoU >= threshold).
#include <vector>

#include "common/rotated_iou.h"
#include "cpu/nms_common.h"
#include "cpu/ops.h"

namespace dt::cpu {
namespace {

template <typename T>
struct RotatedSuppress {
  const std::vector<T>* sorted;  // [n, 5] in class-grouped NMS order
  int64_t base;
  double threshold;
  void operator()(int64_t i, int64_t lo, int64_t hi, uint8_t* removed) const {
    const T* b = sorted->data() + 5 * base;
    for (int64_t j = lo; j < hi; ++j) {
      if (removed[j]) continue;
      if (rotated_iou(b + 5 * i, b + 5 * j) >= threshold) removed[j] = 1;
    }
  }
};

template <typename T>
struct RotatedSuppressFactory {
  std::vector<T> sorted;
  double threshold;
  RotatedSuppress<T> at(int64_t base) const { return RotatedSuppress<T>{&sorted, base, threshold}; }
};

}  // namespace

template <typename T>
void box_iou_rotated(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out, int threads) {
  parallel_for(n, threads, std::max<int64_t>(1, 4096 / std::max<int64_t>(m, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      for (int64_t j = 0; j < m; ++j) out[i * m + j] = rotated_iou(boxes1 + 5 * i, boxes2 + 5 * j);
    }
  });
}

template <typename T>
int64_t nms_rotated(const T* boxes, const T* scores, const int64_t* idxs, int64_t n, double iou_threshold,
                    int64_t* keep, int threads) {
  return nms_driver(scores, idxs, n, keep, threads, [&](const std::vector<int64_t>& grouped) {
    RotatedSuppressFactory<T> factory{std::vector<T>(5 * grouped.size()), iou_threshold};
    for (size_t p = 0; p < grouped.size(); ++p) {
      for (int k = 0; k < 5; ++k) factory.sorted[5 * p + k] = boxes[5 * grouped[p] + k];
    }
    return factory;
  });
}

#define DT_INSTANTIATE(T)                                                                              \
  template void box_iou_rotated<T>(const T*, int64_t, const T*, int64_t, T*, int);                    \
  template int64_t nms_rotated<T>(const T*, const T*, const int64_t*, int64_t, double, int64_t*, int);
DT_INSTANTIATE(float)
DT_INSTANTIATE(double)
#undef DT_INSTANTIATE

}  // namespace dt::cpu
