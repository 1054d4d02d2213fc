// winograd_kernel.h compiled for avx2 (the compile flags are set in CMakeLists.txt)
#define DT_WINOGRAD_NS avx2
#define DT_WINOGRAD_NATIVE_BYTES 32
#include "cpu/winograd_kernel.h"

namespace dt::cpu::avx2 {

void conv3x3_winograd(const float* x, int64_t n, int64_t h, int64_t w, int64_t c, const float* packed,
                      int64_t k, const float* bias, bool relu, float* y, int threads) {
  Winograd<6>{x, n, h, w, c, packed, k, bias, relu, y}.run(threads);
}

}  // namespace dt::cpu::avx2
