// Deformable convolution (torchvision semantics): the sampling parts. The GEMMs with the weight are
// done by torch on the caller's side.
//
// Sampling positions depend on (batch, offset group, kernel tap, output position) but not on the
// channel, so the bilinear taps are computed once and reused for every channel of the offset group.
#include <algorithm>
#include <vector>

#include "common/bilinear.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace dt::cpu {
namespace {

constexpr int64_t kChunk = 1024;  // output positions per work item

// Sampling point of kernel tap k at output position l for (b, og).
template <typename T>
struct SamplePoints {
  const DeformGeometry& g;
  const T* offset;
  const T* mask;

  void at(int64_t b, int64_t og, int64_t k, int64_t l, T& y, T& x, T& m) const {
    const int64_t kk = g.kernel_h * g.kernel_w, hw = g.out_h * g.out_w;
    const int64_t oy = l / g.out_w, ox = l % g.out_w, i = k / g.kernel_w, j = k % g.kernel_w;
    const T* off = offset + ((b * g.offset_groups + og) * 2 * kk + 2 * k) * hw;
    y = static_cast<T>(oy * g.stride_h - g.pad_h + i * g.dilation_h) + off[l];
    x = static_cast<T>(ox * g.stride_w - g.pad_w + j * g.dilation_w) + off[hw + l];
    m = mask != nullptr ? mask[((b * g.offset_groups + og) * kk + k) * hw + l] : T(1);
  }
};

}  // namespace

template <typename T>
void deform_im2col(const T* input, const T* offset, const T* mask, const DeformGeometry& g, T* columns,
                   int threads) {
  const int64_t kk = g.kernel_h * g.kernel_w, hw = g.out_h * g.out_w, plane = g.height * g.width;
  const int64_t cg = g.channels / g.offset_groups, chunks = (hw + kChunk - 1) / kChunk;
  const SamplePoints<T> pts{g, offset, mask};
  parallel_for(g.batch * g.offset_groups * kk * chunks, threads, 1, [&](int64_t lo, int64_t hi) {
    std::vector<Tap<T>> taps(kChunk);
    for (int64_t u = lo; u < hi; ++u) {
      const int64_t chunk = u % chunks, k = (u / chunks) % kk, og = (u / chunks / kk) % g.offset_groups;
      const int64_t b = u / chunks / kk / g.offset_groups;
      const int64_t l0 = chunk * kChunk, l1 = std::min(hw, l0 + kChunk);
      for (int64_t l = l0; l < l1; ++l) {
        T y, x, m;
        pts.at(b, og, k, l, y, x, m);
        taps[l - l0] = deform_tap(g.height, g.width, y, x, m);
      }
      for (int64_t c = og * cg; c < (og + 1) * cg; ++c) {
        const T* in = input + (b * g.channels + c) * plane;
        T* col = columns + ((b * g.channels + c) * kk + k) * hw;
        for (int64_t l = l0; l < l1; ++l) col[l] = apply_tap(in, taps[l - l0]);
      }
    }
  });
}

template <typename T>
void deform_col2im(const T* grad_columns, const T* offset, const T* mask, const DeformGeometry& g,
                   T* grad_input, int threads) {
  const int64_t kk = g.kernel_h * g.kernel_w, hw = g.out_h * g.out_w, plane = g.height * g.width;
  const int64_t cg = g.channels / g.offset_groups;
  const SamplePoints<T> pts{g, offset, mask};
  std::vector<Tap<T>> taps(g.offset_groups * kk * hw);  // taps of one image
  for (int64_t b = 0; b < g.batch; ++b) {
    parallel_for(g.offset_groups * kk * hw, threads, 4096, [&](int64_t lo, int64_t hi) {
      for (int64_t u = lo; u < hi; ++u) {
        T y, x, m;
        pts.at(b, u / (kk * hw), (u / hw) % kk, u % hw, y, x, m);
        taps[u] = deform_tap(g.height, g.width, y, x, m);
      }
    });
    parallel_for(g.channels, threads, 1, [&](int64_t c_lo, int64_t c_hi) {
      for (int64_t c = c_lo; c < c_hi; ++c) {
        T* gin = grad_input + (b * g.channels + c) * plane;
        const Tap<T>* group_taps = taps.data() + (c / cg) * kk * hw;
        for (int64_t k = 0; k < kk; ++k) {
          const T* gcol = grad_columns + ((b * g.channels + c) * kk + k) * hw;
          const Tap<T>* tk = group_taps + k * hw;
          for (int64_t l = 0; l < hw; ++l) {
            const T v = gcol[l];
            const Tap<T>& t = tk[l];
            gin[t.o1] += t.w1 * v;
            gin[t.o2] += t.w2 * v;
            gin[t.o3] += t.w3 * v;
            gin[t.o4] += t.w4 * v;
          }
        }
      }
    });
  }
}

template <typename T>
void deform_col2im_coord(const T* grad_columns, const T* input, const T* offset, const T* mask,
                         const DeformGeometry& g, T* grad_offset, T* grad_mask, int threads) {
  const int64_t kk = g.kernel_h * g.kernel_w, hw = g.out_h * g.out_w, plane = g.height * g.width;
  const int64_t cg = g.channels / g.offset_groups, chunks = (hw + kChunk - 1) / kChunk;
  const SamplePoints<T> pts{g, offset, mask};
  parallel_for(g.batch * g.offset_groups * kk * chunks, threads, 1, [&](int64_t lo, int64_t hi) {
    std::vector<DeformGradTap<T>> dtaps(kChunk);
    std::vector<Tap<T>> taps(kChunk);
    std::vector<T> gy(kChunk), gx(kChunk), gm(kChunk), ms(kChunk);
    for (int64_t u = lo; u < hi; ++u) {
      const int64_t chunk = u % chunks, k = (u / chunks) % kk, og = (u / chunks / kk) % g.offset_groups;
      const int64_t b = u / chunks / kk / g.offset_groups;
      const int64_t l0 = chunk * kChunk, n = std::min(hw, l0 + kChunk) - l0;
      for (int64_t p = 0; p < n; ++p) {
        T y, x;
        pts.at(b, og, k, l0 + p, y, x, ms[p]);
        dtaps[p] = deform_grad_tap(g.height, g.width, y, x);
        taps[p] = deform_tap(g.height, g.width, y, x, T(1));
        gy[p] = gx[p] = gm[p] = T(0);
      }
      for (int64_t c = og * cg; c < (og + 1) * cg; ++c) {
        const T* in = input + (b * g.channels + c) * plane;
        const T* gcol = grad_columns + ((b * g.channels + c) * kk + k) * hw + l0;
        for (int64_t p = 0; p < n; ++p) {
          const DeformGradTap<T>& d = dtaps[p];
          const T v1 = d.v1 ? in[d.o1] : T(0), v2 = d.v2 ? in[d.o2] : T(0);
          const T v3 = d.v3 ? in[d.o3] : T(0), v4 = d.v4 ? in[d.o4] : T(0);
          const T col = gcol[p];
          gy[p] += col * (d.lx * (v4 - v2) + (T(1) - d.lx) * (v3 - v1));
          gx[p] += col * (d.ly * (v4 - v3) + (T(1) - d.ly) * (v2 - v1));
          gm[p] += col * apply_tap(in, taps[p]);
        }
      }
      T* goff = grad_offset + ((b * g.offset_groups + og) * 2 * kk + 2 * k) * hw + l0;
      for (int64_t p = 0; p < n; ++p) {
        goff[p] = ms[p] * gy[p];
        goff[hw + p] = ms[p] * gx[p];
      }
      if (grad_mask != nullptr) {
        T* gmask = grad_mask + ((b * g.offset_groups + og) * kk + k) * hw + l0;
        for (int64_t p = 0; p < n; ++p) gmask[p] = gm[p];
      }
    }
  });
}

#define DT_INSTANTIATE(T)                                                                                \
  template void deform_im2col<T>(const T*, const T*, const T*, const DeformGeometry&, T*, int);         \
  template void deform_col2im<T>(const T*, const T*, const T*, const DeformGeometry&, T*, int);         \
  template void deform_col2im_coord<T>(const T*, const T*, const T*, const T*, const DeformGeometry&, T*, \
                                       T*, int);
DT_INSTANTIATE(float)
DT_INSTANTIATE(double)
#undef DT_INSTANTIATE

}  // namespace dt::cpu
