// Picks the compiled instruction set of the Winograd convolution for this CPU.
#include "cpu/winograd.h"

namespace dt::cpu {
#define DT_WINOGRAD_DECLARE(ns)                                                                            \
  namespace ns {                                                                                          \
  void conv3x3_winograd(const float* x, int64_t n, int64_t h, int64_t w, int64_t c, const float* packed, \
                        int64_t k, const float* bias, bool relu, float* y, int threads);                  \
  }
DT_WINOGRAD_DECLARE(generic)
#if defined(DT_WINOGRAD_X86)
DT_WINOGRAD_DECLARE(avx2)
DT_WINOGRAD_DECLARE(avx512)
#endif

WinogradIsa winograd_isa(WinogradIsa cap) {
#if defined(DT_WINOGRAD_X86)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx512 && cap >= WinogradIsa::avx512) return WinogradIsa::avx512;
  if (avx2 && cap >= WinogradIsa::avx2) return WinogradIsa::avx2;
#else
  (void)cap;
#endif
  return WinogradIsa::generic;
}

void conv3x3_winograd(const float* x, int64_t n, int64_t h, int64_t w, int64_t c, const float* packed,
                      int64_t k, const float* bias, bool relu, float* y, int threads, WinogradIsa isa) {
  switch (isa) {
#if defined(DT_WINOGRAD_X86)
    case WinogradIsa::avx512:
      return avx512::conv3x3_winograd(x, n, h, w, c, packed, k, bias, relu, y, threads);
    case WinogradIsa::avx2:
      return avx2::conv3x3_winograd(x, n, h, w, c, packed, k, bias, relu, y, threads);
#endif
    default:
      return generic::conv3x3_winograd(x, n, h, w, c, packed, k, bias, relu, y, threads);
  }
}

}  // namespace dt::cpu
