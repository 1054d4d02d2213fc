// Axis-aligned NMS and pairwise IoU.
#include <cmath>
#include <limits>
#include <vector>

#include "common/box_iou.h"
#include "cpu/nms_common.h"
#include "cpu/ops.h"

namespace dt::cpu {
namespace {

// Boxes gathered in NMS order as structure-of-arrays, so the suppression loop vectorises.
template <typename T>
struct SortedBoxes {
  std::vector<T> x1, y1, x2, y2, area;
  T threshold;  // largest T t with (x > t) == (double(x) > iou_threshold) for every T x

  SortedBoxes(const T* boxes, const std::vector<int64_t>& order, double iou_threshold) {
    const size_t n = order.size();
    x1.resize(n), y1.resize(n), x2.resize(n), y2.resize(n), area.resize(n);
    for (size_t p = 0; p < n; ++p) {
      const T* b = boxes + 4 * order[p];
      x1[p] = b[0], y1[p] = b[1], x2[p] = b[2], y2[p] = b[3];
      area[p] = box_area(b[0], b[1], b[2], b[3]);
    }
    threshold = static_cast<T>(iou_threshold);
    if (static_cast<double>(threshold) > iou_threshold) {
      threshold = std::nextafter(threshold, -std::numeric_limits<T>::infinity());
    }
  }
};

template <typename T>
struct AxisSuppress {
  const SortedBoxes<T>* s;
  int64_t base;
  void operator()(int64_t i, int64_t lo, int64_t hi, uint8_t* removed) const {
    const T* x1 = s->x1.data() + base;
    const T* y1 = s->y1.data() + base;
    const T* x2 = s->x2.data() + base;
    const T* y2 = s->y2.data() + base;
    const T* area = s->area.data() + base;
    const T ix1 = x1[i], iy1 = y1[i], ix2 = x2[i], iy2 = y2[i], ia = area[i], thr = s->threshold;
    for (int64_t j = lo; j < hi; ++j) {
      const T iou = box_iou_xyxy(ix1, iy1, ix2, iy2, ia, x1[j], y1[j], x2[j], y2[j], area[j]);
      removed[j] |= static_cast<uint8_t>(iou > thr);
    }
  }
};

template <typename T>
struct AxisSuppressFactory {
  SortedBoxes<T> boxes;
  AxisSuppress<T> at(int64_t base) const { return AxisSuppress<T>{&boxes, base}; }
};

}  // namespace

template <typename T>
int64_t nms(const T* boxes, const T* scores, const int64_t* idxs, int64_t n, double iou_threshold,
            int64_t* keep, int threads) {
  return nms_driver(scores, idxs, n, keep, threads, [&](const std::vector<int64_t>& grouped) {
    return AxisSuppressFactory<T>{SortedBoxes<T>(boxes, grouped, iou_threshold)};
  });
}

template <typename T>
void box_iou(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out, int threads) {
  std::vector<T> area2(m);
  for (int64_t j = 0; j < m; ++j) {
    const T* b = boxes2 + 4 * j;
    area2[j] = box_area(b[0], b[1], b[2], b[3]);
  }
  parallel_for(n, threads, std::max<int64_t>(1, 65536 / std::max<int64_t>(m, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const T* a = boxes1 + 4 * i;
      const T area1 = box_area(a[0], a[1], a[2], a[3]);
      for (int64_t j = 0; j < m; ++j) {
        const T* b = boxes2 + 4 * j;
        out[i * m + j] = box_iou_xyxy(a[0], a[1], a[2], a[3], area1, b[0], b[1], b[2], b[3], area2[j]);
      }
    }
  });
}

int64_t nms_sweep(const uint64_t* mask, int64_t n, int64_t* keep) {
  const int64_t blocks = (n + 63) / 64;
  std::vector<uint64_t> removed(blocks, 0);
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (removed[i / 64] & (uint64_t(1) << (i % 64))) continue;
    keep[count++] = i;
    const uint64_t* row = mask + i * blocks;
    for (int64_t b = i / 64; b < blocks; ++b) removed[b] |= row[b];
  }
  return count;
}

#define DT_INSTANTIATE(T)                                                                              \
  template int64_t nms<T>(const T*, const T*, const int64_t*, int64_t, double, int64_t*, int);        \
  template void box_iou<T>(const T*, int64_t, const T*, int64_t, T*, int);
DT_INSTANTIATE(float)
DT_INSTANTIATE(double)
#undef DT_INSTANTIATE

}  // namespace dt::cpu
