// The F(4x4, 3x3) Winograd convolution, written once over GCC/Clang vector extensions and compiled per
// instruction set (winograd_{generic,avx2,avx512}.cpp define DT_WINOGRAD_NS and include this file).
//
// Output tiles are processed in blocks of kBlockRows * kRows tiles, each block by one thread:
//   1. input transform: V[e][t][c] = (B^T d_t B)[e] for the block's 6x6 input tiles d_t (e = 0..35);
//   2. 36 matrix products M[e] = V[e] [tiles x C] * U[e] [C x K], U the transformed filter G g G^T;
//   3. output transform: y_t = A^T M_t A (4x4), plus bias and ReLU, stored where inside the map.
// V and M stay in the thread's cache-sized buffers; only x, U and y touch memory.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/parallel.h"

namespace dt::cpu::DT_WINOGRAD_NS {

constexpr int kLanes = 16;  // output channels per panel; one AVX-512 register, two AVX2 ones
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float)), aligned(sizeof(float))));

// the widest register of the instruction set (DT_WINOGRAD_NATIVE_BYTES): the matrix product keeps its
// accumulators in these, as arrays of wider generic vectors are not kept in registers by GCC
typedef float Native __attribute__((vector_size(DT_WINOGRAD_NATIVE_BYTES), aligned(sizeof(float))));
constexpr int kParts = kLanes * int(sizeof(float)) / DT_WINOGRAD_NATIVE_BYTES;

// Vec and Native are declared with float alignment, so these are unaligned vector loads and stores
inline Vec load(const float* p) { return *reinterpret_cast<const Vec*>(p); }
inline void store(float* p, Vec v) { *reinterpret_cast<Vec*>(p) = v; }
// the first `count` lanes (< kLanes) from/to p, the others zero
inline Vec load_partial(const float* p, int64_t count) {
  Vec v = {};
  std::memcpy(&v, p, count * sizeof(float));
  return v;
}
inline void store_partial(float* p, Vec v, int64_t count) { std::memcpy(p, &v, count * sizeof(float)); }

// B^T applied to six vectors (a column or a row of a 6x6 tile), in place
inline void input_transform6(Vec* d, int64_t stride) {
  const Vec d0 = d[0], d1 = d[stride], d2 = d[2 * stride], d3 = d[3 * stride], d4 = d[4 * stride],
            d5 = d[5 * stride];
  d[0] = 4.0f * d0 - 5.0f * d2 + d4;
  d[stride] = d3 + d4 - 4.0f * (d1 + d2);
  d[2 * stride] = d4 - d3 + 4.0f * (d1 - d2);
  d[3 * stride] = d4 - d2 + 2.0f * (d3 - d1);
  d[4 * stride] = d4 - d2 + 2.0f * (d1 - d3);
  d[5 * stride] = 4.0f * d1 - 5.0f * d3 + d5;
}

// A^T applied to six vectors: four outputs
inline void output_transform6(const Vec* m, int64_t stride, Vec* y, int64_t y_stride) {
  const Vec m0 = m[0], m1 = m[stride], m2 = m[2 * stride], m3 = m[3 * stride], m4 = m[4 * stride],
            m5 = m[5 * stride];
  const Vec sum12 = m1 + m2, diff12 = m1 - m2, sum34 = m3 + m4, diff34 = m3 - m4;
  y[0] = m0 + sum12 + sum34;
  y[y_stride] = diff12 + 2.0f * diff34;
  y[2 * y_stride] = sum12 + 4.0f * sum34;
  y[3 * y_stride] = diff12 + 8.0f * diff34 + m5;
}

// m[r][0:16] = sum_i v[r][i] * u[i][0:16] for kRows rows r; v rows are ld_v apart, m rows ld_m apart
template <int kRows>
inline void micro_kernel(const float* v, int64_t ld_v, const float* u, int64_t depth, float* m, int64_t ld_m) {
  Native acc[kRows][kParts] = {};
  for (int64_t i = 0; i < depth; ++i) {
    Native col[kParts];
#pragma GCC unroll 4
    for (int p = 0; p < kParts; ++p) col[p] = *reinterpret_cast<const Native*>(u + i * kLanes + p * (kLanes / kParts));
#pragma GCC unroll 32
    for (int r = 0; r < kRows; ++r) {
      const float scale = v[r * ld_v + i];
#pragma GCC unroll 4
      for (int p = 0; p < kParts; ++p) acc[r][p] += scale * col[p];
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int p = 0; p < kParts; ++p) *reinterpret_cast<Native*>(m + r * ld_m + p * (kLanes / kParts)) = acc[r][p];
  }
}

template <int kRows>
struct Winograd {
  const float* x;
  int64_t n, h, w, c;
  const float* packed;
  int64_t k;
  const float* bias;
  bool relu;
  float* y;

  int64_t tiles_h() const { return (h + 3) / 4; }
  int64_t tiles_w() const { return (w + 3) / 4; }
  int64_t panels() const { return (k + kLanes - 1) / kLanes; }

  // tiles per block: V and M of about 1 MiB together, 1 to 8 row groups (larger blocks, measured up to
  // 8 MiB, reuse the filter more but were slower on AVX-512 and AVX2 alike)
  int64_t block_tiles() const {
    const int64_t per_tile = 36 * (c + panels() * kLanes) * int64_t(sizeof(float));
    const int64_t groups = (int64_t(1) << 20) / (per_tile * kRows);
    return std::clamp<int64_t>(groups, 1, 8) * kRows;
  }

  // V[e][t][c] of the block's tiles [first, first + count); rows of missing tiles are left as they are
  void transform_input(int64_t first, int64_t count, int64_t block, float* v) const {
    const int64_t tw = tiles_w(), th = tiles_h();
    Vec tile[36];
    for (int64_t t = 0; t < count; ++t) {
      const int64_t index = first + t, image = index / (th * tw), row = (index / tw) % th, col = index % tw;
      const int64_t y0 = 4 * row - 1, x0 = 4 * col - 1;
      for (int64_t c0 = 0; c0 < c; c0 += kLanes) {
        const int64_t lanes = std::min<int64_t>(kLanes, c - c0);
        for (int i = 0; i < 6; ++i) {
          const int64_t yy = y0 + i;
          for (int j = 0; j < 6; ++j) {
            const int64_t xx = x0 + j;
            if (yy < 0 || yy >= h || xx < 0 || xx >= w) {
              tile[i * 6 + j] = Vec{};
            } else {
              const float* p = x + ((image * h + yy) * w + xx) * c + c0;
              tile[i * 6 + j] = lanes == kLanes ? load(p) : load_partial(p, lanes);
            }
          }
        }
        for (int j = 0; j < 6; ++j) input_transform6(tile + j, 6);   // columns: B^T d
        for (int i = 0; i < 6; ++i) input_transform6(tile + 6 * i, 1);  // rows: (B^T d) B
        for (int e = 0; e < 36; ++e) {
          float* dst = v + (e * block + t) * c + c0;
          if (lanes == kLanes) store(dst, tile[e]); else store_partial(dst, tile[e], lanes);
        }
      }
    }
  }

  // M[e][t][panel * 16 : +16] = V[e][t][:] * U[e][panel] for row groups covering `count` tiles
  void multiply(int64_t count, int64_t block, const float* v, float* m) const {
    const int64_t ld_m = panels() * kLanes;
    for (int e = 0; e < 36; ++e) {
      for (int64_t panel = 0; panel < panels(); ++panel) {
        const float* u = packed + (e * panels() + panel) * c * kLanes;
        for (int64_t t = 0; t < count; t += kRows) {
          micro_kernel<kRows>(v + (e * block + t) * c, c, u, c, m + (e * block + t) * ld_m + panel * kLanes, ld_m);
        }
      }
    }
  }

  void transform_output(int64_t first, int64_t count, int64_t block, const float* m) const {
    const int64_t tw = tiles_w(), th = tiles_h(), ld_m = panels() * kLanes;
    Vec tile[36], half[24], out[16];
    for (int64_t t = 0; t < count; ++t) {
      const int64_t index = first + t, image = index / (th * tw), row = (index / tw) % th, col = index % tw;
      for (int64_t panel = 0; panel < panels(); ++panel) {
        const int64_t k0 = panel * kLanes, lanes = std::min<int64_t>(kLanes, k - k0);
        for (int e = 0; e < 36; ++e) tile[e] = load(m + (e * block + t) * ld_m + k0);
        for (int j = 0; j < 6; ++j) output_transform6(tile + j, 6, half + j, 6);     // A^T M: 4 x 6
        for (int i = 0; i < 4; ++i) output_transform6(half + 6 * i, 1, out + 4 * i, 1);  // (A^T M) A: 4 x 4
        const Vec b = bias == nullptr ? Vec{} : (lanes == kLanes ? load(bias + k0) : load_partial(bias + k0, lanes));
        for (int i = 0; i < 4; ++i) {
          const int64_t yy = 4 * row + i;
          if (yy >= h) break;
          for (int j = 0; j < 4; ++j) {
            const int64_t xx = 4 * col + j;
            if (xx >= w) break;
            Vec value = out[4 * i + j] + b;
            if (relu) value = value > 0.0f ? value : Vec{};
            float* dst = y + ((image * h + yy) * w + xx) * k + k0;
            if (lanes == kLanes) store(dst, value); else store_partial(dst, value, lanes);
          }
        }
      }
    }
  }

  void run(int threads) const {
    const int64_t tiles = n * tiles_h() * tiles_w(), block = block_tiles();
    const int64_t blocks = (tiles + block - 1) / block;
    const int64_t work = tiles * 36 * c * panels() * kLanes;  // multiply-adds of the products
    parallel_for(blocks, threads_for_work(work, threads), 1, [&](int64_t begin, int64_t end) {
      // zero-initialised: rows of a partial last block are multiplied but never stored
      std::vector<float> v(size_t(36 * block * c), 0.0f), m(size_t(36 * block * panels() * kLanes), 0.0f);
      for (int64_t b = begin; b < end; ++b) {
        const int64_t first = b * block, count = std::min(block, tiles - first);
        transform_input(first, count, block, v.data());
        multiply(count, block, v.data(), m.data());
        transform_output(first, count, block, m.data());
      }
    });
  }
};

}  // namespace dt::cpu::DT_WINOGRAD_NS
