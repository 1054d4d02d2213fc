// Bilinear sampling taps: four plane offsets and their weights. Used by ROIAlign (plain and rotated)
// and deformable convolution; the CPU and CUDA kernels call the same functions.
#pragma once
#include "common/macros.h"

namespace dt {

template <typename T>
struct Tap {
  int64_t o1, o2, o3, o4;  // offsets into an H*W plane: (y0,x0) (y0,x1) (y1,x0) (y1,x1)
  T w1, w2, w3, w4;
};

template <typename T>
DT_HD Tap<T> zero_tap() { return Tap<T>{0, 0, 0, 0, T(0), T(0), T(0), T(0)}; }

// ROIAlign sampling (torchvision/detectron2): zero outside [-1, H] x [-1, W]; coordinates are clamped
// into the image and the last row/column is replicated.
template <typename T>
DT_HD Tap<T> roi_align_tap(int64_t height, int64_t width, T y, T x) {
  if (y < T(-1.0) || y > T(height) || x < T(-1.0) || x > T(width)) return zero_tap<T>();
  if (y <= T(0)) y = T(0);
  if (x <= T(0)) x = T(0);
  int64_t y_low = static_cast<int64_t>(y);
  int64_t x_low = static_cast<int64_t>(x);
  int64_t y_high, x_high;
  if (y_low >= height - 1) {
    y_high = y_low = height - 1;
    y = static_cast<T>(y_low);
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= width - 1) {
    x_high = x_low = width - 1;
    x = static_cast<T>(x_low);
  } else {
    x_high = x_low + 1;
  }
  const T ly = y - T(y_low), lx = x - T(x_low);
  const T hy = T(1) - ly, hx = T(1) - lx;
  return Tap<T>{y_low * width + x_low, y_low * width + x_high, y_high * width + x_low,
                y_high * width + x_high, hy * hx, hy * lx, ly * hx, ly * lx};
}

template <typename T>
DT_HD T apply_tap(const T* plane, const Tap<T>& t) {
  return t.w1 * plane[t.o1] + t.w2 * plane[t.o2] + t.w3 * plane[t.o3] + t.w4 * plane[t.o4];
}

// Deformable-convolution sampling (torchvision): zero unless -1 < y < H and -1 < x < W; corners
// outside the image contribute zero (zero padding, no clamping). `scale` multiplies every weight
// (the modulation mask of DCNv2).
template <typename T>
DT_HD Tap<T> deform_tap(int64_t height, int64_t width, T y, T x, T scale) {
  if (y <= T(-1) || T(height) <= y || x <= T(-1) || T(width) <= x) return zero_tap<T>();
  const T yf = floor(y), xf = floor(x);
  const int64_t y_low = static_cast<int64_t>(yf), x_low = static_cast<int64_t>(xf);
  const int64_t y_high = y_low + 1, x_high = x_low + 1;
  const T ly = y - yf, lx = x - xf;
  const T hy = T(1) - ly, hx = T(1) - lx;
  const bool y0 = y_low >= 0, y1 = y_high <= height - 1, x0 = x_low >= 0, x1 = x_high <= width - 1;
  Tap<T> t = zero_tap<T>();
  if (y0 && x0) { t.o1 = y_low * width + x_low; t.w1 = scale * (hy * hx); }
  if (y0 && x1) { t.o2 = y_low * width + x_high; t.w2 = scale * (hy * lx); }
  if (y1 && x0) { t.o3 = y_high * width + x_low; t.w3 = scale * (ly * hx); }
  if (y1 && x1) { t.o4 = y_high * width + x_high; t.w4 = scale * (ly * lx); }
  return t;
}

// Partial derivatives of deformable sampling with respect to y and x (torchvision's coordinate
// weights: corners outside the image are zero, no early exit at the border).
template <typename T>
struct DeformGradTap {
  int64_t o1, o2, o3, o4;
  bool v1, v2, v3, v4;  // corner inside the image
  T ly, lx;             // fractional parts
};

template <typename T>
DT_HD DeformGradTap<T> deform_grad_tap(int64_t height, int64_t width, T y, T x) {
  const T yf = floor(y), xf = floor(x);
  const int64_t y_low = static_cast<int64_t>(yf), x_low = static_cast<int64_t>(xf);
  const int64_t y_high = y_low + 1, x_high = x_low + 1;
  const bool vy0 = 0 <= y_low && y_low < height, vy1 = 0 <= y_high && y_high < height;
  const bool vx0 = 0 <= x_low && x_low < width, vx1 = 0 <= x_high && x_high < width;
  DeformGradTap<T> g;
  g.v1 = vy0 && vx0;
  g.v2 = vy0 && vx1;
  g.v3 = vy1 && vx0;
  g.v4 = vy1 && vx1;
  g.o1 = g.v1 ? y_low * width + x_low : 0;
  g.o2 = g.v2 ? y_low * width + x_high : 0;
  g.o3 = g.v3 ? y_high * width + x_low : 0;
  g.o4 = g.v4 ? y_high * width + x_high : 0;
  g.ly = y - yf;
  g.lx = x - xf;
  return g;
}

}  // namespace dt
