// 3x3 convolution (stride 1, padding 1) by Winograd's minimal filtering F(4x4, 3x3) on channels-last
// float32 maps: each 6x6 input tile and the filter are transformed so that a 4x4 output tile costs 36
// products per input/output channel pair instead of 144. Math in winograd_kernel.h; this header is the
// interface the bindings see.
#pragma once
#include <cstdint>

namespace dt::cpu {

// Instruction sets the kernel is compiled for, best last.
enum class WinogradIsa : int { generic = 0, avx2 = 1, avx512 = 2 };

// The best instruction set this CPU runs, capped by `cap` (ATen's ATEN_CPU_CAPABILITY, read in Python).
WinogradIsa winograd_isa(WinogradIsa cap);

// y[n, h, w, k] = bias[k] + sum_{c, i, j} x[n, h + i - 1, w + j - 1, c] * weight[k, c, i, j], ReLU if
// `relu`. x: [n, h, w, c]; packed: winograd_pack_weight's [36, ceil(k / 16), c, 16] transformed filter;
// bias: [k] or null; y: [n, h, w, k].
void conv3x3_winograd(const float* x, int64_t n, int64_t h, int64_t w, int64_t c, const float* packed,
                      int64_t k, const float* bias, bool relu, float* y, int threads, WinogradIsa isa);

}  // namespace dt::cpu
